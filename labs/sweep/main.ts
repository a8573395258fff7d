// `deno task sweep <lab> [lab flags] --local N` runs the lab's units N at a time here;
// `--slurm [--partition P --gres G --time T --cpus-per-task N] [--dry-run]` submits them as a
// Slurm array job plus a summary job. Exit codes: 0 done (or submitted), 1 a unit or the
// summary failed, 2 bad command line.
import { sweepLocally } from "./local.ts";
import { parseSweep, SWEEP_USAGE, type SweepOptions, SweepUsageError } from "./options.ts";
import { sweepOnSlurm } from "./slurm.ts";

export async function main(argv: string[]): Promise<number> {
  let options: SweepOptions;
  try {
    options = parseSweep(argv);
  } catch (e) {
    if (!(e instanceof SweepUsageError)) throw e;
    console.error(`${e.message}\n${SWEEP_USAGE}`);
    return 2;
  }
  const { mode } = options;
  try {
    return mode.kind === "local"
      ? await sweepLocally(options, mode.parallel)
      : await sweepOnSlurm(options, mode.resources, mode.dryRun);
  } catch (e) {
    console.error(`sweep ${options.lab.name}: ${(e as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
