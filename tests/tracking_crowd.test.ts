// Many processes writing one MLflow file store at once, as a sweep's tasks do: 16 processes
// that start at one instant, each creating the same experiment by name and logging a whole run
// in it, leave a store that follows MLflow's layout rules (shared/MLFLOW-FILESTORE.md §2–6): one
// experiment, 16 FINISHED runs, nothing else.
import assert from "node:assert/strict";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { pathToFileUri } from "../tracking/file_uri.ts";
import { openStore } from "../tracking/store.ts";
import { parseYaml } from "../tracking/yaml.ts";

const PROCESSES = 16;

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

async function yaml(file: string): Promise<Record<string, unknown>> {
  return parseYaml(await Deno.readTextFile(file)) as Record<string, unknown>;
}

Deno.test(`store: ${PROCESSES} processes creating runs in one experiment at once leave MLflow's layout`, async () => {
  const dir = await Deno.makeTempDir({ prefix: "denograd-crowd-" });
  const root = path.join(dir, "mlruns");
  const go = path.join(dir, "go");
  const script = fileURLToPath(new URL("./fixtures/crowd_run.ts", import.meta.url));
  const children = Array.from({ length: PROCESSES }, (_, i) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, root, "crowd", String(i), go],
      stdout: "piped",
      stderr: "inherit",
      signal: AbortSignal.timeout(180_000), // a hang bound only
    }).spawn());
  const readers = children.map((c) => c.stdout.pipeThrough(new TextDecoderStream()).getReader());
  const first = await Promise.all(readers.map((r) => r.read()));
  assert.ok(first.every((l) => l.value?.startsWith("ready")), "every process is ready");
  await Deno.writeTextFile(go, "");
  for (const [i, child] of children.entries()) {
    while (!(await readers[i].read()).done);
    assert.equal((await child.status).code, 0, `process ${i}`);
  }

  // The root: Default (0), one experiment, .trash — no lock or temp file left behind.
  const entries = await names(root);
  assert.equal(entries.length, 3, entries.join(", "));
  const [id] = entries.filter((n) => n !== "0" && n !== ".trash");
  assert.match(id, /^[1-9]\d{17}$/, "a random 18-digit experiment id, as MLflow's");
  const experimentDir = path.join(root, id);
  const experiment = await yaml(path.join(experimentDir, "meta.yaml"));
  assert.equal(experiment.experiment_id, id);
  assert.equal(experiment.name, "crowd");
  assert.equal(experiment.lifecycle_stage, "active");
  assert.equal(experiment.artifact_location, pathToFileUri(experimentDir));

  const runIds = (await names(experimentDir)).filter((n) => n !== "meta.yaml");
  assert.equal(runIds.length, PROCESSES, runIds.join(", "));
  const indices: string[] = [];
  for (const runId of runIds) {
    assert.match(runId, /^[0-9a-f]{32}$/);
    const runDir = path.join(experimentDir, runId);
    assert.deepEqual(await names(runDir), ["artifacts", "meta.yaml", "metrics", "params", "tags"]);
    const meta = await yaml(path.join(runDir, "meta.yaml"));
    assert.equal(meta.run_id, runId);
    assert.equal(meta.experiment_id, id);
    assert.equal(meta.status, 3, "FINISHED");
    assert.equal(meta.lifecycle_stage, "active");
    assert.ok(typeof meta.end_time === "number" && meta.end_time >= (meta.start_time as number));
    assert.equal(meta.artifact_uri, pathToFileUri(path.join(runDir, "artifacts")));
    const index = await Deno.readTextFile(path.join(runDir, "params", "index"));
    indices.push(index);
    assert.equal(await Deno.readTextFile(path.join(runDir, "tags", "unit")), index);
    const lines = (await Deno.readTextFile(path.join(runDir, "metrics", "loss"))).split("\n");
    assert.equal(lines.pop(), "", "metric file ends with a newline");
    assert.deepEqual(
      lines.map((l) => Number(l.split(" ")[2])),
      Array.from({ length: 20 }, (_, s) => s),
    );
    assert.deepEqual(await names(path.join(runDir, "artifacts")), ["result.json"]);
  }
  assert.deepEqual(
    indices.map(Number).sort((a, b) => a - b),
    Array.from({ length: PROCESSES }, (_, i) => i),
  );

  // The tracking reader agrees and reports nothing wrong.
  const store = openStore(`file:${root}`);
  const runs = await store.searchRuns({ experimentIds: [id] });
  assert.equal(runs.length, PROCESSES);
  assert.ok(runs.every((r) => r.info.status === "FINISHED" && r.warnings.length === 0));
  assert.deepEqual(store.problems, []);
  assert.equal((await store.listExperiments()).filter((e) => e.name === "crowd").length, 1);
  await Deno.remove(dir, { recursive: true });
});
