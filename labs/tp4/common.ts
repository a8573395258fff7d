// The options every exercise of `deno task train tp4` takes.
import type { ProgressWriter } from "../../engine/train/progress.ts";

export interface Tp4Options {
  seed: number;
  epochs?: number;
  batchSize?: number;
  quick: boolean;
  resume: boolean;
  /** Training one unit of a sweep: --resume without a checkpoint yet starts over. */
  unit: boolean;
  /** The plan key every unit run is tagged with (labs/unit_runs.ts). */
  plan: string;
  checkpointDir: string;
  out: ProgressWriter;
}
