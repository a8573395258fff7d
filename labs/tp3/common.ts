// The options every exercise of `deno task train tp3` takes.
import type { ProgressWriter } from "../../engine/train/progress.ts";

export const DATASET_NAMES = ["fashion-mnist", "cifar10"] as const;
export type DatasetName = typeof DATASET_NAMES[number];

export interface Tp3Options {
  seed: number;
  epochs?: number;
  batchSize?: number;
  quick: boolean;
  resume: boolean;
  checkpointDir: string;
  out: ProgressWriter;
  /** Exercises 1–2: the images classified. */
  dataset: DatasetName;
  /** Exercises 1–2: a folder with the dataset's files instead of the default place. */
  dataDir?: string;
  /** Exercise 4: the VGG16 weights (safetensors); without them the exercise stops with exit 2. */
  weights?: string;
  /** Exercise 4: the content and style images (PNG or JPEG). */
  contentImage?: string;
  styleImage?: string;
  /** Exercise 4: Adam steps on the pixels. */
  steps?: number;
  /** Exercise 4: edge of the square images optimised. */
  imageSize?: number;
  /** The plan key every unit's run is tagged with (labs/unit_runs.ts). */
  plan: string;
  /** Training one unit (`--unit`): `--resume` without a checkpoint yet starts over. */
  unit: boolean;
}
