// `deno task sweep … --slurm` on a real one-node Slurm cluster (tests/slurm_cluster.ts): the TP5
// --quick sweep as an array job plus its afterany summary job, read back through the tracking
// reader; and a unit task requeued mid-training (`scontrol requeue`) that resumes from its
// checkpoint in a run marked as resumed.
import assert from "node:assert/strict";
import * as path from "node:path";
import { openStore } from "../tracking/store.ts";
import { runLab } from "./lab_runner.ts";
import {
  jobRecords,
  slurm,
  type SlurmCluster,
  startSlurmCluster,
  waitForJobs,
} from "./slurm_cluster.ts";

const root = path.resolve(import.meta.dirname!, "..");

/** Submits `deno task sweep <argv> --slurm` into `dir`; resolves to the array and summary job ids. */
async function submitSweep(cluster: SlurmCluster, dir: string, argv: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "labs/sweep/main.ts",
      ...argv,
      "--slurm",
      "--store",
      path.join(dir, "mlruns"),
      "--checkpoint-dir",
      path.join(dir, "checkpoints"),
      "--sweep-dir",
      path.join(dir, "sweep"),
    ],
    cwd: root,
    env: { ...cluster.env, XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "" },
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, stdout + new TextDecoder().decode(out.stderr));
  const ids = /submitted array job (\d+) .* summary job (\d+) \(afterany:\1\)/.exec(stdout);
  assert.ok(ids, stdout);
  return { array: ids[1], summary: ids[2] };
}

async function withCluster(fn: (cluster: SlurmCluster, dir: string) => Promise<void>) {
  const cluster = await startSlurmCluster();
  const dir = await Deno.makeTempDir({ prefix: "denograd-sweep-" });
  try {
    await fn(cluster, dir);
  } finally {
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("sweep tp5 --quick --slurm: every unit runs as an array task, the summary job after them; one run per unit and one summary in the store", async () => {
  await withCluster(async (cluster, dir) => {
    const plan = await runLab(["tp5", "--quick", "--plan"]);
    assert.equal(plan.code, 0, plan.stderr);
    const units: string[] = JSON.parse(plan.stdout).units.map((u: { name: string }) => u.name);
    const jobs = await submitSweep(cluster, dir, ["tp5", "--quick"]);
    const records = await waitForJobs(cluster, [jobs.array, jobs.summary], 15 * 60_000);
    const tasks = records.filter((r) => r.ArrayJobId === jobs.array);
    assert.deepEqual(
      tasks.map((r) => Number(r.ArrayTaskId)).sort((a, b) => a - b),
      units.map((_, i) => i),
    );
    for (const r of records) assert.equal(`${r.JobState} ${r.ExitCode}`, "COMPLETED 0:0", r.JobId);
    const summary = records.find((r) => r.JobId === jobs.summary)!;
    assert.equal(summary.Dependency, "(null)", "the dependency was met and cleared");
    const summaryLog = await Deno.readTextFile(path.join(dir, "sweep", "summary.log"));
    assert.match(summaryLog, /all 16 checks passed/);

    const store = openStore(`file:${path.join(dir, "mlruns")}`);
    const experiments = await store.listExperiments();
    const runs = await store.searchRuns({ experimentIds: experiments.map((e) => e.experimentId) });
    assert.deepEqual(
      runs.map((r) => r.info.runName).sort(),
      [...units, "LOP120_summary"].sort(),
      "exactly one run per unit and one summary",
    );
    for (const run of runs) {
      assert.equal(run.info.status, "FINISHED", run.info.runName);
      assert.deepEqual(run.warnings, [], run.info.runName);
      if (run.info.runName !== "LOP120_summary") {
        assert.equal(run.tags["denograd.unit"], run.info.runName);
      }
    }
    assert.deepEqual(store.problems, []);
  });
});

Deno.test("sweep --slurm: a unit task requeued mid-training resumes from its checkpoint in a run marked resumed", async () => {
  await withCluster(async (cluster, dir) => {
    const jobs = await submitSweep(cluster, dir, ["demo", "--quick", "--epochs", "150"]);
    const checkpoint = path.join(dir, "checkpoints", "demo", "last.safetensors");
    const until = Date.now() + 180_000;
    while (!(await Deno.stat(checkpoint).then(() => true, () => false))) {
      assert.ok(Date.now() < until, "no checkpoint after 180 s");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const [task] = await jobRecords(cluster, `${jobs.array}_0`);
    assert.equal(task.JobState, "RUNNING");
    await slurm(cluster, "scontrol", ["requeue", `${jobs.array}_0`]);
    const records = await waitForJobs(cluster, [jobs.array, jobs.summary], 5 * 60_000);
    for (const r of records) assert.equal(`${r.JobState} ${r.ExitCode}`, "COMPLETED 0:0", r.JobId);
    assert.equal(records.find((r) => r.ArrayJobId === jobs.array)!.Restarts, "1");

    const store = openStore(`file:${path.join(dir, "mlruns")}`);
    const experiment = await store.getExperimentByName("demo");
    assert.ok(experiment);
    const runs = await store.searchRuns({ experimentIds: [experiment.experimentId] });
    assert.equal(runs.length, 2, runs.map((r) => r.info.runName).join(", "));
    const killed = runs.find((r) => r.info.status === "KILLED");
    const resumed = runs.find((r) => r.info.status === "FINISHED");
    assert.ok(killed && resumed, runs.map((r) => r.info.status).join(", "));
    assert.equal(killed.tags["denograd.resumed_by_run"], resumed.info.runId);
    assert.equal(resumed.tags["denograd.resumed_from_run"], killed.info.runId);
    const from = Number(resumed.tags["denograd.resumed_from_epoch"]);
    assert.ok(from >= 1 && from < 150, `resumed from epoch ${from}`);
    // Nothing lost: the resumed run holds every epoch, the killed one's included.
    assert.deepEqual(
      resumed.metrics.loss.map((p) => p.step),
      Array.from({ length: 150 }, (_, i) => i),
    );
    const log = await Deno.readTextFile(path.join(dir, "sweep", "unit-0.log"));
    assert.match(log, /== unit 0 \(spirals\), attempt 1, on /);
    assert.match(log, /== unit 0 \(spirals\), attempt 2, on /);
    const summaryLog = await Deno.readTextFile(path.join(dir, "sweep", "summary.log"));
    assert.match(summaryLog, new RegExp(`resumed from run ${killed.info.runId}`));
  });
});
