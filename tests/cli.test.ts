// The lab CLI as users run it: a subprocess of `deno run labs/main.ts`, writing into a temporary
// MLflow store and checkpoint folder.
import assert from "node:assert/strict";
import * as path from "node:path";
import { runLab as train } from "./lab_runner.ts";
import { decodeSafetensors } from "../engine/io/safetensors.ts";
import { FileStore } from "../tracking/file_store.ts";
import type { RunRecord } from "../tracking/store.ts";

/** The demo experiment's runs, read back with the tracking reader. */
async function demoRuns(mlruns: string): Promise<RunRecord[]> {
  const store = new FileStore(mlruns);
  const experiment = await store.getExperimentByName("demo");
  assert.ok(experiment, "no 'demo' experiment");
  return store.searchRuns({ experimentIds: [experiment.experimentId] });
}

/** Values by step. */
function metric(run: RunRecord, key: string): Map<number, number> {
  return new Map(run.metrics[key].map((p) => [p.step, p.value]));
}

async function weights(mlruns: string, run: RunRecord): Promise<Record<string, number[]>> {
  const bytes = await new FileStore(mlruns).readArtifact(
    run.info.runId,
    "model/model.safetensors",
  );
  const out: Record<string, number[]> = {};
  for (const [name, entry] of Object.entries(decodeSafetensors(bytes).tensors)) {
    out[name] = [...entry.data];
  }
  return out;
}

Deno.test("cli: --list names the registered labs", async () => {
  const { code, stdout } = await train(["--list"]);
  assert.equal(code, 0);
  assert.match(stdout, /^\s*demo\s+MLP on two interleaved spirals/m);
});

Deno.test("cli: an unknown lab exits 2 and lists the known ones; bad flags exit 2", async () => {
  const unknown = await train(["tp9"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown lab 'tp9'; known labs:\n\s*demo /);
  const badFlag = await train(["demo", "--epochs", "zero"]);
  assert.equal(badFlag.code, 2);
  assert.match(badFlag.stderr, /--epochs zero: expected an integer ≥ 1/);
  const noLab = await train([]);
  assert.equal(noLab.code, 2);
  assert.match(noLab.stderr, /usage: deno task train <lab>/);
  // Flags a lab does not have are refused before anything runs.
  const noPart = await train(["demo", "--part", "2"]);
  assert.equal(noPart.code, 2);
  assert.match(noPart.stderr, /lab 'demo' has no --part option/);
  const noBatch = await train(["tp5", "--batch-size", "8"]);
  assert.equal(noBatch.code, 2);
  assert.match(noBatch.stderr, /lab 'tp5' has no --batch-size option/);
  const badPart = await train(["tp5", "--part", "4", "--quick"]);
  assert.equal(badPart.code, 1);
  assert.match(badPart.stderr, /--part 4: tp5 has parts 1, 2 and 3/);
});

Deno.test("cli: demo --quick writes a FINISHED MLflow run with metrics and the model", async () => {
  const tmp = await Deno.makeTempDir();
  const mlruns = path.join(tmp, "mlruns");
  const { code, stdout, stderr } = await train(
    ["demo", "--quick", "--checkpoint-dir", path.join(tmp, "ckpt")],
    mlruns,
  );
  assert.equal(code, 0, stderr);
  assert.match(stdout, /Total params: 354 /);
  // Not a terminal: one plain line per epoch.
  assert.match(
    stdout,
    /^Epoch 6\/6 - 10 steps - .* - loss: \d\.\d{4} - accuracy: .* - val_loss: .* - val_accuracy: /m,
  );
  assert.ok(!stdout.includes("\r"));
  const runs = await demoRuns(mlruns);
  assert.equal(runs.length, 1);
  const [run] = runs;
  assert.equal(run.info.status, "FINISHED");
  assert.equal(run.info.runName, "demo-seed0");
  assert.deepEqual(run.warnings, []);
  for (const key of ["loss", "accuracy", "val_loss", "val_accuracy"]) {
    assert.deepEqual([...metric(run, key).keys()], [0, 1, 2, 3, 4, 5], key);
  }
  assert.ok(metric(run, "test_accuracy").get(6)! > 0);
  assert.equal(run.params.epochs, "6");
  assert.equal(run.params.seed, "0");
  assert.equal(Object.keys(await weights(mlruns, run)).length, 6);
  const store = new FileStore(mlruns);
  const config = JSON.parse(
    new TextDecoder().decode(await store.readArtifact(run.info.runId, "model/config.json")),
  );
  assert.equal(config.children.length, 4);
  await Deno.stat(path.join(tmp, "ckpt", "demo", "last.safetensors"));
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("cli: 2 epochs + --resume to 4 equals 4 epochs straight, bit for bit", async () => {
  const tmp = await Deno.makeTempDir();
  const split = path.join(tmp, "split");
  const straight = path.join(tmp, "straight");
  const quick = ["demo", "--quick", "--seed", "5"];
  const ckpt = (dir: string) => ["--checkpoint-dir", path.join(dir, "ckpt")];
  for (
    const [args, store] of [
      [[...quick, "--epochs", "2", ...ckpt(split)], split],
      [[...quick, "--epochs", "4", "--resume", ...ckpt(split)], split],
      [[...quick, "--epochs", "4", ...ckpt(straight)], straight],
    ] as const
  ) {
    const { code, stderr } = await train([...args], path.join(store, "mlruns"));
    assert.equal(code, 0, stderr);
  }
  const splitRuns = await demoRuns(path.join(split, "mlruns"));
  const first = splitRuns.find((r) => !r.tags["denograd.resumed_from_run"]);
  const resumed = splitRuns.find((r) => r.tags["denograd.resumed_from_run"]);
  assert.ok(first && resumed, "expected the first and the resumed run");
  assert.equal(resumed.tags["denograd.resumed_from_run"], first.info.runId);
  assert.equal(resumed.tags["denograd.resumed_from_epoch"], "2");
  const [full] = await demoRuns(path.join(straight, "mlruns"));
  assert.deepEqual(
    await weights(path.join(split, "mlruns"), resumed),
    await weights(path.join(straight, "mlruns"), full),
  );
  for (const key of ["loss", "val_loss", "accuracy", "test_loss"]) {
    assert.deepEqual(metric(resumed, key), metric(full, key), key);
  }
  const missing = await train([...quick, "--resume", ...ckpt(path.join(tmp, "none"))]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /--resume: no checkpoint at/);
  await Deno.remove(tmp, { recursive: true });
});
