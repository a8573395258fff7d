// Training and evaluation of one LOP-120 model (spec labs/TP5.md §3.5): Adam lr 2e-3, batch 64,
// global-norm clipping 1.0, MSE over all 119 predicted frames × 14 channels with the horizon
// generated free-running in training as in evaluation. The step loop never reads the GPU: the
// loss is summed on the device and read once per epoch with the validation metrics.
import { noGrad } from "../../engine/autograd.ts";
import { add } from "../../engine/ops/elementwise.ts";
import { mse } from "../../engine/ops/loss.ts";
import { clipGradNorm } from "../../engine/optim/clip.ts";
import { loadTrainingCheckpoint, saveTrainingCheckpoint } from "../../engine/io/checkpoint.ts";
import { decodeSafetensors } from "../../engine/io/safetensors.ts";
import { Adam } from "../../engine/optim/optimizers.ts";
import { Rng } from "../../engine/random.ts";
import { Tensor, tidy } from "../../engine/tensor.ts";
import { TensorDataset } from "../../engine/train/dataset.ts";
import { formatDuration } from "../../engine/train/progress.ts";
import { type MemoryKind, TapModel, WEIGHT_ROWS_FROM } from "../../models/htap.ts";
import {
  CONTENT,
  CONTEXT,
  FRAMES,
  generateLop120,
  HORIZON,
  type Lop120,
  LOP120_SIZES,
  type Lop120Options,
  STEP_INPUT,
} from "../data/lop120.ts";
import { writeFileAtomic } from "../../tracking/files.ts";
import { evaluateLop, type Evaluation } from "./lop_metrics.ts";
import type { Tp5Options } from "./common.ts";

export const LOP = { batchSize: 64, lr: 2e-3, clip: 1.0, evalBatch: 256 };

/** A generated split and its arrays on the GPU. */
export interface LopSplit {
  data: Lop120;
  set: TensorDataset;
}

export interface LopSplits {
  train: LopSplit;
  val: LopSplit;
  test: LopSplit;
  options: Omit<Lop120Options, "n" | "seed">;
  dispose(): void;
}

/** Train / validation / test with data seeds 1 / 2 / 3 (spec §3.4). */
export function makeSplits(
  sizes: { train: number; val: number; test: number },
  options: Omit<Lop120Options, "n" | "seed"> = {},
): LopSplits {
  const split = (n: number, seed: number): LopSplit => {
    const data = generateLop120({ ...options, n, seed });
    const set = new TensorDataset([
      { data: data.contextInput, shape: [n, CONTEXT, STEP_INPUT] },
      { data: data.horizonFlags, shape: [n, HORIZON - 1, 4] },
      { data: data.targets, shape: [n, FRAMES - 1, CONTENT] },
    ]);
    return { data, set };
  };
  const splits = {
    train: split(sizes.train, 1),
    val: split(sizes.val, 2),
    test: split(sizes.test, 3),
  };
  return {
    ...splits,
    options,
    dispose: () => Object.values(splits).forEach((s) => s.set.dispose()),
  };
}

export interface TapSpec {
  /** MLflow run name, e.g. "HTAP_seed1". */
  name: string;
  /** Figure / summary label, e.g. "H-TAP". */
  label: string;
  memory: MemoryKind;
  units: number;
  window?: number;
  /** Model initialisation and shuffling. */
  seed: number;
  epochs: number;
  /** Validate after every epoch (learning curves); otherwise after the last one only. */
  curves?: boolean;
}

/** One epoch; validation metrics on epochs that ran it (every epoch with `curves`, else the last). */
export interface EpochLog {
  loss: number;
  val_mse_app_h?: number;
  val_id_acc?: number;
  val_attn_key_mass?: number;
  seconds: number;
}

/** What the figures need from a rollout of the test split. */
export interface RolloutSample {
  /** [119, 14] predictions of frames 1 … 119 for the first `samples` test sequences. */
  predictions: Float32Array[];
  /** Memory models: [20 + 19 rows] attention rows (queries 80 … 118) over memory 0 … 118. */
  heatmap?: Float32Array[];
  /** Memory models: re-entry attention [100] per sample. */
  reentry?: Float32Array[];
}

export interface TapResult {
  spec: TapSpec;
  params: number;
  epochs: EpochLog[];
  test: Evaluation;
  samples: RolloutSample;
  trainSeconds: number;
}

interface RolloutOutput {
  predictions: Float32Array;
  reentry?: Float32Array;
  sample: RolloutSample;
}

