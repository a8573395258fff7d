// `deno task sweep <lab> [lab flags] (--local N | --slurm …)`: the sweep's own flags split from
// the lab's, which are checked as `deno task train` checks them; where the store and the
// checkpoints are, as absolute paths every unit process (or cluster node) is handed.
import * as path from "node:path";
import { envVar } from "../../tracking/context.ts";
import { fileUriToPath, pathToFileUri, resolveTrackingRoot } from "../../tracking/file_uri.ts";
import { DEFAULT_TRACKING_URI } from "../../tracking/store.ts";
import { parseLabCommand } from "../command.ts";
import type { Lab, LabArgs } from "../registry.ts";

export const SWEEP_USAGE =
  `usage: deno task sweep <lab> [lab flags: --quick, --seed N, --part N …] [--store DIR]
                      [--checkpoint-dir DIR] [--sweep-dir DIR]
                      (--local N | --slurm [--partition P] [--gres G] [--time T]
                                           [--cpus-per-task N] [--dry-run])`;

/** The Slurm resources a unit task asks for (absent: the cluster's defaults). */
export interface SlurmResources {
  partition?: string;
  gres?: string;
  time?: string;
  cpusPerTask?: number;
}

export interface SweepOptions {
  lab: Lab;
  args: LabArgs;
  /** The lab's flags as given, less --checkpoint-dir (every unit gets the absolute one). */
  labArgv: string[];
  /** The tracking store's folder, absolute. */
  store: string;
  checkpointDir: string;
  /** Where the job scripts and the units' logs go, absolute. */
  sweepDir: string;
  mode: { kind: "local"; parallel: number } | {
    kind: "slurm";
    resources: SlurmResources;
    dryRun: boolean;
  };
}

export class SweepUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SweepUsageError";
  }
}

const VALUE_FLAGS = [
  "local",
  "partition",
  "gres",
  "time",
  "cpus-per-task",
  "store",
  "checkpoint-dir",
  "sweep-dir",
] as const;
const SWITCHES = ["slurm", "dry-run"] as const;
type SweepFlag = typeof VALUE_FLAGS[number] | typeof SWITCHES[number];

/** The sweep's flags (`--flag value` or `--flag=value`) out of argv; the rest is the lab's. */
function splitArgv(argv: string[]): { flags: Map<SweepFlag, string>; labArgv: string[] } {
  const flags = new Map<SweepFlag, string>();
  const labArgv: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i].startsWith("--") ? argv[i].slice(2).split(/=(.*)/s) : [""];
    if ((SWITCHES as readonly string[]).includes(name)) {
      if (inline !== undefined) throw new SweepUsageError(`--${name} takes no value`);
      flags.set(name as SweepFlag, "");
    } else if ((VALUE_FLAGS as readonly string[]).includes(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new SweepUsageError(`--${name} needs a value`);
      flags.set(name as SweepFlag, value);
    } else {
      labArgv.push(argv[i]);
    }
  }
  return { flags, labArgv };
}

function count(flag: string, text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    throw new SweepUsageError(`--${flag} ${text}: expected an integer ≥ 1`);
  }
  return Number(text);
}

/** The store's folder from `--store`, MLFLOW_TRACKING_URI or ./mlruns, and whether it was relative. */
function storeFolder(
  given: string | undefined,
): { folder: string; relative: boolean; raw: string } {
  const raw = given ?? envVar("MLFLOW_TRACKING_URI") ?? DEFAULT_TRACKING_URI;
  let folder: string;
  try {
    folder = resolveTrackingRoot(raw);
  } catch (e) {
    throw new SweepUsageError(`store: ${(e as Error).message}`);
  }
  const local = /^file:/i.test(raw) ? fileUriToPath(raw) : raw;
  return { folder, relative: !path.isAbsolute(local), raw };
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
}

export function parseSweep(argv: string[]): SweepOptions {
  const { flags, labArgv } = splitArgv(argv);
  const local = flags.get("local");
  const slurm = flags.has("slurm");
  if ((local === undefined) === !slurm) {
    throw new SweepUsageError("say where the units run: --local N or --slurm");
  }
  for (const flag of ["partition", "gres", "time", "cpus-per-task", "dry-run"] as const) {
    if (local !== undefined && flags.has(flag)) {
      throw new SweepUsageError(`--${flag} goes with --slurm, not --local`);
    }
  }
  const command = parseLabCommand(labArgv);
  if ("status" in command) throw new SweepUsageError(command.stderr ?? command.stdout ?? "");
  const { lab, args, mode } = command;
  if (mode !== "run") {
    throw new SweepUsageError("--plan, --unit and --summarize are the sweep's to give");
  }
  if (!lab.units || !lab.summarize) {
    throw new SweepUsageError(
      `lab '${lab.name}' has no units yet: it cannot be swept; run it whole with ` +
        `deno task train ${lab.name}`,
    );
  }
  if (lab.units(args).length === 0) {
    throw new SweepUsageError(`lab '${lab.name}' has no units under these flags: nothing to sweep`);
  }
  const store = storeFolder(flags.get("store"));
  if (slurm && store.relative) {
    throw new SweepUsageError(
      `store '${store.raw}' is a relative path: on the cluster's nodes it would resolve ` +
        "elsewhere. The store must be on a filesystem every node sees: give --store (or " +
        "MLFLOW_TRACKING_URI) as an absolute path there, e.g. --store /shared/mlruns",
    );
  }
  const checkpointDir = path.resolve(flags.get("checkpoint-dir") ?? args.checkpointDir);
  const sweepDir = path.resolve(
    flags.get("sweep-dir") ?? path.join("sweeps", `${lab.name}-${timestamp()}`),
  );
  const cpus = flags.get("cpus-per-task");
  return {
    lab,
    args: { ...args, checkpointDir },
    labArgv,
    store: store.folder,
    checkpointDir,
    sweepDir,
    mode: local !== undefined ? { kind: "local", parallel: count("local", local) } : {
      kind: "slurm",
      dryRun: flags.has("dry-run"),
      resources: {
        partition: flags.get("partition"),
        gres: flags.get("gres"),
        time: flags.get("time"),
        cpusPerTask: cpus === undefined ? undefined : count("cpus-per-task", cpus),
      },
    },
  };
}

/** Where every unit and summary process runs `labs/main.ts` from. */
export const REPO_ROOT = path.resolve(import.meta.dirname!, "../..");

/** `deno run -A labs/main.ts <lab> <flags>` for one unit or the summary, from REPO_ROOT. */
export function labCommand(options: SweepOptions, extra: string[]): string[] {
  return [
    "run",
    "-A",
    "labs/main.ts",
    ...options.labArgv,
    "--checkpoint-dir",
    options.checkpointDir,
    ...extra,
  ];
}

/** The store as the units' MLFLOW_TRACKING_URI. */
export const storeUri = (options: SweepOptions) => pathToFileUri(options.store);
