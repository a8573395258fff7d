// The unit interface of the lab CLI (`--plan`, `--unit`, `--summarize`) and the sweep's checks
// and local mode, in subprocesses as users run them: `deno task sweep <lab> --local N` runs
// every unit through `--unit` and ends with `--summarize`; `--slurm --dry-run` prints the job
// scripts and submits nothing; a relative store is refused for a cluster.
import assert from "node:assert/strict";
import * as path from "node:path";
import { parseLabCommand } from "../labs/command.ts";
import { registerLab } from "../labs/registry.ts";
import { parseSweep, SweepUsageError } from "../labs/sweep/options.ts";
import { openStore } from "../tracking/store.ts";
import { runLab } from "./lab_runner.ts";

const root = path.resolve(import.meta.dirname!, "..");

async function sweep(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "labs/sweep/main.ts", ...args],
    cwd: root,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "", ...env },
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("units: --plan lists them as JSON, --unit K|NAME is checked", async () => {
  const plan = await runLab(["tp5", "--quick", "--plan"]);
  assert.equal(plan.code, 0, plan.stderr);
  const { lab, units } = JSON.parse(plan.stdout);
  assert.equal(lab, "tp5");
  assert.equal(units.length, 11);
  units.forEach((u: { index: number; rough_seconds: number; trains: string }, i: number) => {
    assert.equal(u.index, i);
    assert.ok(u.rough_seconds > 0 && u.trains.length > 0);
  });
  assert.equal(new Set(units.map((u: { name: string }) => u.name)).size, 11);
  const part3 = JSON.parse((await runLab(["tp5", "--part", "3", "--plan"])).stdout).units;
  assert.equal(part3.length, 17, "Part 3's full plan: 3 seeds × 2, 3 controls, 4 gaps × 2");

  const tp2 = JSON.parse((await runLab(["tp2", "--quick", "--plan"])).stdout).units;
  assert.deepEqual(tp2.map((u: { name: string }) => u.name), [
    "Base_Model_Bias_Variance",
    "Model_With_L2_Dropout",
    "Optimizer_Comparison_SGD_with_momentum",
    "Optimizer_Comparison_RMSprop",
    "Optimizer_Comparison_Adam",
    "Model_With_BatchNorm",
    "Run_Improved_Model_L2_BN_ES",
  ]);
  const range = await runLab(["tp5", "--quick", "--unit", "11"]);
  assert.equal(range.code, 2);
  assert.match(range.stderr, /^--unit 11: lab 'tp5' has units 0 to 10\n/);
  const unknown = await runLab(["tp5", "--quick", "--unit", "nope"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^--unit nope: lab 'tp5' has units sum_simple, burst_simple, /);
  const both = await runLab(["tp5", "--plan", "--summarize"]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /^--plan and --summarize exclude each other/);
});

Deno.test("units: a lab without them says so for --plan, --summarize and a sweep", () => {
  // Every lab here has units (TP3's are on their way): a lab registered by the test has none.
  registerLab({ name: "no-units-test", description: "test", run: () => Promise.resolve() });
  for (const flag of ["--plan", "--summarize"]) {
    const none = parseLabCommand(["no-units-test", flag]);
    assert.ok("status" in none);
    assert.equal(none.status, 2);
    assert.match(none.stderr!, /^lab 'no-units-test' has no units yet/);
  }
  assert.throws(
    () => parseSweep(["no-units-test", "--local", "2"]),
    (e: Error) =>
      e instanceof SweepUsageError &&
      /^lab 'no-units-test' has no units yet: it cannot be swept/.test(e.message),
  );
});

Deno.test("--summarize on a store without the units' runs names what is missing (exit 1)", async () => {
  const tmp = await Deno.makeTempDir();
  const out = await runLab(["tp5", "--quick", "--part", "2", "--summarize"], path.join(tmp, "m"));
  assert.equal(out.code, 1, out.stderr);
  assert.match(
    out.stdout,
    /Part 2: not summarised, no finished run of seq2seq_learned-scalar_50to20/,
  );
  assert.match(out.stderr, /no finished run of 1 unit\(s\): seq2seq_learned-scalar_50to20/);
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("sweep --slurm: a relative store is refused; --dry-run prints the array and summary scripts", async () => {
  const tmp = await Deno.makeTempDir();
  for (const store of [["--store", "./mlruns"], []]) {
    const relative = await sweep(["tp5", "--quick", "--slurm", "--dry-run", ...store], {
      MLFLOW_TRACKING_URI: "file:mlruns",
    });
    assert.equal(relative.code, 2);
    assert.match(relative.stderr, /is a relative path: on the cluster's nodes it would resolve/);
    assert.match(relative.stderr, /must be on a filesystem every node sees/);
  }
  const sweepDir = path.join(tmp, "sweep");
  const dry = await sweep([
    "tp5",
    "--quick",
    "--slurm",
    "--dry-run",
    "--partition",
    "gpu",
    "--gres",
    "gpu:1",
    "--time",
    "00:30:00",
    "--cpus-per-task",
    "4",
    "--store",
    path.join(tmp, "mlruns"),
    "--sweep-dir",
    sweepDir,
  ]);
  assert.equal(dry.code, 0, dry.stderr);
  for (
    const line of [
      "#SBATCH --array=0-10",
      "#SBATCH --partition=gpu",
      "#SBATCH --gres=gpu:1",
      "#SBATCH --time=00:30:00",
      "#SBATCH --cpus-per-task=4",
      "#SBATCH --requeue",
      "#SBATCH --open-mode=append",
      `export MLFLOW_TRACKING_URI=file://${tmp}/mlruns`,
      'if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then extra=(--resume); fi',
      "units=(sum_simple burst_simple scaling_variance seq2seq_learned-scalar_50to20 GRU64_seed0 ",
      'unit="${units[$SLURM_ARRAY_TASK_ID]}"',
      `tp5 --quick --checkpoint-dir ${path.join(root, "checkpoints")} --unit "$unit"`,
      `--checkpoint-dir ${path.join(root, "checkpoints")} --summarize`,
      `sbatch --dependency=afterany:<array job> ${sweepDir}/summary.sbatch`,
    ]
  ) {
    assert.ok(dry.stdout.includes(line), `${line}\n---\n${dry.stdout}`);
  }
  const summaryScript = dry.stdout.slice(dry.stdout.indexOf("summary.sbatch\n#!/bin/bash"));
  assert.ok(!summaryScript.includes("--gres"), "the summary job needs no GPU");
  assert.equal(await Deno.stat(sweepDir).then(() => true, () => false), false, "nothing written");
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("sweep demo --local 2: the unit through --unit, then the summary from the store", async () => {
  const tmp = await Deno.makeTempDir();
  const store = path.join(tmp, "mlruns");
  const out = await sweep([
    "demo",
    "--quick",
    "--local",
    "2",
    "--store",
    store,
    "--checkpoint-dir",
    path.join(tmp, "ckpt"),
    "--sweep-dir",
    path.join(tmp, "sweep"),
  ]);
  assert.equal(out.code, 0, out.stdout + out.stderr);
  assert.match(out.stdout, /sweep demo: 1 units, 2 at a time/);
  assert.match(out.stdout, /unit 0 spirals: done in /);
  const runs = await openStore(`file:${store}`).searchRuns({
    experimentIds: [(await openStore(`file:${store}`).getExperimentByName("demo"))!.experimentId],
  });
  assert.equal(runs.length, 1);
  assert.equal(runs[0].tags["denograd.unit"], "spirals");
  assert.match(out.stdout, new RegExp(`demo: test accuracy [\\d.]+, .*run ${runs[0].info.runId}`));
  assert.match(await Deno.readTextFile(path.join(tmp, "sweep", "unit-0.log")), /Epoch 6\/6/);
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("sweep tp1 --quick --local 1: TP1's one unit, then its test accuracy and model from the store", async () => {
  const tmp = await Deno.makeTempDir();
  const store = path.join(tmp, "mlruns");
  const out = await sweep([
    "tp1",
    "--quick",
    "--local",
    "1",
    "--store",
    store,
    "--checkpoint-dir",
    path.join(tmp, "ckpt"),
    "--sweep-dir",
    path.join(tmp, "sweep"),
  ]);
  assert.equal(out.code, 0, out.stdout + out.stderr);
  const model = path.join(tmp, "ckpt", "tp1", "mnist-model.safetensors");
  assert.ok((await Deno.stat(model)).size > 0);
  const reader = openStore(`file:${store}`);
  const [run] = await reader.searchRuns({ experimentIds: ["0"] });
  assert.equal(run.tags["denograd.unit"], "mnist_mlp");
  const accuracy = run.metrics.test_accuracy.at(-1)!.value;
  assert.match(
    out.stdout,
    new RegExp(
      `TP1: test accuracy ${(100 * accuracy).toFixed(2)} %, .*; model ${model}; MLflow run ` +
        run.info.runId,
    ),
  );
  await Deno.remove(tmp, { recursive: true });
});
