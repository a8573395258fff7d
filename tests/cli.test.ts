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
  // Out-of-range exercises and parts, and seeds past 32 bits, are command-line errors too.
  const badPart = await train(["tp5", "--part", "9", "--quick"]);
  assert.equal(badPart.code, 2);
  assert.match(badPart.stderr, /^--part 9: lab 'tp5' has parts 1 to 3\nusage: /);
  const badExercise = await train(["tp2", "--exercise", "99", "--quick"]);
  assert.equal(badExercise.code, 2);
  assert.match(badExercise.stderr, /^--exercise 99: lab 'tp2' has exercises 1 to 5\nusage: /);
  const bigSeed = await train(["demo", "--quick", "--seed", String(2 ** 32)]);
  assert.equal(bigSeed.code, 2);
  assert.match(bigSeed.stderr, /^--seed 4294967296: expected an integer from 0 to 4294967295\n/);
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

Deno.test("cli: a SIGKILLed run is stale until --resume marks it KILLED; --resume refuses a changed --seed", async () => {
  const tmp = await Deno.makeTempDir();
  const mlruns = path.join(tmp, "mlruns");
  const ckpt = ["--checkpoint-dir", path.join(tmp, "ckpt")];
  const checkpoint = path.join(tmp, "ckpt", "demo", "last.safetensors");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "labs/main.ts",
      "demo",
      "--quick",
      "--seed",
      "7",
      "--epochs",
      "500",
      ...ckpt,
    ],
    cwd: path.resolve(import.meta.dirname!, ".."),
    env: {
      XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "",
      MLFLOW_TRACKING_URI: `file:${mlruns}`,
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
  // Killed once its first epoch checkpoint is written (bounded: 500 epochs take far longer).
  const until = Date.now() + 120_000;
  while (Date.now() < until) {
    if (await Deno.stat(checkpoint).then(() => true, () => false)) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill("SIGKILL");
  await child.status;

  const [killed] = await demoRuns(mlruns);
  assert.equal(killed.info.status, "RUNNING");
  assert.equal(killed.stale, true, "its process is gone");

  const changed = await train([
    "demo",
    "--quick",
    "--seed",
    "8",
    "--epochs",
    "2",
    "--resume",
    ...ckpt,
  ], mlruns);
  assert.equal(changed.code, 2, changed.stderr);
  assert.match(
    changed.stderr,
    /^--resume: .*last\.safetensors was trained with --seed 7, this command asks for --seed 8: resume with --seed 7 \(or without --seed\)/,
  );
  const resumed = await train(["demo", "--epochs", "2", "--resume", ...ckpt], mlruns);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /--resume: continuing with the checkpoint's --quick\n/);
  assert.match(resumed.stdout, /--resume: continuing with the checkpoint's --seed 7\n/);

  const runs = await demoRuns(mlruns);
  const before = runs.find((r) => r.info.runId === killed.info.runId)!;
  const after = runs.find((r) => r.info.runId !== killed.info.runId)!;
  assert.equal(before.info.status, "KILLED");
  assert.equal(before.stale, undefined);
  assert.equal(before.tags["denograd.resumed_by_run"], after.info.runId);
  const lastPoint = Math.max(...Object.values(killed.metrics).flat().map((p) => p.timestamp));
  assert.equal(before.info.endTime, lastPoint, "ended at its last logged point");
  assert.equal(after.info.status, "FINISHED");
  assert.equal(after.params.seed, "7");
  await Deno.remove(tmp, { recursive: true });
});
