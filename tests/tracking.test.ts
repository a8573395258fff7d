// MLflow file store (tracking/file_store*.ts, yaml.ts, run.ts) against real MLflow stores and
// itself.
import assert from "node:assert/strict";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { TEMP_FILE_PATTERN, writeFileAtomic } from "../tracking/files.ts";
import { FileStore } from "../tracking/file_store.ts";
import { formatMetricLine, parsePythonFloat } from "../tracking/file_store_reader.ts";
import { fileUriToPath, pathToFileUri, resolveTrackingRoot } from "../tracking/file_uri.ts";
import { markStaleRun, resumeRun, startRun, withRun } from "../tracking/run.ts";
import { latestMetrics } from "../tracking/search.ts";
import { openStore } from "../tracking/store.ts";
import {
  dumpYaml,
  parseYaml,
  pythonFloatRepr,
  yamlString,
  type YamlValue,
} from "../tracking/yaml.ts";

const FIXTURES = fileURLToPath(new URL("./fixtures/tracking/mlruns-sample/", import.meta.url));
const fixtureRoot = (variant: string) => path.join(FIXTURES, variant, "store");
const BJ = fixtureRoot("mlflow-3.6.0_bouiyoda-tp1");
const AM = fixtureRoot("mlflow-3.4.0_mbeuyo-tp1");
const JD = fixtureRoot("mlflow-3.4.0_jedanmbock-tp1");
const CN = fixtureRoot("mlflow-2.8.0_cngomc1-tp1-legacy-partial");
const SQLITE_ARTIFACTS = fixtureRoot("mlflow-3.x-sqlite-backend_bouiyoda-tp4-artifacts-only");
const FILE_STORES = [BJ, AM, JD, CN];

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "denograd-tracking-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function walkFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const rel = prefix + entry.name;
    if (entry.isDirectory) out.push(...await walkFiles(path.join(dir, entry.name), rel + "/"));
    else out.push(rel);
  }
  return out.sort();
}

async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

function yamlKeys(text: string): string[] {
  return text.split("\n").filter((l) => /^[a-z_]+:/.test(l)).map((l) => l.split(":")[0]);
}