/** Forward passes over a whole split (inference mode, no tape), read back once per batch. */
async function rolloutSplit(model: TapModel, split: LopSplit, samples = 0): Promise<RolloutOutput> {
  const n = split.data.n;
  const memory = model.kind !== "none";
  const predictions = new Float32Array(n * (FRAMES - 1) * CONTENT);
  const reentry = memory ? new Float32Array(n * CONTEXT) : undefined;
  const sample: RolloutSample = { predictions: [] };
  if (memory) [sample.heatmap, sample.reentry] = [[], []];
  model.eval();
  try {
    let offset = 0;
    for (const [x, flags] of split.set.batches({ batchSize: LOP.evalBatch })) {
      const b = x.shape[0];
      const out = noGrad(() => tidy(() => model.rollout(x, flags, { weights: memory })));
      const pred = await out.predictions.data() as Float32Array;
      predictions.set(pred, offset * (FRAMES - 1) * CONTENT);
      let rows: Float32Array | undefined;
      if (out.contextWeights) {
        rows = await out.contextWeights.data() as Float32Array;
        const width = CONTEXT - WEIGHT_ROWS_FROM;
        for (let i = 0; i < b; i++) {
          const last = rows.subarray(((i + 1) * width - 1) * CONTEXT, (i + 1) * width * CONTEXT);
          reentry!.set(last, (offset + i) * CONTEXT);
        }
      }
      const take = Math.min(b, samples - offset);
      if (take > 0) {
        const horizon = await Promise.all(
          (out.horizonWeights ?? []).map((w) => w.data() as Promise<Float32Array>),
        );
        for (let i = 0; i < take; i++) {
          const per = (FRAMES - 1) * CONTENT;
          sample.predictions.push(pred.slice(i * per, (i + 1) * per));
          if (rows) {
            const width = CONTEXT - WEIGHT_ROWS_FROM;
            const grid: Float32Array[] = [];
            for (let r = 0; r < width; r++) {
              const row = new Float32Array(FRAMES - 1);
              row.set(rows.subarray((i * width + r) * CONTEXT, (i * width + r + 1) * CONTEXT));
              grid.push(row);
            }
            horizon.forEach((w, s) => {
              const keys = CONTEXT + s + 1;
              const row = new Float32Array(FRAMES - 1);
              row.set(w.subarray(i * keys, (i + 1) * keys));
              grid.push(row);
            });
            sample.heatmap!.push(concatRows(grid));
            sample.reentry!.push(
              reentry!.slice((offset + i) * CONTEXT, (offset + i + 1) * CONTEXT),
            );
          }
        }
      }
      out.predictions.dispose();
      out.contextWeights?.dispose();
      out.horizonWeights?.forEach((w) => w.dispose());
      offset += b;
    }
  } finally {
    model.train();
  }
  return { predictions, reentry, sample };
}

function concatRows(rows: Float32Array[]): Float32Array {
  const out = new Float32Array(rows.length * rows[0].length);
  rows.forEach((r, i) => out.set(r, i * r.length));
  return out;
}

/** Rows of the heatmap sample: queries 80 … 118 (context 80–99, generated steps 100–118). */
export const HEATMAP_QUERIES = Array.from(
  { length: FRAMES - 1 - WEIGHT_ROWS_FROM },
  (_, i) => WEIGHT_ROWS_FROM + i,
);

/** A model's last per-epoch training checkpoint, read back for --resume. */
export interface TapCheckpoint {
  bytes: Uint8Array;
  /** The epochs it completed. */
  epochs: EpochLog[];
  /** Training seconds so far. */
  trainSeconds: number;
  /** The run that wrote it. */
  runId: string;
  /** The plan it was trained under (labs/unit_runs.ts). */
  plan: string;
}

/** The checkpoint at `file`, or null when there is none. */
export async function readTapCheckpoint(file: string): Promise<TapCheckpoint | null> {
  const bytes = await Deno.readFile(file).catch((e) => {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  });
  if (bytes === null) return null;
  const extra = JSON.parse(decodeSafetensors(bytes).metadata.extra ?? "null");
  if (!Array.isArray(extra?.epochs) || typeof extra.runId !== "string") {
    throw new Error(`--resume: ${file} is not a TP5 Part-3 training checkpoint`);
  }
  return { bytes, ...extra };
}

