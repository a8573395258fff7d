// A TP5 Part-3 unit killed mid-training (as a cluster kills a preempted task) and run again with
// --resume continues from its last epoch checkpoint: a new run marked as resuming the killed one,
// whose curves and test metrics equal those of a training never interrupted.
import assert from "node:assert/strict";
import * as path from "node:path";
import { FileStore } from "../tracking/file_store.ts";
import type { RunRecord } from "../tracking/store.ts";
import { runLab } from "./lab_runner.ts";

const UNIT = ["tp5", "--quick", "--unit", "GRU64_seed0"];

async function unitRuns(mlruns: string): Promise<RunRecord[]> {
  const store = new FileStore(mlruns);
  const experiment = await store.getExperimentByName("TP5_Part3_HTAP");
  assert.ok(experiment);
  return store.searchRuns({ experimentIds: [experiment.experimentId] });
}

/** Every metric but the timings, as step → value lists. */
function learned(run: RunRecord): Record<string, [number, number][]> {
  return Object.fromEntries(
    Object.entries(run.metrics).filter(([k]) => !/seconds/.test(k)).map((
      [k, points],
    ) => [k, points.map((p) => [p.step, p.value])]),
  );
}

Deno.test("tp5 Part-3 unit: killed after its first epoch, --resume finishes it exactly as an uninterrupted run", async () => {
  const tmp = await Deno.makeTempDir();
  const mlruns = path.join(tmp, "mlruns");
  const ckpt = ["--checkpoint-dir", path.join(tmp, "ckpt")];
  const checkpoint = path.join(tmp, "ckpt", "tp5", "GRU64_seed0.safetensors");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "labs/main.ts", ...UNIT, ...ckpt],
    cwd: path.resolve(import.meta.dirname!, ".."),
    env: {
      XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "",
      MLFLOW_TRACKING_URI: `file:${mlruns}`,
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
  const until = Date.now() + 180_000;
  while (!(await Deno.stat(checkpoint).then(() => true, () => false))) {
    assert.ok(Date.now() < until, "no checkpoint after 180 s");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill("SIGKILL");
  await child.status;
  const [killed] = await unitRuns(mlruns);
  assert.equal(killed.info.status, "RUNNING", "killed during epoch 2");

  const resumed = await runLab([...UNIT, "--resume", ...ckpt], mlruns);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /GRU64_seed0: resumed after epoch 1 of 2/);
  const runs = await unitRuns(mlruns);
  const before = runs.find((r) => r.info.runId === killed.info.runId)!;
  const after = runs.find((r) => r.info.runId !== killed.info.runId)!;
  assert.equal(before.info.status, "KILLED");
  assert.equal(before.tags["denograd.resumed_by_run"], after.info.runId);
  assert.equal(after.info.status, "FINISHED");
  assert.equal(after.tags["denograd.resumed_from_run"], killed.info.runId);
  assert.equal(after.tags["denograd.resumed_from_epoch"], "1");

  const straightStore = path.join(tmp, "straight");
  const straight = await runLab(
    [...UNIT, "--checkpoint-dir", path.join(tmp, "ckpt2")],
    straightStore,
  );
  assert.equal(straight.code, 0, straight.stderr);
  const [reference] = await unitRuns(straightStore);
  assert.deepEqual(learned(after), learned(reference));
  await Deno.remove(tmp, { recursive: true });
});