async function gitHead(dir: string): Promise<string | null> {
  try {
    const out = await new Deno.Command("git", { args: ["rev-parse", "HEAD"], cwd: dir }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Reader on MLflow's own stores

Deno.test("reader: MLflow 3.6.0 store (BJ TP1) — run, params, duplicated metrics, logged model", async () => {
  const store = new FileStore(BJ);
  const experiments = await store.listExperiments();
  assert.equal(experiments.length, 1);
  assert.deepEqual(experiments[0], {
    experimentId: "0",
    name: "Default",
    artifactLocation:
      "file:///C:/Users/DELL/Documents/bioo/5GI/deeplearning/projet%20DL/TP1/mlruns/0",
    lifecycleStage: "active",
    creationTime: 1763424202000,
    lastUpdateTime: 1763424202000,
    tags: {},
  });
  assert.equal((await store.getExperimentByName("Default"))?.experimentId, "0");
  assert.equal(await store.getExperimentByName("nope"), null);

  const runs = await store.searchRuns({ experimentIds: ["0"] });
  assert.equal(runs.length, 1);
  const run = await store.getRun("5e76d8f6247446d0a192af8fb7bbe23f");
  assert.deepEqual(run, runs[0]);
  assert.deepEqual(run.info, {
    runId: "5e76d8f6247446d0a192af8fb7bbe23f",
    runName: "masked-fawn-834",
    experimentId: "0",
    userId: "DELL",
    status: "FINISHED",
    startTime: 1763424203779,
    endTime: 1763424312463,
    lifecycleStage: "active",
    artifactUri: "file:///C:/Users/DELL/Documents/bioo/5GI/deeplearning/projet%20DL/TP1/mlruns/0/" +
      "5e76d8f6247446d0a192af8fb7bbe23f/artifacts",
  });
  assert.deepEqual(run.params, { batch_size: "128", dropout_rate: "0.2", epochs: "5" });
  // MLflow 3 appends each run metric a second time when log_model links it to the model.
  const accuracy = { timestamp: 1763424235699, value: 0.9814000129699707, step: 0 };
  assert.deepEqual(run.metrics.test_accuracy, [accuracy, accuracy]);
  assert.deepEqual(latestMetrics(run).test_accuracy, accuracy);
  assert.equal(latestMetrics(run).test_loss.value, 0.06226642429828644);
  assert.deepEqual(run.tags, {
    "mlflow.runName": "masked-fawn-834",
    "mlflow.source.git.commit": "4453f07857fc7867a0c4aebeae4bd08e12747fcd",
    "mlflow.source.name": "train_model2.py",
    "mlflow.source.type": "LOCAL",
    "mlflow.user": "DELL",
  });
  assert.deepEqual(run.outputs, [{ modelId: "m-e4f72605c60d4744bded09a4b08ed2e6", step: 0 }]);
  assert.deepEqual(run.warnings, []);
  // Git drops empty folders: the run's artifacts/ is absent, which is not an error.
  assert.deepEqual(await store.listArtifacts(run.info.runId), []);

  const [model] = await store.listLoggedModels("0");
  assert.equal(model.modelId, "m-e4f72605c60d4744bded09a4b08ed2e6");
  assert.equal(model.name, "mnist-model");
  assert.equal(model.sourceRunId, run.info.runId);
  assert.equal(model.status, "READY");
  assert.equal(model.lastUpdatedTimestamp, 1763424312424);
  assert.deepEqual(model.params, run.params);
  assert.deepEqual(model.metrics.test_accuracy, [{ ...accuracy, runId: run.info.runId }]);
  assert.deepEqual(store.problems, []);
});

Deno.test("reader: MLflow 3.4.0 stores (AM: 4 metrics + 5 params; JD: experiment tag, %-encoded URI)", async () => {
  const am = await new FileStore(AM).getRun("404a6963491c46ed831ebd4b24a86d7b");
  assert.equal(am.info.runName, "selective-crab-874");
  assert.equal(am.info.userId, "audrey");
  assert.deepEqual(am.params, {
    batch_size: "128",
    dropout_rate: "0.2",
    epochs: "5",
    loss_function: "sparse_categorical_crossentropy",
    optimizer: "adam",
  });
  assert.deepEqual(Object.keys(am.metrics), [
    "final_train_accuracy",
    "final_val_accuracy",
    "test_accuracy",
    "test_loss",
  ]);
  assert.equal(latestMetrics(am).test_accuracy.value, 0.9772999882698059);
  assert.equal(latestMetrics(am).final_val_accuracy.value, 0.9788333177566528);
  assert.equal(am.tags["mlflow.source.git.commit"], "d5e841a4f834b88d7c6adda7fe6868324cbe5a41");

  const jdStore = new FileStore(JD);
  const [experiment] = await jdStore.listExperiments();
  assert.deepEqual(experiment.tags, { "mlflow.experimentKind": "custom_model_development" });
  const jd = await jdStore.getRun("4dae0208e74641468b072de05842fc43");
  assert.equal(jd.info.runName, "crawling-chimp-246");
  assert.equal(jd.tags["mlflow.source.git.commit"], undefined);
  assert.equal(jd.tags["mlflow.user"], "JD");
  assert.equal(
    fileUriToPath(jd.info.artifactUri),
    "C:/Users/JD/Documents/5GI_presentiel/Semestre1/Machine Learning avancé/TPs/TP1/mlruns/0/" +
      "4dae0208e74641468b072de05842fc43/artifacts",
  );
  const [model] = await jdStore.listLoggedModels("0");
  assert.equal(model.name, "mnist - model");
  assert.deepEqual(model.tags["mlflow.source.type"], "LOCAL");
});

Deno.test("reader: MLflow 2.8.0 legacy partial store reports what is missing", async () => {
  const store = new FileStore(CN);
  const run = await store.getRun("eaaef4c095a447da83583c12c1cf46e9");
  assert.equal(run.info.runName, "handsome-quail-255");
  assert.equal(run.info.status, "FINISHED");
  assert.equal(run.info.endTime, 1759072359648);
  assert.deepEqual(run.params, {});
  assert.deepEqual(run.warnings, ["params/ folder is missing"]);
  assert.deepEqual(run.metrics.test_accuracy, [
    { timestamp: 1759072345959, value: 0.9764000177383423, step: 0 },
  ]);
  const history = JSON.parse(run.tags["mlflow.log-model.history"]);
  assert.equal(history[0].model_uuid, "31457ddf739749a89e474ce2bc88b309");
  // 2.x models are run artifacts.
  assert.deepEqual(await store.listArtifacts(run.info.runId), [
    { path: "mnist-model", isDir: true, fileSize: null },
  ]);
  const files = await store.listArtifacts(run.info.runId, "mnist-model");
  assert.deepEqual(files.map((f) => f.path), [
    "mnist-model/MLmodel",
    "mnist-model/requirements.txt",
  ]);
  const mlmodel = new TextDecoder().decode(
    await store.readArtifact(run.info.runId, "mnist-model/MLmodel"),
  );
  assert.equal(files[0].fileSize, new TextEncoder().encode(mlmodel).length);
  const parsed = parseYaml(mlmodel) as Record<string, unknown>;
  assert.equal(parsed.run_id, run.info.runId);
  assert.equal(parsed.utc_time_created, "2025-09-28 15:12:25.973620");
});

Deno.test("reader: sqlite-era artifacts-only folder lists nothing and says why", async () => {
  const store = new FileStore(SQLITE_ARTIFACTS);
  assert.deepEqual(await store.listExperiments(), []);
  assert.match(store.problems[0], /'.*\/1' has no meta\.yaml.*mlflow\.db/);
  assert.deepEqual(await store.searchRuns({ experimentIds: ["1"] }), []);
  assert.equal(store.problems.filter((p) => /Run folder .* has no meta\.yaml/.test(p)).length, 2);
  await assert.rejects(() => store.getRun("441ca074dcb344e9b39d586c7e21fff4"), /no meta\.yaml/);
  const runId = "441ca074dcb344e9b39d586c7e21fff4";
  assert.deepEqual((await store.listArtifacts(runId, "artifacts")).map((a) => a.path), [
    "artifacts/model_architecture.json",
  ]);
  const json = JSON.parse(
    new TextDecoder().decode(await store.readArtifact(runId, "artifacts/model_architecture.json")),
  );
  assert.equal(JSON.parse(json.model_config).class_name, "Functional");
});

Deno.test("reader: every param, tag and metric file of every fixture run is read verbatim", async () => {
  for (const root of FILE_STORES) {
    const store = new FileStore(root);
    for (const experiment of await store.listExperiments()) {
      for (const run of await store.searchRuns({ experimentIds: [experiment.experimentId] })) {
        const runDir = path.join(root, experiment.experimentId, run.info.runId);
        const files = await walkFiles(runDir);
        for (const file of files) {
          const [kind, ...rest] = file.split("/");
          const key = rest.join("/");
          const text = await Deno.readTextFile(path.join(runDir, file));
          if (kind === "params") assert.equal(run.params[key], text);
          if (kind === "tags") assert.equal(run.tags[key], text);
          if (kind === "metrics") {
            const lines = text.trimEnd().split("\n");
            assert.equal(run.metrics[key].length, lines.length);
            // Our writer reproduces MLflow's exact line text.
            assert.equal(run.metrics[key].map(formatMetricLine).join(""), text);
          }
        }
        const meta = parseYaml(await Deno.readTextFile(path.join(runDir, "meta.yaml")));
        assert.equal((meta as Record<string, unknown>).run_id, run.info.runId);
      }
    }
    assert.deepEqual(store.problems, [], root);
  }
});

Deno.test("yaml: emitter reproduces MLflow's meta.yaml / MLmodel / conda.yaml files byte for byte", async () => {
  let checked = 0;
  for (const root of FILE_STORES) {
    for (const file of await walkFiles(root)) {
      const name = path.basename(file);
      if (!["meta.yaml", "MLmodel", "conda.yaml", "python_env.yaml"].includes(name)) continue;
      const text = await Deno.readTextFile(path.join(root, file));
      const doc = parseYaml(text, file) as Record<string, never>;
      // MLflow writes python_env.yaml in insertion order, everything else with sorted keys.
      assert.equal(dumpYaml(doc, name !== "python_env.yaml"), text, file);
      checked++;
    }
  }
  // 4 experiment + 4 run + 3 output + 3 model meta.yaml, 4 MLmodel, 3 conda, 3 python_env.
  assert.equal(checked, 24);
});

Deno.test("yaml: scalar quoting follows PyYAML, and parse(dump(x)) is x", () => {
  const cases: [string, string][] = [
    ["0", "'0'"],
    ["", "''"],
    ["Default", "Default"],
    ["mnist - model", "mnist - model"],
    ["yes", "'yes'"],
    ["null", "'null'"],
    ["1.5", "'1.5'"],
    ["1e5", "1e5"],
    ["0x1F", "'0x1F'"],
    ["a: b", "'a: b'"],
    ["a:b", "a:b"],
    ["#x", "'#x'"],
    ["x #y", "'x #y'"],
    ["- x", "'- x'"],
    ["-r requirements.txt", "-r requirements.txt"],
    ["it's", "it's"],
    ["'quoted'", "'''quoted'''"],
    [" lead", "' lead'"],
    ["2025-09-28 15:12:25.973620", "'2025-09-28 15:12:25.973620'"],
    ["avancé", "avancé"],
    ["tab\there", '"tab\\there"'],
    ["two\nlines", '"two\\nlines"'],
  ];
  for (const [value, expected] of cases) {
    assert.equal(yamlString(value), expected, value);
    assert.deepEqual(parseYaml(`k: ${expected}\n`), { k: value }, value);
  }
  const doc = {
    a: 1,
    b: null,
    c: [],
    d: {},
    e: ["x", { f: "1", g: [true, 2.5] }],
    h: { i: { j: "k l" } },
    n: -7,
  };
  assert.deepEqual(parseYaml(dumpYaml(doc)), doc);
  // PyYAML folds long plain and quoted scalars over indented lines.
  assert.deepEqual(parseYaml("name: a very\n  long name\nq: 'it''s\n  folded'\n"), {
    name: "a very long name",
    q: "it's folded",
  });
  assert.deepEqual(parseYaml("x: [a, 'b c', 3]\ny: {k: v}\n"), {
    x: ["a", "b c", 3],
    y: { k: "v" },
  });
  assert.throws(() => parseYaml("a: 1\n  b: 2\n", "bad.yaml"), /bad\.yaml: YAML line/);
});

Deno.test("yaml: plain scalars resolve as PyYAML's safe_load resolves them", () => {
  const REFUSED = Symbol("PyYAML raises");
  // yaml.safe_load(f"k: {plain}\n")["k"] with PyYAML 6.0.3; timestamps, which PyYAML makes
  // datetimes, stay the text (as MLflow's own readers would print them).
  const cases: [string, YamlValue | typeof REFUSED][] = [
    ["y", "y"],
    ["Y", "Y"],
    ["n", "n"],
    ["N", "N"],
    ["yes", true],
    ["Yes", true],
    ["YES", true],
    ["no", false],
    ["No", false],
    ["NO", false],
    ["true", true],
    ["True", true],
    ["TRUE", true],
    ["false", false],
    ["False", false],
    ["FALSE", false],
    ["on", true],
    ["On", true],
    ["ON", true],
    ["off", false],
    ["Off", false],
    ["OFF", false],
    ["tRue", "tRue"],
    ["oN", "oN"],
    ["~", null],
    ["null", null],
    ["Null", null],
    ["NULL", null],
    ["nULL", "nULL"],
    ["0", 0],
    ["00", 0],
    ["01", 1],
    ["017", 15],
    ["08", "08"],
    ["09", "09"],
    ["0o17", "0o17"],
    ["0b101", 5],
    ["-0b11", -3],
    ["0b0_1", 1],
    ["0x1F", 31],
    ["0X1F", "0X1F"],
    ["-0x_a", -10],
    ["+12", 12],
    ["-0", 0],
    ["1_000", 1000],
    ["1__0", 10],
    ["12345678901234567890", 12345678901234567890n],
    ["-9007199254740993", -9007199254740993n],
    ["190:20:30", 685230],
    ["-1:00", -60],
    ["0:30", "0:30"],
    ["1:60", "1:60"],
    ["1:5", 65],
    ["+3:59:59", 14399],
    ["1.5", 1.5],
    ["1.", 1],
    ["-1.5", -1.5],
    ["+2.5", 2.5],
    [".5", 0.5],
    ["-.5", "-.5"],
    ["+.5", "+.5"],
    [".", "."],
    ["1_0.5", 10.5],
    ["1e5", "1e5"],
    ["1E5", "1E5"],
    ["1.0e5", "1.0e5"],
    ["1.0e+5", 100000],
    ["1.0E-5", 1e-05],
    ["1e+5", "1e+5"],
    [".5e+3", 500],
    ["-1.e-2", -0.01],
    [".inf", Infinity],
    ["-.inf", -Infinity],
    ["+.inf", Infinity],
    [".Inf", Infinity],
    [".INF", Infinity],
    [".iNf", ".iNf"],
    [".nan", NaN],
    [".NaN", NaN],
    [".NAN", NaN],
    ["-.nan", "-.nan"],
    ["nan", "nan"],
    ["inf", "inf"],
    ["Infinity", "Infinity"],
    ["1:30.5", 90.5],
    ["-1:30.5", -90.5],
    ["0:30.5", 30.5],
    ["190:20:30.15", 685230.15],
    ["2001-12-14", "2001-12-14"],
    ["2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"],
    ["21:59:43.10", 79183.1],
    ["-5", -5],
    ["2002-12-14", "2002-12-14"],
    ["2001-1-1", "2001-1-1"],
    ["2001-01-01T00:00:00Z", "2001-01-01T00:00:00Z"],
    ["0.0", 0],
    ["-0.0", -0],
    ["3.14159", 3.14159],
    ["1_2_3", 123],
    ["0x", "0x"],
    ["0b", "0b"],
    ["12e", "12e"],
    ["1e", "1e"],
    ["1.2.3", "1.2.3"],
    ["++1", "++1"],
    ["--1", "--1"],
    ["=", REFUSED],
    ["<<", REFUSED],
    ["1,000", "1,000"],
    ["$1", "$1"],
    ["1%", "1%"],
    ["0x1g", "0x1g"],
    ["07_7", 63],
    ["2001-12-14 21:59:43.10 -5", "2001-12-14 21:59:43.10 -5"],
    ["2001-12-14 21:59:43.10", "2001-12-14 21:59:43.10"],
  ];
  for (const [plain, expected] of cases) {
    if (expected === REFUSED) {
      assert.throws(() => parseYaml(`k: ${plain}\n`, "t.yaml"), /t\.yaml: YAML line 1/, plain);
      continue;
    }
    const actual = (parseYaml(`k: ${plain}\n`) as Record<string, YamlValue>).k;
    assert.ok(
      Object.is(actual, expected),
      `${plain}: got ${String(actual)}, expected ${String(expected)}`,
    );
  }
  // Merge keys and later duplicates behave as in PyYAML; unknown explicit tags are refused.
  assert.deepEqual(parseYaml("a: &x {k: 1}\nb:\n  <<: *x\n  z: 2\nb2: 1\nb2: 2\n"), {
    a: { k: 1 },
    b: { k: 1, z: 2 },
    b2: 2,
  });
  assert.throws(() => parseYaml("d: !!timestamp 2001-12-14\n"), /Unresolved tag/);
  assert.throws(() => parseYaml("s: !!set {a, b}\n"), /Unresolved tag/);
  assert.deepEqual(parseYaml("n: !!str 1\nf: !!float '2'\ni: !!int '0x1F'\nb: !!bool 'YeS'\n"), {
    n: "1",
    f: 2,
    i: 31,
    b: true,
  });
  assert.throws(() => parseYaml("f: !!float abc\n"), /could not convert string to float/);
});

Deno.test("metric values: Python float repr, and float() reads it back exactly", () => {
  const cases: [number, string][] = [
    [0.9814000129699707, "0.9814000129699707"],
    [5, "5.0"],
    [0.1 + 0.2, "0.30000000000000004"],
    [1e-5, "1e-05"],
    [0.0001, "0.0001"],
    [1e16, "1e+16"],
    [1e15, "1000000000000000.0"],
    [2 ** 53, "9007199254740992.0"],
    [1.5e300, "1.5e+300"],
    [-2.5e-7, "-2.5e-07"],
    [123456789.123, "123456789.123"],
    [-0, "-0.0"],
    [NaN, "nan"],
    [Infinity, "inf"],
    [-Infinity, "-inf"],
  ];
  for (const [value, text] of cases) {
    assert.equal(pythonFloatRepr(value), text);
    assert.ok(Object.is(parsePythonFloat(text), value), text);
  }
  const bits = new Float64Array(crypto.getRandomValues(new Uint32Array(2000)).buffer);
  for (const x of bits) assert.ok(Object.is(parsePythonFloat(pythonFloatRepr(x)), x), String(x));
  assert.equal(parsePythonFloat("Infinity"), Infinity);
  assert.throws(() => parsePythonFloat("0x10"), /could not convert/);
});

// ---------------------------------------------------------------------------------------------
// Writer

Deno.test("writer → reader round trip is identical", async () => {
  await withTempDir(async (dir) => {
    const store = new FileStore(path.join(dir, "mlruns"));
    const experimentId = await store.getOrCreateExperiment("tp1-mnist");
    assert.match(experimentId, /^[1-9]\d{17}$/);
    assert.equal(await store.getOrCreateExperiment("tp1-mnist"), experimentId);
    const run = await startRun(store, experimentId, {
      runName: "round-trip",
      tags: { team: "denograd" },
      startTime: 1_700_000_000_000,
    });
    assert.match(run.id, /^[0-9a-f]{32}$/);
    await run.logParams({
      epochs: 5,
      learning_rate: 0.001,
      tiny: 1e-5,
      shuffle: true,
      optimizer: "adam",
      shape: [32, 32, 1],
      none: null,
    });
    const values = [0.9814000129699707, NaN, Infinity, -Infinity, -0, 1e-7, 3];
    const expected = values.map((value, i) => ({
      timestamp: 1_700_000_001_000 + i,
      value,
      step: i,
    }));
    for (const p of expected) await run.logMetric("val/accuracy", p.value, p.step, p.timestamp);
    await run.logMetrics({ loss: 0.25, acc: 0.5 }, 7, 1_700_000_002_000);
    await run.setTag("note", "hello: world");
    await run.logArtifact("plots/loss.png", new Uint8Array([137, 80, 78, 71]));
    await run.logDict("config.json", { layers: [784, 10], name: "mlp é" });
    await run.logText("summary.txt", "Total params: 407,050\n");
    await run.end("FINISHED", 1_700_000_003_000);
    const runDir = await store.runDir(run.id);

    const read = await store.getRun(run.id);
    assert.deepEqual(read.info, {
      runId: run.id,
      runName: "round-trip",
      experimentId,
      userId: read.tags["mlflow.user"],
      status: "FINISHED",
      startTime: 1_700_000_000_000,
      endTime: 1_700_000_003_000,
      lifecycleStage: "active",
      artifactUri: pathToFileUri(path.join(runDir, "artifacts")),
    });
    assert.deepEqual(read.params, {
      epochs: "5",
      learning_rate: "0.001",
      tiny: "1e-05",
      shuffle: "True",
      optimizer: "adam",
      shape: "[32,32,1]",
      none: "",
    });
    assert.deepEqual(read.metrics, {
      "val/accuracy": expected,
      loss: [{ timestamp: 1_700_000_002_000, value: 0.25, step: 7 }],
      acc: [{ timestamp: 1_700_000_002_000, value: 0.5, step: 7 }],
    });
    assert.equal(read.tags.team, "denograd");
    assert.equal(read.tags.note, "hello: world");
    assert.deepEqual(read.warnings, []);
    assert.deepEqual(await store.searchRuns({ experimentIds: [experimentId] }), [read]);
    // mlflow.log_dict: 2-space indent, ASCII escapes, no trailing newline.
    const configJson = '{\n  "layers": [\n    784,\n    10\n  ],\n  "name": "mlp \\u00e9"\n}';
    assert.deepEqual(await store.listArtifacts(run.id), [
      { path: "config.json", isDir: false, fileSize: configJson.length },
      { path: "plots", isDir: true, fileSize: null },
      { path: "summary.txt", isDir: false, fileSize: 22 },
    ]);
    assert.deepEqual(
      await store.readArtifact(run.id, "plots/loss.png"),
      new Uint8Array([137, 80, 78, 71]),
    );
    assert.equal(
      new TextDecoder().decode(await store.readArtifact(run.id, "config.json")),
      configJson,
    );
    assert.equal(
      await Deno.readTextFile(path.join(runDir, "metrics", "val", "accuracy")),
      expected.map((p) => `${p.timestamp} ${pythonFloatRepr(p.value)} ${p.step}\n`).join(""),
    );
    assert.equal(await Deno.readTextFile(path.join(runDir, "params", "epochs")), "5");
    assert.deepEqual((await store.listExperiments()).map((e) => e.name), ["tp1-mnist", "Default"]);
  });
});

Deno.test("writer: layout and meta.yaml fields match MLflow's stores", async () => {
  await withTempDir(async (dir) => {
    const root = path.join(dir, "mlruns");
    const store = new FileStore(root);
    const experimentId = await store.getOrCreateExperiment("Default");
    assert.equal(experimentId, "0");
    const run = await startRun(store, experimentId);
    const runDir = await store.runDir(run.id);
    const artifactDir = path.join(runDir, "artifacts");
    // A RUNNING run, as MLflow's create_run writes it.
    const running = await Deno.readTextFile(path.join(runDir, "meta.yaml"));
    assert.match(running, /^end_time: null$/m);
    assert.match(running, /^status: 1$/m);
    assert.deepEqual(await entries(runDir), [
      "artifacts",
      "meta.yaml",
      "metrics",
      "params",
      "tags",
    ]);
    await run.logParam("epochs", 5);
    await run.logMetric("test_accuracy", 0.9814000129699707);
    await run.end();

    assert.deepEqual(await entries(root), [".trash", "0"]);
    const fixtureRun = path.join(BJ, "0", "5e76d8f6247446d0a192af8fb7bbe23f");
    const legacyRun = path.join(CN, "0", "eaaef4c095a447da83583c12c1cf46e9");
    // Same sub-folders as MLflow's run (outputs/ only exists with a logged model; git dropped the
    // fixture's empty artifacts/).
    assert.deepEqual(
      (await entries(runDir)).filter((e) => e !== "artifacts"),
      (await entries(fixtureRun)).filter((e) => e !== "outputs"),
    );
    const ours = await Deno.readTextFile(path.join(runDir, "meta.yaml"));
    const fixture = await Deno.readTextFile(path.join(fixtureRun, "meta.yaml"));
    // Same keys in the same (sorted) order as MLflow 3, plus run_uuid for 2.x readers (= 2.8's keys).
    assert.deepEqual(yamlKeys(ours).filter((k) => k !== "run_uuid"), yamlKeys(fixture));
    assert.deepEqual(
      yamlKeys(ours),
      yamlKeys(await Deno.readTextFile(path.join(legacyRun, "meta.yaml"))),
    );
    for (const line of ["entry_point_name: ''", "experiment_id: '0'", "lifecycle_stage: active"]) {
      assert.ok(ours.includes(line + "\n"), line);
    }
    for (const line of ["source_type: 4", "source_version: ''", "status: 3", "tags: []"]) {
      assert.ok(ours.includes(line + "\n"), line);
    }
    assert.ok(ours.includes(`artifact_uri: ${pathToFileUri(artifactDir)}\n`));
    assert.match(pathToFileUri(artifactDir), new RegExp(`^file:///.*/0/${run.id}/artifacts$`));
    assert.match(ours, new RegExp(`^run_name: [a-z]+-[a-z]+-\\d{1,4}\\n`, "m"));

    const ourExperiment = await Deno.readTextFile(path.join(root, "0", "meta.yaml"));
    const fixtureExperiment = await Deno.readTextFile(path.join(BJ, "0", "meta.yaml"));
    assert.deepEqual(yamlKeys(ourExperiment), yamlKeys(fixtureExperiment));
    assert.ok(ourExperiment.includes("experiment_id: '0'\nlast_update_time: "));
    assert.ok(ourExperiment.endsWith("lifecycle_stage: active\nname: Default\n"));
    assert.ok(
      ourExperiment.startsWith(`artifact_location: ${pathToFileUri(path.join(root, "0"))}\n`),
    );

    // The same standard tags as the MLflow 3.6 run (git commit only inside a work tree), plus
    // the process that writes the run (to tell a killed run from a running one).
    const expectedTags = await entries(path.join(fixtureRun, "tags"));
    const head = await gitHead(path.dirname(fileURLToPath(import.meta.url)));
    const ourTags = await entries(path.join(runDir, "tags"));
    assert.deepEqual(
      ourTags,
      [
        "denograd.process",
        ...(head ? expectedTags : expectedTags.filter((t) => !t.includes("git"))),
      ],
    );
    assert.match(
      await Deno.readTextFile(path.join(runDir, "tags", "denograd.process")),
      new RegExp(`^\\S+ ${Deno.pid} \\d+$`),
    );
    const read = await store.getRun(run.id);
    if (head) assert.equal(read.tags["mlflow.source.git.commit"], head);
    assert.equal(read.tags["mlflow.source.type"], "LOCAL");
    assert.equal(read.tags["mlflow.source.name"], path.join("tests", "tracking.test.ts"));
    assert.equal(read.tags["mlflow.runName"], read.info.runName);
    assert.equal(read.tags["mlflow.user"], read.info.userId);
    // Params/tags: exact value, no trailing newline; metric lines `ts value step`.
    assert.equal(await Deno.readTextFile(path.join(runDir, "params", "epochs")), "5");
    assert.equal(
      await Deno.readTextFile(path.join(runDir, "tags", "mlflow.source.type")),
      "LOCAL",
    );
    assert.match(
      await Deno.readTextFile(path.join(runDir, "metrics", "test_accuracy")),
      /^\d{13} 0\.9814000129699707 0\n$/,
    );
  });
});

Deno.test("writer: names, renames, concurrent logging, resume", async () => {
  await withTempDir(async (dir) => {
    const store = new FileStore(dir);
    const id = await store.getOrCreateExperiment("exp");
    for (let i = 0; i < 20; i++) {
      const run = await startRun(store, id, { sourceName: "x.ts" });
      assert.match(run.name, /^[a-z]+-[a-z]+-\d{1,4}$/);
      assert.ok(run.name.length <= 20);
      const n = Number(run.name.split("-")[2]);
      assert.ok(n >= 0 && n <= 1000);
    }
    await assert.rejects(
      () => startRun(store, id, { runName: "a", tags: { "mlflow.runName": "b" } }),
      /different values/,
    );
    const run = await startRun(store, id, { runName: "first" });
    await run.setTag("mlflow.runName", "renamed");
    assert.equal((await store.getRun(run.id)).info.runName, "renamed");

    // Fire-and-forget logging keeps call order; queued appends are coalesced.
    const pending = [];
    for (let step = 0; step < 200; step++) {
      pending.push(run.logMetric("loss", 1 / (step + 1), step));
    }
    await run.flush();
    await Promise.all(pending);
    const history = (await store.getRun(run.id)).metrics.loss;
    assert.deepEqual(history.map((p) => p.step), Array.from({ length: 200 }, (_, i) => i));
    await run.logParam("lr", 0.1);
    await run.end("KILLED");
    assert.equal((await store.getRun(run.id)).info.status, "KILLED");

    const resumed = await resumeRun(store, run.id);
    const meta = await Deno.readTextFile(path.join(await store.runDir(run.id), "meta.yaml"));
    assert.match(meta, /^status: 1$/m);
    assert.match(meta, /^end_time: null$/m);
    await resumed.logMetric("loss", 0.001, 200);
    await resumed.logParam("lr", 0.1);
    await assert.rejects(() => resumed.logParam("lr", 0.2), /Changing param values is not allowed/);
    await resumed.end();
    const final = await store.getRun(run.id);
    assert.equal(final.info.status, "FINISHED");
    assert.equal(final.metrics.loss.length, 201);
    assert.deepEqual(latestMetrics(final).loss.step, 200);
  });
});

Deno.test("withRun: FINISHED on success, FAILED (and rethrown) on exception", async () => {
  await withTempDir(async (dir) => {
    const store = new FileStore(dir);
    const value = await withRun(store, "ok", {}, async (run) => {
      await run.logMetric("x", 1);
      return 42;
    });
    assert.equal(value, 42);
    let failedId = "";
    await assert.rejects(
      () =>
        withRun(store, "boom", { runName: "crash" }, async (run) => {
          failedId = run.id;
          await run.logMetric("loss", 0.5, 0);
          throw new Error("training diverged");
        }),
      /training diverged/,
    );
    const okRuns = await store.searchRuns({
      experimentIds: [(await store.getExperimentByName("ok"))!.experimentId],
    });
    assert.equal(okRuns[0].info.status, "FINISHED");
    const failed = await store.getRun(failedId);
    assert.equal(failed.info.status, "FAILED");
    assert.equal(failed.info.runName, "crash");
    assert.ok(failed.info.endTime !== null && failed.info.endTime >= failed.info.startTime!);
    assert.deepEqual(failed.metrics.loss.map((p) => p.value), [0.5]);
  });
});

Deno.test({
  name: "withRun: SIGINT marks the run KILLED and exits with 130",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTempDir(async (dir) => {
      const script = path.join(dir, "train.ts");
      const runModule = new URL("../tracking/run.ts", import.meta.url).href;
      const storeModule = new URL("../tracking/store.ts", import.meta.url).href;
      await Deno.writeTextFile(
        script,
        `import { withRun } from "${runModule}";
import { openStore } from "${storeModule}";
await withRun(openStore(), "interrupted", {}, async (run) => {
  await run.logMetric("loss", 0.5, 0);
  console.log(run.id);
  await new Promise((resolve) => setTimeout(resolve, 60_000));
});`,
      );
      const child = new Deno.Command(Deno.execPath(), {
        // The script lives outside the repository: point it at the repository's import map.
        args: [
          "run",
          "-A",
          "--config",
          fileURLToPath(new URL("../deno.json", import.meta.url)),
          script,
        ],
        env: { MLFLOW_TRACKING_URI: `file:${path.join(dir, "mlruns")}` },
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = child.stdout.getReader();
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      const runId = text.trim();
      assert.match(runId, /^[0-9a-f]{32}$/);
      child.kill("SIGINT");
      reader.releaseLock();
      await child.stdout.cancel();
      const status = await child.status;
      assert.equal(status.code, 130);
      const run = await new FileStore(path.join(dir, "mlruns")).getRun(runId);
      assert.equal(run.info.status, "KILLED");
      assert.ok(run.info.endTime !== null);
      assert.deepEqual(run.metrics.loss.map((p) => p.value), [0.5]);
    });
  },
});

// ---------------------------------------------------------------------------------------------
// Atomic writes, URIs, validation

/**
 * Runs `count` processes of tests/fixtures/create_experiment.ts on `root` that all create
 * `name` at one instant (they wait for a file the test creates once all are ready); returns
 * what each printed.
 */
async function raceExperiment(root: string, name: string, mode: "create" | "get-or-create") {
  const count = 8;
  const script = fileURLToPath(new URL("./fixtures/create_experiment.ts", import.meta.url));
  const go = path.join(root, "..", `go-${crypto.randomUUID()}`);
  const children = Array.from({ length: count }, () =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", "--allow-env", script, root, name, mode, go],
      stdout: "piped",
      stderr: "inherit",
      signal: AbortSignal.timeout(120_000), // a hang bound only
    }).spawn());
  const readers = children.map((c) => c.stdout.pipeThrough(new TextDecoderStream()).getReader());
  const firstLines = await Promise.all(readers.map((r) => r.read()));
  assert.ok(firstLines.every((l) => l.value?.startsWith("ready")), "every process is ready");
  await Deno.writeTextFile(go, "");
  const outputs = await Promise.all(readers.map(async (reader, i) => {
    let text = firstLines[i].value!.replace(/^ready\n/, "");
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
    assert.equal((await children[i].status).code, 0);
    return text.trim();
  }));
  await Deno.remove(go);
  return outputs;
}

async function experimentsNamed(root: string, name: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const entry of Deno.readDir(root)) {
    const meta = await Deno.readTextFile(path.join(root, entry.name, "meta.yaml")).catch(() => "");
    if (meta.includes(`\nname: ${name}\n`)) ids.push(entry.name);
  }
  return ids;
}

Deno.test("experiments: 8 processes creating one name at the same instant leave exactly one", async () => {
  await withTempDir(async (dir) => {
    for (let trial = 0; trial < 3; trial++) {
      const root = path.join(dir, `mlruns-${trial}`);
      const outputs = await raceExperiment(root, "race", "get-or-create");
      const ids = await experimentsNamed(root, "race");
      assert.equal(ids.length, 1, `trial ${trial}: ${ids.length} experiments named 'race'`);
      assert.deepEqual(new Set(outputs), new Set([`id ${ids[0]}`]), outputs.join("\n"));
      // No lock left behind; the root holds what MLflow's does, nothing more.
      assert.deepEqual((await entries(root)).sort(), [".trash", "0", ids[0]].sort());
    }
    const root = path.join(dir, "mlruns-create");
    const outputs = await raceExperiment(root, "only-once", "create");
    const ids = await experimentsNamed(root, "only-once");
    assert.equal(ids.length, 1);
    assert.deepEqual(outputs.filter((o) => o === `id ${ids[0]}`).length, 1, outputs.join("\n"));
    assert.equal(
      outputs.filter((o) => o === `error Experiment 'only-once' already exists (id ${ids[0]})`)
        .length,
      7,
      outputs.join("\n"),
    );
  });
});

Deno.test("experiments: a name lock left by a dead process is taken over once stale", async () => {
  await withTempDir(async (dir) => {
    const store = new FileStore(dir);
    await store.getOrCreateExperiment("warm-up");
    assert.ok(!(await entries(dir)).some((n) => n.endsWith(".lock")), "no lock after creating");
    // What a process killed inside createExperiment leaves: its lock, named by the name's hash.
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode("after-crash")),
    );
    const hex = Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
    const stale = path.join(dir, `.experiment-${hex}.lock`);
    await Deno.writeTextFile(stale, '12345 0 "after-crash"\n');
    const old = new Date(Date.now() - 60_000);
    await Deno.utime(stale, old, old);
    const id = await store.getOrCreateExperiment("after-crash");
    assert.deepEqual(await experimentsNamed(dir, "after-crash"), [id]);
    assert.ok(!(await entries(dir)).some((n) => n.endsWith(".lock") || n.endsWith(".stale")));
  });
});

