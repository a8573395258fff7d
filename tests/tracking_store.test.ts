// The TrackingStore interface is a real seam: one behavioural spec, driven through withRun and
// the Run handle, runs against a small in-memory store (below) and against MLflow's file store.
import assert from "node:assert/strict";
import * as path from "node:path";
import { FileStore } from "../tracking/file_store.ts";
import { resumeRun, type Run, startRun, withRun } from "../tracking/run.ts";
import { latestMetrics, selectRuns } from "../tracking/search.ts";
import type {
  ArtifactData,
  ArtifactInfo,
  CreateRunOptions,
  Experiment,
  LogBatch,
  LoggedModel,
  MetricPoint,
  RunInfo,
  RunQuery,
  RunRecord,
  TerminalStatus,
  TrackingStore,
} from "../tracking/store.ts";
import {
  paramChangedError,
  validateArtifactPath,
  validateBatch,
  validateExperimentName,
  validateKey,
  validateTag,
  validateTermination,
} from "../tracking/validation.ts";

async function bytesOf(data: ArtifactData): Promise<Uint8Array> {
  if (typeof data === "string") return new TextEncoder().encode(data);
  if (data instanceof Uint8Array) return data.slice();
  const chunks: Uint8Array[] = [];
  for await (const chunk of data) chunks.push(chunk);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Runs `fn` as a promise, so its errors reject (TrackingStore methods never throw). */
function later<T>(fn: () => T | Promise<T>): Promise<T> {
  return Promise.resolve().then(fn);
}

/** A TrackingStore in a few maps: the second backend that proves the interface is enough. */
class MemoryStore implements TrackingStore {
  readonly problems: string[] = [];
  #experiments = new Map<string, Experiment>();
  #runs = new Map<string, { record: RunRecord; artifacts: Map<string, Uint8Array> }>();

  #run(runId: string) {
    const run = this.#runs.get(runId);
    if (!run) throw new Error(`Run '${runId}' not found`);
    return run;
  }

  #activeRun(runId: string) {
    const run = this.#run(runId);
    if (run.record.info.lifecycleStage !== "active") throw new Error(`Run '${runId}' is deleted`);
    return run;
  }

  listExperiments(options: { includeDeleted?: boolean } = {}): Promise<Experiment[]> {
    return later(() =>
      [...this.#experiments.values()].reverse()
        .filter((e) => options.includeDeleted || e.lifecycleStage === "active")
        .map((e) => structuredClone(e))
    );
  }

  getExperiment(experimentId: string): Promise<Experiment> {
    return later(() => {
      const experiment = this.#experiments.get(experimentId);
      if (!experiment) throw new Error(`Could not find experiment with ID ${experimentId}`);
      return structuredClone(experiment);
    });
  }

  async getExperimentByName(name: string): Promise<Experiment | null> {
    return (await this.listExperiments()).find((e) => e.name === name) ?? null;
  }

  createExperiment(name: string): Promise<string> {
    return later(() => {
      validateExperimentName(name);
      if ([...this.#experiments.values()].some((e) => e.name === name)) {
        throw new Error(`Experiment '${name}' already exists`);
      }
      const experimentId = String(this.#experiments.size + 1);
      const now = Date.now();
      this.#experiments.set(experimentId, {
        experimentId,
        name,
        artifactLocation: `memory:/${experimentId}`,
        lifecycleStage: "active",
        creationTime: now,
        lastUpdateTime: now,
        tags: {},
      });
      return experimentId;
    });
  }

  async getOrCreateExperiment(name: string): Promise<string> {
    return (await this.getExperimentByName(name))?.experimentId ??
      await this.createExperiment(name);
  }

  async setExperimentTag(experimentId: string, key: string, value: string): Promise<void> {
    validateTag(key, value);
    await this.getExperiment(experimentId);
    this.#experiments.get(experimentId)!.tags[key] = value;
  }

  async createRun(experimentId: string, options: CreateRunOptions): Promise<RunInfo> {
    await this.getExperiment(experimentId);
    const tags = { ...options.tags };
    for (const [key, value] of Object.entries(tags)) validateTag(key, value);
    const tagName = tags["mlflow.runName"];
    if (options.runName && tagName && options.runName !== tagName) {
      throw new Error(
        "Both 'runName' and the 'mlflow.runName' tag are given, with different values",
      );
    }
    const runName = options.runName || tagName || `run-${this.#runs.size}`;
    tags["mlflow.runName"] = runName;
    const runId = crypto.randomUUID().replaceAll("-", "");
    const info: RunInfo = {
      runId,
      runName,
      experimentId,
      userId: options.userId,
      status: "RUNNING",
      startTime: options.startTime,
      endTime: null,
      lifecycleStage: "active",
      artifactUri: `memory:/${experimentId}/${runId}`,
    };
    const record = { info, params: {}, metrics: {}, tags, outputs: [], warnings: [] };
    this.#runs.set(runId, { record, artifacts: new Map() });
    return structuredClone(info);
  }

  reopenRun(runId: string): Promise<RunRecord> {
    return later(() => {
      const { record } = this.#activeRun(runId);
      Object.assign(record.info, { status: "RUNNING", endTime: null });
      return structuredClone(record);
    });
  }

  logBatch(runId: string, batch: LogBatch): Promise<void> {
    return later(() => {
      validateBatch(batch);
      const { record } = this.#activeRun(runId);
      for (const { key, value } of batch.params ?? []) {
        const previous = record.params[key];
        if (previous !== undefined && previous !== value) {
          throw paramChangedError(runId, key, previous, value);
        }
      }
      for (const { key, value } of batch.params ?? []) record.params[key] = value;
      for (const { key, ...point } of batch.metrics ?? []) (record.metrics[key] ??= []).push(point);
      for (const { key, value } of batch.tags ?? []) {
        record.tags[key] = value;
        if (key === "mlflow.runName") record.info.runName = value;
      }
    });
  }

  setTerminated(runId: string, status: TerminalStatus, endTime: number): Promise<void> {
    return later(() => {
      validateTermination(status, endTime);
      Object.assign(this.#activeRun(runId).record.info, { status, endTime });
    });
  }

  getRun(runId: string): Promise<RunRecord> {
    return later(() => structuredClone(this.#run(runId).record));
  }

  searchRuns(query: RunQuery): Promise<RunRecord[]> {
    return later(() => {
      const runs = [...this.#runs.values()].map((r) => r.record)
        .filter((r) => query.experimentIds.includes(r.info.experimentId));
      return structuredClone(selectRuns(runs, query));
    });
  }

  getMetricHistory(runId: string, key: string): Promise<MetricPoint[]> {
    return later(() => {
      validateKey("metric", key);
      return structuredClone(this.#run(runId).record.metrics[key] ?? []);
    });
  }

  listArtifacts(runId: string, relPath = ""): Promise<ArtifactInfo[]> {
    return later(() => {
      if (relPath !== "") validateArtifactPath(relPath, "listArtifacts");
      const prefix = relPath === "" ? "" : relPath + "/";
      const children = new Map<string, ArtifactInfo>();
      for (const [file, bytes] of this.#run(runId).artifacts) {
        if (!file.startsWith(prefix)) continue;
        const [name, ...rest] = file.slice(prefix.length).split("/");
        const isDir = rest.length > 0;
        children.set(name, { path: prefix + name, isDir, fileSize: isDir ? null : bytes.length });
      }
      return [...children.values()].sort((a, b) => a.path < b.path ? -1 : 1);
    });
  }

  readArtifact(runId: string, relPath: string): Promise<Uint8Array> {
    return later(() => {
      validateArtifactPath(relPath, "readArtifact");
      const bytes = this.#run(runId).artifacts.get(relPath);
      if (!bytes) throw new Error(`No artifact '${relPath}'`);
      return bytes.slice();
    });
  }

  async writeArtifact(runId: string, relPath: string, data: ArtifactData): Promise<void> {
    validateArtifactPath(relPath, "writeArtifact");
    this.#run(runId).artifacts.set(relPath, await bytesOf(data));
  }

  listLoggedModels(_experimentId: string): Promise<LoggedModel[]> {
    return later(() => []);
  }
}

/** Counts the calls each interface method gets, to see what the Run handle sends. */
function counted(store: TrackingStore, calls: Map<string, number>): TrackingStore {
  return new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls.set(String(property), (calls.get(String(property)) ?? 0) + 1);
        return value.apply(target, args);
      };
    },
  });
}

const BACKENDS: [string, (dir: string) => TrackingStore][] = [
  ["memory", () => new MemoryStore()],
  ["file", (dir) => new FileStore(path.join(dir, "mlruns"))],
];

function specTest(name: string, fn: (store: TrackingStore) => Promise<void>): void {
  for (const [backend, open] of BACKENDS) {
    Deno.test(`TrackingStore (${backend}): ${name}`, async () => {
      const dir = await Deno.makeTempDir({ prefix: "denograd-store-" });
      try {
        await fn(open(dir));
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

specTest("withRun logs params, metrics, tags and artifacts, then FINISHED", async (store) => {
  let runId = "";
  const answer = await withRun(store, "spec", {
    runName: "first",
    tags: { team: "denograd" },
    sourceName: "spec.ts",
  }, async (run) => {
    runId = run.id;
    assert.equal(run.name, "first");
    assert.equal(run.status, "RUNNING");
    await run.logParams({ epochs: 5, lr: 0.001, shuffle: true, shape: [28, 28] });
    for (let step = 0; step < 3; step++) {
      await run.logMetrics({ loss: 1 / (step + 1), acc: step / 4 }, step, 1_700_000_000_000 + step);
    }
    await run.setTag("note", "hello: world");
    await run.logArtifact("plots/loss.png", new Uint8Array([137, 80, 78, 71]));
    await run.logDict("config.json", { name: "mlp é" });
    await run.logText("summary.txt", "ok\n");
    return 42;
  });
  assert.equal(answer, 42);

  const run = await store.getRun(runId);
  assert.equal(run.info.status, "FINISHED");
  assert.equal(run.info.runName, "first");
  assert.equal(run.info.lifecycleStage, "active");
  assert.ok(run.info.endTime !== null && run.info.endTime >= run.info.startTime!);
  assert.equal(run.info.experimentId, (await store.getExperimentByName("spec"))!.experimentId);
  assert.deepEqual(run.params, { epochs: "5", lr: "0.001", shuffle: "True", shape: "[28,28]" });
  const loss = [0, 1, 2].map((step) => ({
    timestamp: 1_700_000_000_000 + step,
    value: 1 / (step + 1),
    step,
  }));
  assert.deepEqual(run.metrics.loss, loss);
  assert.deepEqual(await store.getMetricHistory(runId, "loss"), loss);
  assert.deepEqual(await store.getMetricHistory(runId, "never_logged"), []);
  assert.equal(latestMetrics(run).acc.value, 0.5);
  assert.equal(run.tags.team, "denograd");
  assert.equal(run.tags.note, "hello: world");
  assert.equal(run.tags["mlflow.runName"], "first");
  assert.equal(run.tags["mlflow.source.name"], "spec.ts");
  assert.equal(run.tags["mlflow.source.type"], "LOCAL");
  assert.equal(run.tags["mlflow.user"], run.info.userId);

  assert.deepEqual(await store.listArtifacts(runId), [
    { path: "config.json", isDir: false, fileSize: 26 },
    { path: "plots", isDir: true, fileSize: null },
    { path: "summary.txt", isDir: false, fileSize: 3 },
  ]);
  assert.deepEqual(await store.listArtifacts(runId, "plots"), [
    { path: "plots/loss.png", isDir: false, fileSize: 4 },
  ]);
  assert.equal(
    decode(await store.readArtifact(runId, "config.json")),
    '{\n  "name": "mlp \\u00e9"\n}',
  );
  assert.deepEqual(
    await store.readArtifact(runId, "plots/loss.png"),
    new Uint8Array([137, 80, 78, 71]),
  );
});

specTest("withRun marks a throwing run FAILED and rethrows", async (store) => {
  let runId = "";
  await assert.rejects(
    () =>
      withRun(store, "spec", { sourceName: "spec.ts" }, async (run) => {
        runId = run.id;
        await run.logMetric("loss", 0.5);
        throw new Error("diverged");
      }),
    /diverged/,
  );
  const run = await store.getRun(runId);
  assert.equal(run.info.status, "FAILED");
  assert.deepEqual(run.metrics.loss.map((p) => p.value), [0.5]);
  assert.match(run.info.runName, /\S/);
});

specTest(
  "log batches: params immutable, all-or-nothing validation, MLflow limits",
  async (store) => {
    const calls = new Map<string, number>();
    const spied = counted(store, calls);
    const experimentId = await spied.getOrCreateExperiment("batches");
    const run = await startRun(spied, experimentId, { sourceName: "spec.ts" });
    // Fire-and-forget logging: everything queued behind one write goes out as one batch.
    calls.clear();
    const pending = [];
    for (let step = 0; step < 300; step++) {
      pending.push(
        run.logMetric("loss", 1 / (step + 1), step),
      );
    }
    await Promise.all(pending);
    assert.equal(calls.get("logBatch"), 1);
    // More params than one batch may carry: the Run splits them (the store refuses > 100).
    const many = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`p${i}`, i]));
    calls.clear();
    await run.logParams(many);
    assert.equal(calls.get("logBatch"), 3);
    await assert.rejects(
      () =>
        store.logBatch(run.id, {
          params: Array.from({ length: 101 }, (_, i) => ({ key: `q${i}`, value: "1" })),
        }),
      /at most 1000 metrics, 100 params and 100 tags/,
    );

    await run.logParam("lr", 0.1);
    await run.logParam("lr", "0.1");
    await assert.rejects(() => run.logParam("lr", 0.2), /Param with key='lr' was already logged/);
    // The store enforces it too, and a batch with one bad entry writes nothing.
    await assert.rejects(
      () =>
        store.logBatch(run.id, {
          metrics: [{ key: "acc", value: 1, step: 0, timestamp: 1 }],
          params: [{ key: "lr", value: "0.3" }],
        }),
      new RegExp(`Changing param values is not allowed.*run ID='${run.id}'`),
    );
    await assert.rejects(
      () =>
        store.logBatch(run.id, {
          metrics: [{ key: "acc", value: 1, step: 0, timestamp: 1 }],
          tags: [{ key: "bad key!", value: "x" }],
        }),
      /Invalid tag name: 'bad key!'/,
    );
    await assert.rejects(
      () =>
        store.logBatch(run.id, { params: [{ key: "a", value: "1" }, { key: "a", value: "2" }] }),
      /Duplicate parameter keys/,
    );
    assert.deepEqual(await store.getMetricHistory(run.id, "acc"), []);
    await assert.rejects(() => run.logMetric("../up", 1), /would resolve to/);
    await assert.rejects(() => run.logArtifact("../x", "x"), /invalid artifact path/);

    const read = await store.getRun(run.id);
    assert.equal(read.metrics.loss.length, 300);
    assert.equal(Object.keys(read.params).length, 251);
    assert.equal(read.params.lr, "0.1");
    await run.end("KILLED");
    assert.equal((await store.getRun(run.id)).info.status, "KILLED");
    await assert.rejects(
      () => run.end("RUNNING" as "FINISHED"),
      /must be FINISHED, FAILED or KILLED/,
    );
  },
);

specTest("rename, resume and end again", async (store) => {
  const experimentId = await store.getOrCreateExperiment("resume");
  assert.equal(await store.getOrCreateExperiment("resume"), experimentId);
  await assert.rejects(() => store.createExperiment("resume"), /already exists/);
  const run = await startRun(store, experimentId, { runName: "a", sourceName: "spec.ts" });
  await run.setTag("mlflow.runName", "b");
  assert.equal(run.name, "b");
  assert.equal((await store.getRun(run.id)).info.runName, "b");
  await run.logParam("seed", 1);
  await run.logMetric("loss", 1, 0);
  await run.end("KILLED", 1_700_000_000_000);

  const resumed: Run = await resumeRun(store, run.id);
  assert.equal(resumed.status, "RUNNING");
  const reopened = await store.getRun(run.id);
  assert.equal(reopened.info.status, "RUNNING");
  assert.equal(reopened.info.endTime, null);
  await assert.rejects(() => resumed.logParam("seed", 2), /Changing param values is not allowed/);
  await resumed.logMetric("loss", 0.5, 1);
  await resumed.end();
  const final = await store.getRun(run.id);
  assert.equal(final.info.status, "FINISHED");
  assert.equal(final.info.runName, "b");
  assert.deepEqual(final.metrics.loss.map((p) => p.step), [0, 1]);
  await assert.rejects(
    () => startRun(store, experimentId, { runName: "x", tags: { "mlflow.runName": "y" } }),
    /different values/,
  );
});

specTest("searchRuns: experiments, status, filters, order, limit", async (store) => {
  const e1 = await store.getOrCreateExperiment("search-1");
  const e2 = await store.getOrCreateExperiment("search-2");
  const specs = [
    { experiment: e1, name: "adam-1", opt: "adam", acc: 0.9, start: 1000, end: "FINISHED" },
    { experiment: e1, name: "sgd-1", opt: "sgd", acc: 0.7, start: 2000, end: "FAILED" },
    { experiment: e1, name: "adam-2", opt: "Adam", acc: null, start: 3000, end: null },
    { experiment: e2, name: "rms-1", opt: "rmsprop", acc: 0.8, start: 4000, end: "FINISHED" },
  ] as const;
  const ids: Record<string, string> = {};
  for (const spec of specs) {
    const run = await startRun(store, spec.experiment, {
      runName: spec.name,
      startTime: spec.start,
      sourceName: "spec.ts",
    });
    ids[spec.name] = run.id;
    await run.logParam("optimizer", spec.opt);
    if (spec.acc !== null) {
      await run.logMetric("acc", 0.1, 0);
      await run.logMetric("acc", spec.acc, 1);
    }
    if (spec.end) await run.end(spec.end, spec.start + 500);
  }
  const names = (runs: RunRecord[]) => runs.map((r) => r.info.runName);

  // Default order: newest start first.
  assert.deepEqual(names(await store.searchRuns({ experimentIds: [e1] })), [
    "adam-2",
    "sgd-1",
    "adam-1",
  ]);
  assert.deepEqual(names(await store.searchRuns({ experimentIds: [e1, e2], maxResults: 2 })), [
    "rms-1",
    "adam-2",
  ]);
  assert.deepEqual(
    names(await store.searchRuns({ experimentIds: [e1, e2], statuses: ["FINISHED"] })),
    ["rms-1", "adam-1"],
  );
  assert.deepEqual(
    names(
      await store.searchRuns({
        experimentIds: [e1, e2],
        where: [{ field: "metrics.acc", op: ">=", value: 0.75 }],
      }),
    ),
    ["rms-1", "adam-1"],
  );
  assert.deepEqual(
    names(
      await store.searchRuns({
        experimentIds: [e1],
        where: [{ field: "params.optimizer", op: "ILIKE", value: "adam%" }],
      }),
    ),
    ["adam-2", "adam-1"],
  );
  assert.deepEqual(
    names(
      await store.searchRuns({
        experimentIds: [e1],
        where: [
          { field: "params.optimizer", op: "LIKE", value: "a_am" },
          { field: "attributes.status", op: "!=", value: "RUNNING" },
        ],
      }),
    ),
    ["adam-1"],
  );
  assert.deepEqual(
    names(
      await store.searchRuns({
        experimentIds: [e1],
        where: [{ field: "tags.mlflow.runName", op: "=", value: "sgd-1" }],
      }),
    ),
    ["sgd-1"],
  );
  // Ordered by the latest acc, best first; the run without acc comes last either way.
  for (const descending of [true, false]) {
    const ordered = names(
      await store.searchRuns({
        experimentIds: [e1, e2],
        orderBy: [{ field: "metrics.acc", descending }],
      }),
    );
    const withAcc = ["adam-1", "rms-1", "sgd-1"];
    assert.deepEqual(ordered, [...(descending ? withAcc : withAcc.reverse()), "adam-2"]);
  }
  assert.deepEqual(
    names(
      await store.searchRuns({
        experimentIds: [e1],
        orderBy: [{ field: "attributes.start_time" }],
      }),
    ),
    ["adam-1", "sgd-1", "adam-2"],
  );
  assert.deepEqual(await store.searchRuns({ experimentIds: [e1], lifecycle: "deleted" }), []);
  await assert.rejects(
    () =>
      store.searchRuns({
        experimentIds: [e1],
        where: [{ field: "nope.x" as "metrics.x", op: "=", value: 1 }],
      }),
    /Invalid search field 'nope\.x'/,
  );
  assert.equal((await store.getRun(ids["adam-1"])).info.endTime, 1500);
});