export async function trainTap(
  spec: TapSpec,
  splits: LopSplits,
  options: Tp5Options,
  hooks: {
    /** Also called for each epoch of a resumed checkpoint, so the run's curves are whole. */
    onEpoch?: (epoch: number, log: EpochLog) => Promise<void>;
    /** Called with the trained model before its weights are freed (e.g. to log them). */
    onTrained?: (model: TapModel) => Promise<void>;
  } = {},
  /** Written after every epoch; `resume` continues from one (model, Adam, shuffling, epochs). */
  checkpoint?: { file: string; runId: string; resume: TapCheckpoint | null },
): Promise<TapResult> {
  let rng = new Rng(spec.seed);
  const model = new TapModel({
    sizes: LOP120_SIZES,
    units: spec.units,
    memory: spec.memory,
    window: spec.window,
    rng,
  });
  const params = model.parameters().reduce((n, p) => n + p.size, 0);
  const optimizer = new Adam(model.parameters(), { lr: LOP.lr });
  const epochs: EpochLog[] = [];
  const steps = splits.train.set.batchCount(LOP.batchSize, true);
  const out = options.out;
  let started = performance.now();
  const resume = checkpoint?.resume;
  if (resume) {
    rng = loadTrainingCheckpoint(resume.bytes, { model, optimizer }).rng;
    for (const log of resume.epochs) {
      await hooks.onEpoch?.(epochs.length, log);
      epochs.push(log);
    }
    started -= resume.trainSeconds * 1000;
    out.write(`  ${spec.name}: resumed after epoch ${epochs.length} of ${spec.epochs}\n`);
  }
  try {
    for (let epoch = epochs.length; epoch < spec.epochs; epoch++) {
      const epochStart = performance.now();
      let total = Tensor.zeros([]).keep();
      let step = 0;
      for (
        const [x, flags, y] of splits.train.set.batches({
          batchSize: LOP.batchSize,
          rng,
          dropRemainder: true,
        })
      ) {
        const next = tidy(() => {
          optimizer.zeroGrad();
          const loss = mse(model.forward(x, flags), y);
          loss.backward();
          clipGradNorm(model.parameters(), LOP.clip);
          optimizer.step();
          return add(total, loss).keep();
        });
        total.dispose();
        total = next;
        step++;
        if (out.isTTY) {
          const elapsed = (performance.now() - epochStart) / 1000;
          out.write(
            `\r  ${spec.name} epoch ${epoch + 1}/${spec.epochs} step ${step}/${steps} ` +
              `(${formatDuration(elapsed)}, ETA ${
                formatDuration(elapsed / step * (steps - step))
              })` +
              "\x1b[K",
          );
        }
      }
      const loss = (await total.item()) / steps;
      total.dispose();
      const log: EpochLog = { loss, seconds: 0 };
      if (spec.curves || epoch === spec.epochs - 1) {
        const val = await rolloutSplit(model, splits.val);
        const evaluation = evaluateLop(splits.val.data, val.predictions, val.reentry);
        log.val_mse_app_h = evaluation.metrics.mse_app_h;
        log.val_id_acc = evaluation.metrics.id_acc;
        log.val_attn_key_mass = evaluation.attention?.attn_key_mass;
      }
      log.seconds = (performance.now() - epochStart) / 1000;
      epochs.push(log);
      const shown = (key: string, value: number | undefined, text: (v: number) => string) =>
        value === undefined ? "" : `, ${key} ${text(value)}`;
      out.write(
        `${out.isTTY ? "\r" : ""}  ${spec.name} epoch ${epoch + 1}/${spec.epochs}: loss ` +
          loss.toFixed(4) +
          shown("val mse_app_h", log.val_mse_app_h, (v) => v.toFixed(4)) +
          shown("id_acc", log.val_id_acc, (v) => `${(100 * v).toFixed(1)} %`) +
          shown("key mass", log.val_attn_key_mass, (v) => v.toFixed(3)) +
          ` (${log.seconds.toFixed(1)} s)${out.isTTY ? "\x1b[K" : ""}\n`,
      );
      await hooks.onEpoch?.(epoch, log);
      if (checkpoint) {
        const extra = {
          epochs,
          trainSeconds: (performance.now() - started) / 1000,
          runId: checkpoint.runId,
          plan: options.plan,
        };
        const bytes = await saveTrainingCheckpoint({
          model,
          optimizer,
          epoch: epoch + 1,
          step: optimizer.iterations,
          rng,
          extra: JSON.parse(JSON.stringify(extra)),
        });
        await writeFileAtomic(checkpoint.file, bytes);
      }
    }
    const trainSeconds = (performance.now() - started) / 1000;
    const test = await rolloutSplit(model, splits.test, 3);
    await hooks.onTrained?.(model);
    return {
      spec,
      params,
      epochs,
      test: evaluateLop(splits.test.data, test.predictions, test.reentry),
      samples: test.sample,
      trainSeconds,
    };
  } finally {
    for (const p of model.parameters()) p.dispose();
    optimizer.dispose?.();
  }
}

/** A TapResult as JSON holds it: the samples' Float32Arrays as arrays (exact: f32 ⊂ f64). */
export interface TapResultJson extends Omit<TapResult, "samples"> {
  samples: { predictions: number[][]; heatmap?: number[][]; reentry?: number[][] };
}

export function tapResultToJson(r: TapResult): TapResultJson {
  const arrays = (xs?: Float32Array[]) => xs?.map((x) => Array.from(x));
  const { predictions, heatmap, reentry } = r.samples;
  return {
    ...r,
    samples: {
      predictions: arrays(predictions)!,
      heatmap: arrays(heatmap),
      reentry: arrays(reentry),
    },
  };
}

export function tapResultFromJson(r: TapResultJson): TapResult {
  const arrays = (xs?: number[][]) => xs?.map((x) => Float32Array.from(x));
  const { predictions, heatmap, reentry } = r.samples;
  return {
    ...r,
    samples: {
      predictions: arrays(predictions)!,
      heatmap: arrays(heatmap),
      reentry: arrays(reentry),
    },
  };
}