Deno.test("reader: links in the store are never followed, never hang, and spoil only their run", async () => {
  await withTempDir(async (dir) => {
    const root = path.join(dir, "mlruns");
    const outside = path.join(dir, "outside");
    await Deno.mkdir(outside);
    await Deno.writeTextFile(path.join(outside, "secret"), "s3cret");
    const store = new FileStore(root);
    const exp = await store.getOrCreateExperiment("links");
    const good = await startRun(store, exp, { runName: "good" });
    await good.logParam("lr", 0.1);
    await good.logMetric("loss", 0.5, 0);
    await good.logArtifact("notes.txt", "fine");
    await good.end();
    const bad = await startRun(store, exp, { runName: "bad" });
    await bad.logParam("kept", "yes");
    await bad.logMetric("acc", 0.75, 1);
    await bad.logArtifact("real.txt", "real");
    await bad.end();
    const runDir = await store.runDir(bad.id);
    // A param linked to a file outside the store, a metric linked to /dev/zero (endless), a
    // dangling tag, a looping link, a metrics sub-folder linked outside, an oversized param,
    // a linked artifact, and an experiment folder that is a link.
    await Deno.symlink(path.join(outside, "secret"), path.join(runDir, "params", "leak"));
    if (Deno.build.os === "linux") {
      await Deno.symlink("/dev/zero", path.join(runDir, "metrics", "zero"));
    }
    await Deno.symlink(path.join(dir, "nowhere"), path.join(runDir, "tags", "dangling"));
    await Deno.symlink(path.join(runDir, "params", "loop"), path.join(runDir, "params", "loop"));
    await Deno.symlink(outside, path.join(runDir, "metrics", "sub"));
    await Deno.writeTextFile(path.join(runDir, "params", "huge"), "x".repeat(100_000));
    await Deno.symlink(path.join(outside, "secret"), path.join(runDir, "artifacts", "link.txt"));
    await Deno.symlink(path.join(root, exp), path.join(root, "123456789"));

    const runs = await store.searchRuns({ experimentIds: [exp] });
    assert.deepEqual(runs.map((r) => r.info.runName).sort(), ["bad", "good"]);
    const goodRun = runs.find((r) => r.info.runName === "good")!;
    assert.deepEqual(goodRun.params, { lr: "0.1" });
    assert.deepEqual(goodRun.warnings, []);
    const badRun = runs.find((r) => r.info.runName === "bad")!;
    assert.deepEqual(badRun.params, { kept: "yes" });
    assert.deepEqual(Object.keys(badRun.metrics), ["acc"]);
    assert.ok(!Object.hasOwn(badRun.tags, "dangling"));
    const expected = [
      "params/leak is a symbolic link (not followed)",
      "params/loop is a symbolic link (not followed)",
      "tags/dangling is a symbolic link (not followed)",
      "metrics/sub is a symbolic link (not followed)",
      ...(Deno.build.os === "linux" ? ["metrics/zero is a symbolic link (not followed)"] : []),
    ];
    for (const warning of expected) assert.ok(badRun.warnings.includes(warning), warning);
    assert.ok(
      badRun.warnings.some((w) =>
        /^params\/huge not read: .* is 100000 bytes, over the 65536-byte limit$/.test(w)
      ),
      badRun.warnings.join("\n"),
    );
    assert.ok(!JSON.stringify(runs).includes("s3cret"));

    // Direct reads refuse rather than follow.
    if (Deno.build.os === "linux") {
      await assert.rejects(store.getMetricHistory(bad.id, "zero"), /is a symbolic link/);
    }
    await assert.rejects(store.getMetricHistory(bad.id, "sub/secret"), /is a symbolic link/);
    await assert.rejects(store.readArtifact(bad.id, "link.txt"), /is a symbolic link/);
    assert.deepEqual((await store.listArtifacts(bad.id)).map((a) => a.path), ["real.txt"]);
    assert.equal(new TextDecoder().decode(await store.readArtifact(bad.id, "real.txt")), "real");
    // The linked experiment folder is not an experiment.
    assert.deepEqual(
      (await store.listExperiments()).map((e) => e.experimentId).sort(),
      [
        "0",
        exp,
      ].sort(),
    );
  });
});

