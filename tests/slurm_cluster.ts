// A one-node Slurm cluster for the sweep tests (Debian's slurm-wlm 22.05 and munge, which .ci/run
// installs): a private munged, a generated slurm.conf in a temp folder (this host as the only
// node, 2 CPUs, no cgroups, no accounting, free ports), slurmctld and slurmd in the foreground
// as children of the test. Recipe and timings: shared/ENVIRONMENT.md, "Cluster scheduler".
import * as path from "node:path";

export interface SlurmCluster {
  /** Folder of the config, state, spool and logs. */
  dir: string;
  /** What a Slurm client command needs (SLURM_CONF). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function until(what: string, ready: () => Promise<boolean>, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > end) throw new Error(`one-node Slurm cluster: ${what} not ready`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const exists = (file: string) => Deno.stat(file).then(() => true, () => false);

/** Runs a Slurm client command against the cluster; resolves to its standard output. */
export async function slurm(cluster: SlurmCluster, command: string, args: string[]) {
  const out = await new Deno.Command(command, { args, env: cluster.env }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${command} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

export async function startSlurmCluster(): Promise<SlurmCluster> {
  for (const binary of ["munged", "slurmctld", "slurmd", "sbatch"]) {
    const found = await new Deno.Command("sh", { args: ["-c", `command -v ${binary}`] }).output();
    if (!found.success) {
      throw new Error(
        `${binary} not found: install Debian's slurm-wlm and munge (apt-get install ` +
          "--no-install-recommends slurm-wlm munge; .ci/run does)",
      );
    }
  }
  const dir = await Deno.makeTempDir({ prefix: "denograd-slurm-" });
  // munged refuses a key or socket folder others could write to.
  await Deno.chmod(dir, 0o755);
  const munge = path.join(dir, "munge");
  await Deno.mkdir(munge, { mode: 0o755 });
  const key = path.join(munge, "munge.key");
  await Deno.writeFile(key, crypto.getRandomValues(new Uint8Array(1024)), { mode: 0o400 });
  const socket = path.join(munge, "munge.sock");
  const children: Deno.ChildProcess[] = [];
  const daemon = (command: string, args: string[], env: Record<string, string> = {}) => {
    const log = path.join(dir, `${command}.out`);
    children.push(
      new Deno.Command("sh", {
        args: ["-c", `exec "$0" "$@" >>${log} 2>&1`, command, ...args],
        env,
        stdin: "null",
      }).spawn(),
    );
  };
  daemon("munged", [
    "--foreground",
    `--socket=${socket}`,
    `--key-file=${key}`,
    `--pid-file=${path.join(munge, "munged.pid")}`,
    `--seed-file=${path.join(munge, "munged.seed")}`,
    `--log-file=${path.join(munge, "munged.log")}`,
  ]);
  const cluster: SlurmCluster = {
    dir,
    env: { SLURM_CONF: path.join(dir, "slurm.conf") },
    async stop() {
      for (const child of children.reverse()) {
        child.kill("SIGTERM");
        await child.status;
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
  try {
    await until("munged", () => exists(socket));
    const node = Deno.hostname().split(".")[0];
    await Deno.mkdir(path.join(dir, "state"));
    await Deno.mkdir(path.join(dir, "spool"));
    const at = (name: string) => path.join(dir, name);
    await Deno.writeTextFile(
      cluster.env.SLURM_CONF,
      [
        "ClusterName=denograd-test",
        `SlurmctldHost=${node}`,
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        // cred_expire=5: a requeued task starts again in seconds, not after the default 120 s.
        `AuthInfo=socket=${socket},cred_expire=5`,
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "MpiDefault=none",
        "ReturnToService=2",
        // CPUs are what tasks take; memory is not tracked (a task would otherwise take the node).
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "SchedulerParameters=bf_interval=1,sched_interval=1",
        // slurmctld forgets a finished job after MinJobAge (300 s by default), and the tests read
        // every task's record once the whole sweep is done: a sweep that ran longer than 5 min
        // lost its first tasks' records.
        "MinJobAge=3600",
        "MailProg=/bin/true",
        `StateSaveLocation=${at("state")}`,
        `SlurmdSpoolDir=${at("spool")}`,
        `SlurmctldPidFile=${at("slurmctld.pid")}`,
        `SlurmdPidFile=${at("slurmd.pid")}`,
        `SlurmctldLogFile=${at("slurmctld.log")}`,
        `SlurmdLogFile=${at("slurmd.log")}`,
        `SlurmctldPort=${freePort()}`,
        `SlurmdPort=${freePort()}`,
        `NodeName=${node} CPUs=2 State=UNKNOWN`,
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        "",
      ].join("\n"),
    );
    daemon("slurmctld", ["-D"], cluster.env);
    daemon("slurmd", ["-D"], cluster.env);
    await until(
      "the node",
      async () =>
        (await slurm(cluster, "sinfo", ["-h", "-o", "%T"]).catch(() => "")).trim() === "idle",
    );
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

/** `scontrol show job ID`'s fields, one record per job (an array job: one per task). */
export async function jobRecords(
  cluster: SlurmCluster,
  jobId: string,
): Promise<Record<string, string>[]> {
  const text = await slurm(cluster, "scontrol", ["show", "job", "--oneliner", jobId]);
  return text.trim().split("\n").filter((l) => l.trim()).map((line) =>
    Object.fromEntries(
      line.trim().split(/\s+/).map((field) => {
        const at = field.indexOf("=");
        return [field.slice(0, at), field.slice(at + 1)];
      }),
    )
  );
}

const ENDED = new Set([
  "COMPLETED",
  "FAILED",
  "CANCELLED",
  "TIMEOUT",
  "NODE_FAIL",
  "OUT_OF_MEMORY",
]);

/** Waits until every job (and array task) of `jobIds` has ended; resolves to their records. */
export async function waitForJobs(
  cluster: SlurmCluster,
  jobIds: string[],
  timeoutMs: number,
): Promise<Record<string, string>[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const records = (await Promise.all(jobIds.map((id) => jobRecords(cluster, id)))).flat();
    if (records.every((r) => ENDED.has(r.JobState))) return records;
    if (Date.now() > end) {
      throw new Error(
        `jobs still running after ${timeoutMs / 1000} s: ` +
          records.map((r) => `${r.JobId} ${r.JobState}`).join(", "),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
