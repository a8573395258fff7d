// The lab registry: each lab module calls registerLab() when imported; labs/main.ts imports
// them all and dispatches `deno task train <lab>` to the one named.
import type { ProgressWriter } from "../engine/train/progress.ts";

/** Command-line options shared by every lab (undefined: the lab's own default). */
export interface LabArgs {
  epochs?: number;
  batchSize?: number;
  seed: number;
  /** Run only this exercise of a multi-exercise lab (`--exercise N`). */
  exercise?: number;
  /** Run only this part of a multi-part lab (`--part N`). */
  part?: number;
  /** How many seeds a lab repeats its main comparison over (`--seeds N`). */
  seeds?: number;
  /** The training loss, by name (`--loss NAME`; the lab checks the name). */
  loss?: string;
  /** Train each of the lab's losses and compare them (`--compare-losses`). */
  compareLosses: boolean;
  /** Filters of a model's first level (`--base-filters N`). */
  baseFilters?: number;
  /** Which dataset a lab trains on, by name (`--dataset NAME`; the lab checks the name). */
  dataset?: string;
  /** A folder holding the dataset's files (`--data DIR`) instead of the lab's default place. */
  dataDir?: string;
  /** A weights file (safetensors) a lab loads into a pretrained model (`--weights FILE`). */
  weights?: string;
  /** Images a lab reads (`--content FILE`, `--style FILE`: style transfer). */
  contentImage?: string;
  styleImage?: string;
  /** Optimisation steps of a lab that is not an epoch loop (`--steps N`). */
  steps?: number;
  /** Edge of the square images a lab works on (`--image-size N`). */
  imageSize?: number;
  /**
   * Run only this one of the lab's independent trainings, by name (`--unit NAME`; main.ts turns
   * `--unit K` into the K-th name of the lab's plan).
   */
  unit?: string;
  /** Tiny sizes: the whole lab runs in seconds (CI, smoke tests). */
  quick: boolean;
  /** Continue from the lab's last training checkpoint. */
  resume: boolean;
  /**
   * The flags given on the command line (long names: "seed", "batch-size"…), so that --resume
   * can tell a changed hyperparameter from a default; absent: none.
   */
  given?: ReadonlySet<string>;
  /** Where training checkpoints live (one sub-folder per lab). */
  checkpointDir: string;
  /** Progress and report output. */
  out: ProgressWriter;
}

/** Options only some labs understand; main.ts refuses them for the others. */
export type LabFlag =
  | "batch-size"
  | "exercise"
  | "part"
  | "seeds"
  | "resume"
  | "loss"
  | "compare-losses"
  | "base-filters"
  | "dataset"
  | "data"
  | "weights"
  | "content"
  | "style"
  | "steps"
  | "image-size"
  | "unit";

/** A command line a lab cannot run (a changed setting under --resume…): exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A dataset or file the lab needs is missing or malformed; the message says what and where (exit 2). */
export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DataError";
  }
}

/** One of a lab's independent trainings: what `--plan` lists and `--unit` runs. */
export interface LabUnit {
  /** Unique within the lab; the name `--unit NAME` takes (usually the run's MLflow name). */
  name: string;
  /** What it trains, in a few words. */
  trains: string;
  /** Rough wall time on this project's 2-core software adapter, in seconds. */
  seconds: number;
}

/** What `--summarize` found: the exit status, and the plan's units with no finished run. */
export interface SummaryOutcome {
  status: number;
  missing: string[];
}

export interface Lab {
  name: string;
  description: string;
  /** Which of the optional flags this lab accepts (default none). */
  flags?: readonly LabFlag[];
  /** How many exercises `--exercise N` may name (1 to N), when the lab has that flag. */
  exercises?: number;
  /** How many parts `--part N` may name (1 to N), when the lab has that flag. */
  parts?: number;
  /**
   * Resolves to the exit status (default 0): a lab whose criteria fail returns non-zero. With
   * `args.unit` it trains that unit only, logging exactly as the whole lab does.
   */
  run(args: LabArgs): Promise<void | number>;
  /**
   * The lab's independent trainings under `args` (same order on every call and machine): a lab
   * that has them can be swept (`deno task sweep`), one unit per process.
   */
  units?(args: LabArgs): LabUnit[];
  /**
   * Builds the lab's summary (figures, report, closing table) from the units' runs already in
   * the store, training nothing; names the units it found no finished run of. It runs without
   * the engine initialised (no GPU: the summary job may land on any node).
   */
  summarize?(args: LabArgs): Promise<SummaryOutcome>;
}

const registry = new Map<string, Lab>();

export function registerLab(lab: Lab): void {
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(lab.name)) {
    throw new Error(`registerLab: invalid lab name '${lab.name}' (lowercase, digits, - and _)`);
  }
  if (registry.has(lab.name)) throw new Error(`registerLab: lab '${lab.name}' is registered twice`);
  registry.set(lab.name, lab);
}

/** Registered labs, sorted by name. */
export function listLabs(): Lab[] {
  return [...registry.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function findLab(name: string): Lab | undefined {
  return registry.get(name);
}

/** Standard output as a progress writer (live bar only on a terminal). */
export function stdoutWriter(): ProgressWriter {
  const encoder = new TextEncoder();
  return {
    isTTY: Deno.stdout.isTerminal(),
    write: (text) => {
      Deno.stdout.writeSync(encoder.encode(text));
    },
  };
}