Deno.test("reader: an artifact_uri outside the store is not read", async () => {
  await withTempDir(async (dir) => {
    const store = new FileStore(path.join(dir, "mlruns"));
    const exp = await store.getOrCreateExperiment("elsewhere");
    const run = await startRun(store, exp, { runName: "r" });
    await run.end();
    const meta = path.join(await store.runDir(run.id), "meta.yaml");
    const text = await Deno.readTextFile(meta);
    await Deno.writeTextFile(
      meta,
      text.replace(/^artifact_uri: .*$/m, `artifact_uri: ${pathToFileUri("/etc")}`),
    );
    await assert.rejects(
      store.readArtifact(run.id, "passwd"),
      /keeps its artifacts outside the store/,
    );
    await assert.rejects(store.listArtifacts(run.id), /outside the store/);
  });
});

Deno.test("a run whose process was killed is reported stale; markStaleRun ends it; its temp file goes", async () => {
  await withTempDir(async (dir) => {
    const script = fileURLToPath(new URL("./fixtures/killed_run.ts", import.meta.url));
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, dir],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let printed = "";
    while (!printed.includes("\n")) {
      const { done, value } = await reader.read();
      if (done) break;
      printed += value;
    }
    const runId = printed.trim();
    const store = new FileStore(dir);
    const alive = await store.getRun(runId);
    assert.equal(alive.info.status, "RUNNING");
    assert.equal(alive.stale, undefined, "its process is alive");
    assert.equal(await markStaleRun(store, runId), false);
    const artifacts = path.join(await store.runDir(runId), "artifacts");
    const temps = async () => (await entries(artifacts)).filter((n) => TEMP_FILE_PATTERN.test(n));
    assert.equal((await temps()).length, 1, "the unfinished write's temp file");

    child.kill("SIGKILL");
    await child.status;
    await reader.cancel();
    const killed = await store.getRun(runId);
    assert.equal(killed.info.status, "RUNNING");
    assert.equal(killed.stale, true);
    assert.match(killed.warnings.join("\n"), /RUNNING, but its process \(pid \d+ on .*\) is gone/);
    const [listed] = await store.searchRuns({ experimentIds: [killed.info.experimentId] });
    assert.equal(listed.stale, true);

    assert.equal(await markStaleRun(store, runId), true);
    const ended = await store.getRun(runId);
    assert.equal(ended.info.status, "KILLED");
    const lastPoint = Math.max(
      killed.info.startTime!,
      ...killed.metrics.loss.map((p) => p.timestamp),
    );
    assert.equal(ended.info.endTime, lastPoint, "ended at its last logged point");
    assert.equal(ended.stale, undefined);

    // The killed writer's temp file (aged past the pid-reuse guard) goes with the next write
    // to its folder; a live writer's stays until it is ORPHAN_TEMP_MS old.
    const [orphan] = await temps();
    const aged = new Date(Date.now() - 5_000);
    await Deno.utime(path.join(artifacts, orphan), aged, aged);
    const mine = `.x.${Deno.pid.toString(16).padStart(8, "0")}abcd.tmp`;
    await Deno.writeTextFile(path.join(artifacts, mine), "in progress");
    await Deno.utime(path.join(artifacts, mine), aged, aged);
    const ancient = ".y.00000001abcd.tmp"; // any writer, untouched for an hour
    await Deno.writeTextFile(path.join(artifacts, ancient), "");
    const hourAgo = new Date(Date.now() - 3_600_000);
    await Deno.utime(path.join(artifacts, ancient), hourAgo, hourAgo);
    await store.writeArtifact(runId, "after.txt", "next write");
    assert.deepEqual(await temps(), [mine]);
  });
});

