// TP4 Exercises 1–2 in training (spec labs/TP1-TP4.md §5.1–5.3): the handout U-Net on BJ's noisy
// discs, with the students' Dice/IoU as Keras metrics (soft, per batch, batch-size-weighted over
// the epoch) and, per epoch, the validation Dice/IoU of the whole set from summed intersections
// and unions at threshold 0.5. One MLflow run per loss in `TP4_Segmentation_Unet`, named
// `unet_<loss>_<optimizer>_img<H>_f<base>`; `--compare-losses` trains Dice, BCE and BCE + Dice and
// sets their validation Dice side by side, with the numbers behind a collapse (foreground share,
// the all-background BCE, validation Dice with batch instead of moving BatchNorm statistics).
import * as path from "node:path";
import { noGrad } from "../../engine/autograd.ts";
import type { Module } from "../../engine/nn/module.ts";
import { bceDiceLoss, binaryCrossEntropy, diceLoss } from "../../engine/ops/loss.ts";
import { gather } from "../../engine/ops/shape.ts";
import { Adam } from "../../engine/optim/optimizers.ts";
import { Rng } from "../../engine/random.ts";
import { runtime } from "../../engine/runtime.ts";
import { Tensor, tidy } from "../../engine/tensor.ts";
import { type History, type LossFn, predict } from "../../engine/train/fit.ts";
import {
  diceFromCounts,
  diceMetric,
  iouFromCounts,
  iouMetric,
  type OverlapCounts,
  overlapCounts,
  sumCounts,
} from "../../engine/train/metrics.ts";
import { UNet } from "../../models/unet.ts";
import { Run, withRun } from "../../tracking/run.ts";
import { openStore, type TrackingStore } from "../../tracking/store.ts";
import { type DiscImages, discImages } from "../data/discs.ts";
import { curvesSpec, renderPng, type VegaLiteSpec } from "../figures.ts";
import { logModel, readResumePoint, trainRun } from "../train_run.ts";
import { type FoundUnit, logUnitResult, unitSeconds, unitTags } from "../unit_runs.ts";
import {
  type Check,
  columns,
  type ExerciseResult,
  f4,
  onSoftwareAdapter,
  tupleText,
} from "../checks.ts";
import type { Tp4Options } from "./common.ts";
import { errorTile, greyTile, gridPng } from "../images.ts";

export const UNET_EXPERIMENT = "TP4_Segmentation_Unet";
export const LOSS_NAMES = ["dice", "bce", "bce_dice"] as const;
export type LossName = (typeof LOSS_NAMES)[number];
/** The handout's U-Net size, and the reduced default on a software adapter (BJ's 8-base). */
export const HANDOUT_BASE_FILTERS = 32;
export const SOFTWARE_BASE_FILTERS = 8;
export const THRESHOLD = 0.5;

export const TARGETS = { dice: 0.97, iou: 0.94 };

/** What the students reported for each loss (spec §5.3). */
const STUDENTS: Record<LossName, { dice: string; iou: string }> = {
  dice: { dice: "BJ 0.9937", iou: "BJ 0.9875" },
  bce: { dice: "KR 0.0546 (collapse)", iou: "KR 0.0282" },
  bce_dice: { dice: "TP0 ≈ 0.52 (noise data)", iou: "TP0 ≈ 0.35" },
};

export function isLossName(name: string): name is LossName {
  return (LOSS_NAMES as readonly string[]).includes(name);
}

export function lossFunction(name: LossName, smooth: number): LossFn {
  switch (name) {
    case "dice":
      return (p, t) => diceLoss(p, t, { smooth });
    case "bce":
      return binaryCrossEntropy;
    case "bce_dice":
      return (p, t) => bceDiceLoss(p, t, { smooth });
  }
}

export interface UnetConfig {
  loss: LossName;
  optimizer: "adam";
  learningRate: number;
  batchSize: number;
  epochs: number;
  imageSize: number;
  baseFilters: number;
  trainImages: number;
  valImages: number;
  /** Dice/IoU smoothing of the metrics and losses (handout 1.0). */
  smooth: number;
  seed: number;
  quick: boolean;
}

/** The handout's naming convention, with the model size: unet_dice_adam_img128_f32. */
export function unetRunName(
  c: Pick<UnetConfig, "loss" | "optimizer" | "imageSize" | "baseFilters">,
) {
  return `unet_${c.loss}_${c.optimizer}_img${c.imageSize}_f${c.baseFilters}`;
}

