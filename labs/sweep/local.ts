// `--local N`: the lab's units on this machine, N processes at a time, each `deno task train
// <lab> --unit K` with its output in <sweep-dir>/unit-K.log, then `--summarize` in the terminal
// — the path a Slurm array takes, without the scheduler.
import * as path from "node:path";
import { formatDuration } from "../../engine/train/progress.ts";
import { labCommand, REPO_ROOT, storeUri, type SweepOptions } from "./options.ts";

/** Runs `deno <args>` from the repo root writing to the sweep's store; resolves to its exit code. */
async function runDeno(
  options: SweepOptions,
  args: string[],
  output: "inherit" | string,
): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO_ROOT,
    env: { MLFLOW_TRACKING_URI: storeUri(options) },
    stdin: "null",
    stdout: output === "inherit" ? "inherit" : "piped",
    stderr: output === "inherit" ? "inherit" : "piped",
  }).spawn();
  if (output !== "inherit") {
    // One appending handle per stream: both land in the log as they come.
    const append = () => Deno.open(output, { write: true, create: true, append: true });
    await Promise.all([
      append().then((log) => child.stdout.pipeTo(log.writable)),
      append().then((log) => child.stderr.pipeTo(log.writable)),
    ]);
  }
  return (await child.status).code;
}

/** Every unit, `parallel` at a time, then the summary; resolves to the sweep's exit status. */
export async function sweepLocally(options: SweepOptions, parallel: number): Promise<number> {
  const units = options.lab.units!(options.args);
  const out = options.args.out;
  await Deno.mkdir(options.sweepDir, { recursive: true });
  out.write(
    `sweep ${options.lab.name}: ${units.length} units, ${parallel} at a time, store ` +
      `${options.store}; unit logs in ${options.sweepDir}\n`,
  );
  const started = performance.now();
  const failed: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < units.length) {
      const index = next++;
      const unit = units[index];
      const log = path.join(options.sweepDir, `unit-${index}.log`);
      const t0 = performance.now();
      const code = await runDeno(options, labCommand(options, ["--unit", String(index)]), log);
      const seconds = (performance.now() - t0) / 1000;
      if (code !== 0) failed.push(unit.name);
      out.write(
        `  unit ${index} ${unit.name}: ${
          code === 0 ? "done" : `FAILED (exit ${code}, see ${log})`
        }` +
          ` in ${formatDuration(seconds)}\n`,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, units.length) }, worker));
  out.write(
    `units done in ${formatDuration((performance.now() - started) / 1000)}` +
      (failed.length ? `; ${failed.length} failed: ${failed.join(", ")}` : "") + "\n",
  );
  const status = await runDeno(options, labCommand(options, ["--summarize"]), "inherit");
  out.write(`sweep ${options.lab.name}: ${formatDuration((performance.now() - started) / 1000)}\n`);
  return failed.length > 0 ? Math.max(status, 1) : status;
}