Deno.test("writeFileAtomic: a failure midway leaves the previous file intact and no temp file", async () => {
  await withTempDir(async (dir) => {
    const target = path.join(dir, "sub", "checkpoint.bin");
    await writeFileAtomic(target, "old content");
    assert.equal(await Deno.readTextFile(target), "old content");

    async function* failingProducer() {
      yield new TextEncoder().encode("new half");
      throw new Error("producer crashed");
    }
    await assert.rejects(() => writeFileAtomic(target, failingProducer()), /producer crashed/);
    assert.equal(await Deno.readTextFile(target), "old content");
    assert.deepEqual(await entries(path.join(dir, "sub")), ["checkpoint.bin"]);

    // The rename fails: the target is a non-empty directory.
    const blocked = path.join(dir, "blocked");
    await Deno.mkdir(blocked);
    await Deno.writeTextFile(path.join(blocked, "keep.txt"), "kept");
    await assert.rejects(() => writeFileAtomic(blocked, "data"));
    assert.equal(await Deno.readTextFile(path.join(blocked, "keep.txt")), "kept");
    assert.deepEqual((await entries(dir)).filter((e) => TEMP_FILE_PATTERN.test(e)), []);

    // Concurrent writers: the result is one complete version, never a mix.
    const versions = Array.from({ length: 8 }, (_, i) => String(i).repeat(10_000));
    await Promise.all(versions.map((v) => writeFileAtomic(target, v)));
    assert.ok(versions.includes(await Deno.readTextFile(target)));
    assert.deepEqual(await entries(path.join(dir, "sub")), ["checkpoint.bin"]);
  });
});

