// The options every exercise of `deno task train tp4` takes.
import type { ProgressWriter } from "../../engine/train/progress.ts";

export interface Tp4Options {
  seed: number;
  epochs?: number;
  batchSize?: number;
  quick: boolean;
  resume: boolean;
  checkpointDir: string;
  out: ProgressWriter;
}