/**
 * The run's settings: BJ's recipe (Adam 1e-3, batch 4, 10 epochs, 500 + 100 images of 128²)
 * with the handout's 32 base filters on a GPU and BJ's reduced 8 on a software adapter, unless
 * --base-filters says otherwise. Quick: 24 + 8 images of 32², base 4, 2 epochs.
 */
export function unetConfig(
  options: Tp4Options,
  loss: LossName,
  baseFilters: number,
): UnetConfig {
  const { quick } = options;
  return {
    loss,
    optimizer: "adam",
    learningRate: 1e-3,
    batchSize: options.batchSize ?? 4,
    epochs: options.epochs ?? (quick ? 2 : 10),
    imageSize: quick ? 32 : 128,
    baseFilters,
    trainImages: quick ? 24 : 500,
    valImages: quick ? 8 : 100,
    smooth: 1,
    seed: options.seed,
    quick,
  };
}

/**
 * The default base filters for this adapter, and the line that announces a reduced default
 * (null when nothing is reduced).
 */
export async function defaultBaseFilters(
  requested: number | undefined,
  quick: boolean,
): Promise<{ baseFilters: number; announcement: string | null }> {
  if (requested !== undefined) return { baseFilters: requested, announcement: null };
  if (quick) return { baseFilters: 4, announcement: null };
  if (!(await onSoftwareAdapter())) {
    return { baseFilters: HANDOUT_BASE_FILTERS, announcement: null };
  }
  return {
    baseFilters: SOFTWARE_BASE_FILTERS,
    announcement: `software adapter: the U-Net defaults to ${SOFTWARE_BASE_FILTERS} base ` +
      `filters (BJ's reduced size); --base-filters ${HANDOUT_BASE_FILTERS} trains the ` +
      "handout's 1,930,657-parameter model",
  };
}

/** The images of both splits on the GPU, and on the host for the figures and counts. */
export interface SegmentationData {
  size: number;
  train: DiscImages;
  val: DiscImages;
  trainX: Tensor;
  trainY: Tensor;
  valX: Tensor;
  valY: Tensor;
  /** Share of foreground pixels in the training masks. */
  foreground: number;
  dispose(): void;
}

/** Training set from `seed`, validation from `seed + 1`: independent draws, as BJ's. */
export function segmentationData(config: UnetConfig): SegmentationData {
  const size = config.imageSize;
  const train = discImages(config.seed, config.trainImages, { size });
  const val = discImages(config.seed + 1, config.valImages, { size });
  const shape = (n: number) => [n, size, size, 1];
  const tensors = {
    trainX: Tensor.from(train.x, shape(train.count)).keep(),
    trainY: Tensor.from(train.y, shape(train.count)).keep(),
    valX: Tensor.from(val.x, shape(val.count)).keep(),
    valY: Tensor.from(val.y, shape(val.count)).keep(),
  };
  const foreground = train.y.reduce((a, b) => a + b, 0) / train.y.length;
  return {
    size,
    train,
    val,
    ...tensors,
    foreground,
    dispose() {
      for (const t of Object.values(tensors)) t.dispose();
    },
  };
}