Deno.test("MLFLOW_TRACKING_URI is respected; non-file URIs are refused clearly", async () => {
  const saved = Deno.env.get("MLFLOW_TRACKING_URI");
  try {
    await withTempDir(async (dir) => {
      Deno.env.set("MLFLOW_TRACKING_URI", `file:${dir}`);
      const store = openStore() as FileStore;
      assert.equal(store.root, dir);
      const id = await store.getOrCreateExperiment("from-env");
      assert.ok((await Deno.stat(path.join(dir, id, "meta.yaml"))).isFile);
      Deno.env.set("MLFLOW_TRACKING_URI", pathToFileUri(path.join(dir, "a b")));
      assert.equal((openStore() as FileStore).root, path.join(dir, "a b"));
      Deno.env.set("MLFLOW_TRACKING_URI", path.join(dir, "plain"));
      assert.equal((openStore() as FileStore).root, path.join(dir, "plain"));
      Deno.env.set("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db");
      assert.throws(() => openStore(), /'sqlite' scheme.*only MLflow's file store/);
    });
    Deno.env.delete("MLFLOW_TRACKING_URI");
    assert.equal((openStore() as FileStore).root, path.resolve("mlruns"));
    assert.equal(resolveTrackingRoot("file:runs/x"), path.resolve("runs/x"));
    assert.equal(resolveTrackingRoot("file://localhost/tmp/r"), "/tmp/r");
    assert.throws(() => resolveTrackingRoot("http://localhost:5000"), /'http' scheme/);
    assert.throws(() => openStore("databricks://profile"), /only MLflow's file store/);
    assert.throws(() => resolveTrackingRoot("sqlite:///mlflow.db"), /'sqlite' scheme/);
    assert.throws(() => resolveTrackingRoot("file://server/share"), /remote host 'server'/);
    assert.throws(() => resolveTrackingRoot("file:///bad%zz"), /malformed %-escape/);
    assert.equal(
      pathToFileUri("/home/x/projet DL/avancé"),
      "file:///home/x/projet%20DL/avanc%C3%A9",
    );
    assert.equal(pathToFileUri("C:\\Users\\DELL\\a b"), "file:///C:/Users/DELL/a%20b");
  } finally {
    if (saved === undefined) Deno.env.delete("MLFLOW_TRACKING_URI");
    else Deno.env.set("MLFLOW_TRACKING_URI", saved);
  }
});

Deno.test("bad keys, values, paths and ids give MLflow's errors", async () => {
  await withTempDir(async (dir) => {
    const store = new FileStore(dir);
    const run = await startRun(store, await store.getOrCreateExperiment("v"), { sourceName: "v" });
    const runDir = await store.runDir(run.id);
    await assert.rejects(
      () => run.logMetric("bad key!", 1),
      /Invalid metric name: 'bad key!'\. Names may only contain/,
    );
    await assert.rejects(() => run.logMetric("../up", 1), /would resolve to '\.\.\/up'/);
    await assert.rejects(() => run.logMetric("a//b", 1), /would resolve to 'a\/b'/);
    await assert.rejects(() => run.logMetric("/abs", 1), /Invalid metric name/);
    await assert.rejects(() => run.logParam("", 1), /Invalid parameter name: ''/);
    await assert.rejects(
      () => run.setTag("x".repeat(251), 1),
      /had length 251, which exceeded length limit of 250/,
    );
    await assert.rejects(
      () => run.logParam("p", "v".repeat(6001)),
      /Param value .* exceeded length limit of 6000/,
    );
    await assert.rejects(
      () => run.logMetric("m", "0.5" as unknown as number),
      /invalid value 0\.5 for metric 'm'/,
    );
    await assert.rejects(() => run.logMetric("m", 1, 1.5), /invalid step 1\.5/);
    await assert.rejects(() => run.logMetric("m", 1, 0, -1), /invalid timestamp -1/);
    await run.logParam("lr", 0.1);
    await run.logParam("lr", "0.1");
    await assert.rejects(
      () => run.logParam("lr", 0.2),
      new RegExp(
        `Param with key='lr' was already logged with value='0\\.1' for run ID='${run.id}'`,
      ),
    );
    await assert.rejects(
      () => run.logArtifact("../escape.txt", "x"),
      /invalid artifact path '\.\.\/escape\.txt'/,
    );
    await assert.rejects(() => run.logText("/etc/passwd", "x"), /invalid artifact path/);
    await assert.rejects(() => store.getOrCreateExperiment(""), /Invalid experiment name/);
    await assert.rejects(() => store.getRun("../../etc"), /Invalid run ID: '\.\.\/\.\.\/etc'/);
    await assert.rejects(() => store.getRun("0123456789abcdef0123456789abcdef"), /not found/);
    await assert.rejects(() => store.listArtifacts(run.id, "../.."), /invalid artifact path/);
    await assert.rejects(() => startRun(store, "999"), /Could not find experiment with ID 999/);
    await assert.rejects(
      () => run.end("RUNNING" as "FINISHED"),
      /must be FINISHED, FAILED or KILLED/,
    );
    // Nothing invalid reached the disk.
    assert.deepEqual(await entries(path.join(runDir, "metrics")), []);
    assert.deepEqual(await entries(path.join(runDir, "params")), ["lr"]);
  });
});
