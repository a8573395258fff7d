// `--slurm`: one array job whose task K runs the lab's unit K (`SLURM_ARRAY_TASK_ID`), requeued
// tasks resuming from their checkpoint (`--resume` once `SLURM_RESTART_COUNT` > 0), and a summary
// job that runs after the array whatever became of its tasks (`afterany`), so it names the units
// that are missing instead of never running. The scheduler is Slurm's own `sbatch`.
import * as path from "node:path";
import {
  labCommand,
  REPO_ROOT,
  type SlurmResources,
  storeUri,
  type SweepOptions,
} from "./options.ts";

/** A word as bash reads it back unchanged. */
function quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

function resourceLines(resources: SlurmResources): string[] {
  const lines: string[] = [];
  if (resources.partition) lines.push(`#SBATCH --partition=${resources.partition}`);
  if (resources.time) lines.push(`#SBATCH --time=${resources.time}`);
  return lines;
}

/** What every job runs first: the repo, the store and a runtime dir for Mesa. */
function prologue(options: SweepOptions): string[] {
  return [
    "set -euo pipefail",
    `cd ${quote(REPO_ROOT)}`,
    `export MLFLOW_TRACKING_URI=${quote(storeUri(options))}`,
    'export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/denograd-xdg-$(id -u)}"',
    'mkdir -p -m 0700 "$XDG_RUNTIME_DIR"',
  ];
}

export interface SlurmScripts {
  units: string;
  summary: string;
}

export function slurmScripts(options: SweepOptions, resources: SlurmResources): SlurmScripts {
  const { lab, args, sweepDir } = options;
  const names = lab.units!(args).map((u) => u.name);
  const count = names.length;
  const run = (extra: string[]) =>
    [Deno.execPath(), ...labCommand(options, extra)].map(quote).join(" ");
  const canResume = lab.flags?.includes("resume") ?? false;
  const units = [
    "#!/bin/bash",
    `#SBATCH --job-name=denograd-${lab.name}`,
    `#SBATCH --array=0-${count - 1}`,
    ...resourceLines(resources),
    ...(resources.gres ? [`#SBATCH --gres=${resources.gres}`] : []),
    ...(resources.cpusPerTask ? [`#SBATCH --cpus-per-task=${resources.cpusPerTask}`] : []),
    // A requeued task appends to its log instead of overwriting the first attempt's.
    `#SBATCH --output=${quote(path.join(sweepDir, "unit-%a.log"))}`,
    "#SBATCH --open-mode=append",
    "#SBATCH --requeue",
    `# ${count} units of \`deno task train ${options.labArgv.join(" ")} --plan\`. Task K runs`,
    "# unit K of the plan as it was at submission, by name: a plan changed since fails loudly.",
    `units=(${names.map(quote).join(" ")})`,
    ...prologue(options),
    'unit="${units[$SLURM_ARRAY_TASK_ID]}"',
    "extra=()",
    ...(canResume
      ? ['if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then extra=(--resume); fi']
      : ["# this lab has no --resume: a requeued task trains its unit again from the start"]),
    'echo "== unit $SLURM_ARRAY_TASK_ID ($unit), attempt $((${SLURM_RESTART_COUNT:-0} + 1)), on $(hostname) =="',
    // exec: scancel's and requeue's SIGTERM reach deno, which ends its run KILLED.
    `exec ${run([])} --unit "$unit" "\${extra[@]}"`,
    "",
  ].join("\n");
  const summary = [
    "#!/bin/bash",
    `#SBATCH --job-name=denograd-${lab.name}-summary`,
    ...resourceLines(resources),
    `#SBATCH --output=${quote(path.join(sweepDir, "summary.log"))}`,
    "# Builds the summary from the units' runs in the store (no GPU); runs afterany the array.",
    ...prologue(options),
    `exec ${run(["--summarize"])}`,
    "",
  ].join("\n");
  return { units, summary };
}

async function sbatch(args: string[]): Promise<string> {
  let output;
  try {
    output = await new Deno.Command("sbatch", { args: ["--parsable", ...args] }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error("sbatch not found: --slurm needs Slurm's client commands on this machine");
    }
    throw e;
  }
  const text = new TextDecoder().decode(output.stdout).trim();
  if (!output.success || !/^\d+/.test(text)) {
    throw new Error(`sbatch ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  // `--parsable` prints `<id>` or `<id>;<cluster>`.
  return text.split(";")[0];
}

/** Writes the scripts to the sweep folder and submits them (or, with dryRun, prints them). */
export async function sweepOnSlurm(
  options: SweepOptions,
  resources: SlurmResources,
  dryRun: boolean,
): Promise<number> {
  const scripts = slurmScripts(options, resources);
  const out = options.args.out;
  const unitsFile = path.join(options.sweepDir, "units.sbatch");
  const summaryFile = path.join(options.sweepDir, "summary.sbatch");
  out.write(
    `The store ${options.store} and the checkpoints ${options.checkpointDir} must be on a ` +
      "filesystem every node sees (as must this repository and deno).\n",
  );
  if (dryRun) {
    out.write(
      `\n# ${unitsFile}\n${scripts.units}\n# ${summaryFile}\n${scripts.summary}\n` +
        `# would submit: sbatch ${unitsFile}; sbatch --dependency=afterany:<array job> ` +
        `${summaryFile}\n`,
    );
    return 0;
  }
  await Deno.mkdir(options.sweepDir, { recursive: true });
  await Deno.writeTextFile(unitsFile, scripts.units);
  await Deno.writeTextFile(summaryFile, scripts.summary);
  const array = await sbatch([unitsFile]);
  const summary = await sbatch([`--dependency=afterany:${array}`, summaryFile]);
  out.write(
    `submitted array job ${array} (${options.lab.units!(options.args).length} units) and ` +
      `summary job ${summary} (afterany:${array}); logs in ${options.sweepDir}\n` +
      `watch: squeue -j ${array},${summary}\n`,
  );
  return 0;
}