async function hostValues(t: Tensor): Promise<Float32Array> {
  try {
    return Float32Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

/**
 * Predictions with BatchNorm on each batch's own statistics (training mode) instead of the moving
 * ones; the moving statistics the pass updates are put back afterwards.
 */
async function predictWithBatchStatistics(
  model: Module,
  x: Tensor,
  batchSize: number,
): Promise<Float32Array> {
  const saved = await Promise.all(
    model.buffers().map(async (b) => [b, Float32Array.from(await b.data())] as const),
  );
  const n = x.shape[0];
  const parts: Float32Array[] = [];
  const wasTraining = model.training;
  model.train();
  try {
    for (let start = 0; start < n; start += batchSize) {
      const rows = Int32Array.from(
        { length: Math.min(batchSize, n - start) },
        (_, i) => start + i,
      );
      const out = noGrad(() =>
        tidy(() => model.forward(gather(x, Tensor.from(rows, [rows.length], "i32"), 0)))
      ).keep();
      parts.push(await hostValues(out));
    }
  } finally {
    model.train(wasTraining);
    for (const [buffer, values] of saved) runtime().upload(buffer.storage, values);
  }
  const all = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    all.set(p, offset);
    offset += p.length;
  }
  return all;
}

/** Per-image counts at the threshold, and the dataset-level Dice and IoU they sum to. */
export function datasetOverlap(probs: Float32Array, masks: Float32Array, images: number) {
  const pixels = masks.length / images;
  const perImage: OverlapCounts[] = [];
  for (let n = 0; n < images; n++) {
    perImage.push(
      overlapCounts(probs, masks, {
        threshold: THRESHOLD,
        start: n * pixels,
        end: (n + 1) * pixels,
      }),
    );
  }
  const total = sumCounts(perImage);
  return {
    perImage,
    dice: diceFromCounts(total),
    iou: iouFromCounts(total),
    perImageDice: perImage.map((c) => diceFromCounts(c)),
  };
}

function learningCurves(title: string, history: History): VegaLiteSpec {
  const h = history.history;
  const pick = (pairs: [string, string][]) =>
    pairs.filter(([key]) => h[key]).map(([key, name]) => ({ name, values: h[key] }));
  return curvesSpec(title, [
    { title: "Loss", y: "loss", series: pick([["loss", "training"], ["val_loss", "validation"]]) },
    {
      title: "Dice",
      y: "Dice",
      series: pick([
        ["dice_coef", "training"],
        ["val_dice_coef", "validation"],
        ["val_dice_dataset", "validation, whole set > 0.5"],
      ]),
    },
    {
      title: "IoU",
      y: "IoU",
      series: pick([
        ["iou", "training"],
        ["val_iou", "validation"],
        ["val_iou_dataset", "validation, whole set > 0.5"],
      ]),
    },
  ]);
}

function diceHistogram(title: string, perImageDice: readonly number[]): VegaLiteSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: { text: title, fontSize: 15, offset: 12 },
    background: "white",
    config: { font: "DejaVu Sans", view: { stroke: "#ddd" } },
    width: 420,
    height: 240,
    data: { values: perImageDice.map((dice) => ({ dice })) },
    mark: { type: "bar", color: "#4c78a8" },
    encoding: {
      x: {
        field: "dice",
        type: "quantitative",
        bin: { maxbins: 25 },
        title: "per-image Dice (threshold 0.5)",
      },
      y: { aggregate: "count", type: "quantitative", title: "validation images" },
    },
  };
}

/** Image, ground truth, probability, thresholded mask and error map of the first `rows` images. */
function predictionGrid(
  title: string,
  data: SegmentationData,
  probs: Float32Array,
  perImageDice: readonly number[],
  rows: number,
): Promise<Uint8Array> {
  const s = data.size;
  const pixels = s * s;
  const binary = probs.map((p) => (p > THRESHOLD ? 1 : 0));
  return gridPng({
    title,
    columns: ["image", "ground truth", "probability", "mask (p > 0.5)", "error map"],
    cell: Math.max(128, s),
    rows: Array.from({ length: Math.min(rows, data.val.count) }, (_, n) => {
      const offset = n * pixels;
      return {
        label: `#${n}`,
        tiles: [
          greyTile(data.val.x, s, s, { offset }),
          greyTile(data.val.y, s, s, { offset }),
          greyTile(probs, s, s, { offset }),
          greyTile(binary, s, s, { offset }),
          errorTile(probs, data.val.y, s, s, { offset, threshold: THRESHOLD }),
        ],
        captions: ["", "", "", "", `Dice ${perImageDice[n].toFixed(4)}`],
      };
    }),
    footer: "error map: true positive light grey, false positive red, false negative blue, " +
      "true negative black",
  });
}

/** What the exercise's checks and loss comparison read of a U-Net run: its unit result. */
export interface UnetOutcome {
  config: UnetConfig;
  runName: string;
  runId: string;
  history: History;
  params: number;
  /** Last epoch's values. */
  final: {
    diceKeras: number;
    iouKeras: number;
    diceDataset: number;
    iouDataset: number;
    trainDice: number;
    /** Dataset-level validation Dice with BatchNorm on batch statistics. */
    diceBatchStatistics: number;
  };
  secondsPerEpoch: number;
  /** Foreground share of the training pixels (the comparison's all-background BCE). */
  foreground: number;
}

/** The unit that trains the U-Net with `loss`. */
export const unetUnit = (loss: LossName) => `unet_${loss}`;

/** Trains one U-Net in its own tracking run and logs everything item 5–6 of the issue name. */
async function trainUnet(
  options: Tp4Options,
  config: UnetConfig,
  data: SegmentationData,
): Promise<void> {
  const runName = unetRunName(config);
  const checkpointFile = path.join(options.checkpointDir, "tp4", runName, "last.safetensors");
  const resume = options.resume ? await readResumePoint(checkpointFile) : null;
  if (options.resume && !resume) {
    // A sweep's task requeued before its first epoch ended has nothing to resume: it starts over.
    if (!options.unit) {
      throw new Error(`--resume: no checkpoint at ${checkpointFile}; train without --resume first`);
    }
    options.out.write(
      `--resume: no checkpoint at ${checkpointFile} yet: training from the start\n`,
    );
  }
  const saved = resume?.settings.config as UnetConfig | undefined;
  if (saved) {
    const differs = (Object.keys(config) as (keyof UnetConfig)[])
      .filter((k) => k !== "epochs" && saved[k] !== config[k]);
    if (differs.length) {
      throw new Error(
        `--resume: ${checkpointFile} was trained with other settings (${
          differs.map((k) => `${k} ${saved[k]} vs ${config[k]}`).join(", ")
        }); resume with the flags it started with`,
      );
    }
  }
  const model = new UNet({ baseFilters: config.baseFilters, rng: new Rng(config.seed + 2) });
  const optimizer = new Adam(model.parameters(), { lr: config.learningRate });
  const params = model.trainableCount() + model.nonTrainableCount();
  const title = `TP4 U-Net — ${config.loss} loss, base ${config.baseFilters}, ` +
    `${config.imageSize}², Adam ${config.learningRate}`;
  let lastProbs: Float32Array = new Float32Array(0);
  try {
    await withRun(openStore(), UNET_EXPERIMENT, {
      runName,
      tags: {
        "denograd.lab": "tp4",
        "denograd.exercise": "1",
        ...unitTags(options.plan, unetUnit(config.loss)),
      },
    }, async (run: Run) => {
      await run.logParams({
        loss: config.loss,
        optimizer: config.optimizer,
        learning_rate: config.learningRate,
        batch_size: config.batchSize,
        epochs: config.epochs,
        input_shape: tupleText([config.imageSize, config.imageSize, 1]),
        base_filters: config.baseFilters,
        total_params: params,
        non_trainable_params: model.nonTrainableCount(),
        smooth: config.smooth,
        threshold: THRESHOLD,
        train_images: config.trainImages,
        val_images: config.valImages,
        data: "BJ single noisy disc (seeded)",
        foreground_fraction: data.foreground.toFixed(4),
        seed: config.seed,
        quick: config.quick,
      });
      const trained = await trainRun(run, {
        model,
        optimizer,
        loss: lossFunction(config.loss, config.smooth),
        data: { x: data.trainX, y: data.trainY },
        validationData: { x: data.valX, y: data.valY },
        metrics: [diceMetric({ smooth: config.smooth }), iouMetric({ smooth: config.smooth })],
        epochs: config.epochs,
        batchSize: config.batchSize,
        seed: config.seed,
        out: options.out,
        epochMetrics: async () => {
          lastProbs = await hostValues(predict(model, data.valX, { batchSize: config.batchSize }));
          const overlap = datasetOverlap(lastProbs, data.val.y, data.val.count);
          return { val_dice_dataset: overlap.dice, val_iou_dataset: overlap.iou };
        },
        summary: {
          inputShape: [config.imageSize, config.imageSize, 1],
          name: runName,
          artifact: "model_summary.txt",
          title,
        },
        figures: [{ name: "learning_curves", spec: (h) => learningCurves(title, h) }],
        historyArtifact: "history.json",
        checkpoint: { file: checkpointFile, settings: { config }, resume },
      });
      if (lastProbs.length === 0) {
        lastProbs = await hostValues(predict(model, data.valX, { batchSize: config.batchSize }));
      }
      const overlap = datasetOverlap(lastProbs, data.val.y, data.val.count);
      const batchStats = datasetOverlap(
        await predictWithBatchStatistics(model, data.valX, config.batchSize),
        data.val.y,
        data.val.count,
      );
      const h = trained.history.history;
      const lastEpoch = trained.history.epoch.at(-1) ?? 0;
      const final = {
        diceKeras: h.val_dice_coef.at(-1)!,
        iouKeras: h.val_iou.at(-1)!,
        diceDataset: overlap.dice,
        iouDataset: overlap.iou,
        trainDice: h.dice_coef.at(-1)!,
        diceBatchStatistics: batchStats.dice,
      };
      const sorted = [...overlap.perImageDice].sort((a, b) => a - b);
      await run.logMetrics({
        val_dice_per_image_mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
        val_dice_per_image_min: sorted[0],
        val_dice_per_image_median: sorted[sorted.length >> 1],
        val_dice_dataset_batch_stats: batchStats.dice,
        val_iou_dataset_batch_stats: batchStats.iou,
      }, lastEpoch);

      const histogram = diceHistogram(
        `${runName}: per-image validation Dice (${data.val.count} images)`,
        overlap.perImageDice,
      );
      await run.logDict("per_image_dice.vl.json", histogram);
      await run.logArtifact("per_image_dice.png", await renderPng(histogram));
      await run.logDict("per_image_dice.json", {
        threshold: THRESHOLD,
        dice: overlap.perImageDice,
        counts: overlap.perImage,
      });
      await run.logArtifact(
        "val_predictions.png",
        await predictionGrid(
          `${runName}: validation images`,
          data,
          lastProbs,
          overlap.perImageDice,
          6,
        ),
      );
      await logModel(run, "model", model, {
        mlflow_run_id: run.id,
        base_filters: String(config.baseFilters),
      });
      options.out.write(
        `${runName}: val Dice ${f4(final.diceKeras)} (Keras) / ${f4(final.diceDataset)} ` +
          `(dataset), val IoU ${f4(final.iouKeras)} / ${f4(final.iouDataset)}; ` +
          `${trained.timing.secondsPerEpoch.toFixed(1)} s/epoch; MLflow run ${run.id}\n`,
      );
      const outcome: UnetOutcome = {
        config,
        runName,
        runId: run.id,
        history: trained.history,
        params,
        final,
        secondsPerEpoch: trained.timing.secondsPerEpoch,
        foreground: data.foreground,
      };
      await logUnitResult(run, outcome);
    });
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

function checksOf(result: UnetOutcome, quick: boolean): Check[] {
  const { loss } = result.config;
  const enforced = loss === "dice" && !quick;
  const at = (value: number, target: number) => value >= target;
  const students = STUDENTS[loss];
  const f = result.final;
  return [
    {
      name: `${loss}: val Dice (Keras, soft)`,
      value: f4(f.diceKeras),
      students: students.dice,
      target: `≥ ${TARGETS.dice}`,
      pass: at(f.diceKeras, TARGETS.dice),
      informational: !enforced,
    },
    {
      name: `${loss}: val IoU (Keras, soft)`,
      value: f4(f.iouKeras),
      students: students.iou,
      target: `≥ ${TARGETS.iou}`,
      pass: at(f.iouKeras, TARGETS.iou),
      informational: !enforced,
    },
    {
      name: `${loss}: val Dice (dataset, > 0.5)`,
      value: f4(f.diceDataset),
      students: "—",
      target: `≥ ${TARGETS.dice}`,
      pass: at(f.diceDataset, TARGETS.dice),
      informational: !enforced,
    },
    {
      name: `${loss}: val IoU (dataset, > 0.5)`,
      value: f4(f.iouDataset),
      students: "—",
      target: `≥ ${TARGETS.iou}`,
      pass: at(f.iouDataset, TARGETS.iou),
      informational: !enforced,
    },
  ];
}

/** The side-by-side table of --compare-losses and what explains a collapse. */
function comparison(results: readonly UnetOutcome[], foreground: number): string {
  // The best constant prediction p = foreground share: its BCE is the entropy of the labels.
  const allBackgroundBce = -(foreground * Math.log(foreground) +
    (1 - foreground) * Math.log(1 - foreground));
  const epochs = Math.max(...results.map((r) => r.history.epoch.length));
  const header = ["epoch", ...results.map((r) => `val Dice ${r.config.loss}`)];
  const rows = Array.from({ length: epochs }, (_, e) => [
    String(e + 1),
    ...results.map((r) => f4(r.history.history.val_dice_coef[e] ?? NaN)),
  ]);
  const summary = [
    ["loss", "train Dice", "val Dice (Keras)", "val Dice (dataset)", "val Dice (batch BN stats)"],
    ...results.map((r) => [
      r.config.loss,
      f4(r.final.trainDice),
      f4(r.final.diceKeras),
      f4(r.final.diceDataset),
      f4(r.final.diceBatchStatistics),
    ]),
  ];
  return [
    columns([header, ...rows]),
    "",
    columns(summary),
    "",
    `Foreground is ${(100 * foreground).toFixed(1)} % of the training pixels: predicting ` +
    `background everywhere at p = ${foreground.toFixed(3)} already scores a BCE of ` +
    `${allBackgroundBce.toFixed(3)} with a Dice of 0, so BCE's gradient is mostly background ` +
    "while Dice's is all foreground. Validation runs BatchNorm on its moving statistics " +
    "(momentum 0.99); where 'batch BN stats' is far above 'val Dice (dataset)', the moving " +
    "statistics lag the weights — KR's 0.77 train vs 0.05 validation Dice after 320 steps.",
  ].join("\n");
}

/** Which U-Nets exercise 1 trains: the --loss (Dice by default), or all three compared. */
export interface UnetSelection {
  loss: LossName;
  compare: boolean;
  baseFilters?: number;
}

export const selectedLosses = (selection: UnetSelection): LossName[] =>
  selection.compare ? [...LOSS_NAMES] : [selection.loss];

/** Trains the U-Net of one loss (a unit of exercise 1). */
export async function trainUnetUnit(
  options: Tp4Options,
  loss: LossName,
  requested: number | undefined,
): Promise<void> {
  const { baseFilters, announcement } = await defaultBaseFilters(requested, options.quick);
  if (announcement) options.out.write(`${announcement}\n`);
  options.out.write(`\n== TP4 Exercise 1 — U-Net, ${loss} loss ==\n`);
  const config = unetConfig(options, loss, baseFilters);
  const data = segmentationData(config);
  try {
    await trainUnet(options, config, data);
  } finally {
    data.dispose();
  }
}

/**
 * Exercise 1's checks from its units' results; with --compare-losses, the losses side by side,
 * printed and added to each run (like MlflowClient.log_artifact on a finished run).
 */
export async function unetExerciseResult(
  store: TrackingStore,
  options: Tp4Options,
  selection: UnetSelection,
  found: ReadonlyMap<string, FoundUnit<unknown>>,
): Promise<ExerciseResult> {
  const results = selectedLosses(selection).map((loss) =>
    found.get(unetUnit(loss))!.result as UnetOutcome
  );
  if (selection.compare) {
    const figure = curvesSpec("TP4 — validation Dice per loss", [
      {
        title: "Validation Dice (Keras, soft)",
        y: "Dice",
        series: results.map((r) => ({
          name: r.config.loss,
          values: r.history.history.val_dice_coef,
        })),
      },
      {
        title: "Validation Dice (dataset, > 0.5)",
        y: "Dice",
        series: results.map((r) => ({
          name: r.config.loss,
          values: r.history.history.val_dice_dataset,
        })),
      },
    ]);
    const png = await renderPng(figure);
    const text = comparison(results, results[0].foreground);
    options.out.write(`\n== losses compared ==\n${text}\n`);
    for (const loss of selectedLosses(selection)) {
      // The runs are finished; like MlflowClient.log_artifact, these add to them.
      const run = new Run(store, found.get(unetUnit(loss))!.run.info);
      await run.logDict("loss_comparison.vl.json", figure);
      await run.logArtifact("loss_comparison.png", png);
      await run.logText("loss_comparison.txt", `${text}\n`);
    }
  }
  const first = results[0];
  return {
    exercise: 1,
    title: `U-Net (base ${first.config.baseFilters}, ${
      first.params.toLocaleString("en-US")
    } params, ${first.config.imageSize}², ${first.secondsPerEpoch.toFixed(1)} s/epoch)`,
    checks: results.flatMap((r) => checksOf(r, options.quick)),
    runs: results.map((r) => `${r.runName} (${r.runId})`),
    seconds: unitSeconds(found),
  };
}
