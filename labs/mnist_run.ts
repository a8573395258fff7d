// What TP1 and every TP2 run share: MNIST on the GPU, one MLflow run around one fit() of an MNIST
// MLP (progress display, per-epoch metrics, atomic per-epoch training checkpoints and --resume,
// test evaluation, learning-curve figure, timings).
import * as path from "node:path";
import {
  loadTrainingCheckpoint,
  saveModel,
  saveTrainingCheckpoint,
} from "../engine/io/checkpoint.ts";
import { modelConfig } from "../engine/io/config.ts";
import { decodeSafetensors } from "../engine/io/safetensors.ts";
import type { Sequential } from "../engine/nn/sequential.ts";
import { summary } from "../engine/nn/summary.ts";
import { softmaxCrossEntropy } from "../engine/ops/loss.ts";
import { l2Penalty, type Optimizer } from "../engine/optim/optimizers.ts";
import { Rng } from "../engine/random.ts";
import { Tensor } from "../engine/tensor.ts";
import {
  type Callback,
  EarlyStopping,
  type EarlyStoppingOptions,
  type Logs,
} from "../engine/train/callbacks.ts";
import { TensorDataset } from "../engine/train/dataset.ts";
import { evaluate, fit, type History } from "../engine/train/fit.ts";
import { ProgressBar } from "../engine/train/progress.ts";
import { kernels, type MlpOptions, MNIST_INPUTS, mnistMlp } from "../models/mlp.ts";
import { writeFileAtomic } from "../tracking/files.ts";
import { type Run, withRun } from "../tracking/run.ts";
import { openStore } from "../tracking/store.ts";
import { loadMnist } from "./data/mnist.ts";
import { learningCurvesSpec, renderPng } from "./figures.ts";
import type { LabArgs } from "./registry.ts";

/** `--quick`: the first QUICK_TRAIN training images (the last 10 % validate) and QUICK_TEST tests. */
export const QUICK_TRAIN = 2000;
export const QUICK_TEST = 500;
/** Keras `validation_split=0.1` = TP2's explicit split x_train[54000:] on the full set. */
export const VALIDATION_SPLIT = 0.1;

/** MNIST on the GPU: the 60,000 training images (validation = the last 10 %) and the tests. */
export interface MnistSplits {
  train: TensorDataset;
  testX: Tensor;
  testY: Tensor;
  trainSamples: number;
  testSamples: number;
  dispose(): void;
}

export async function loadMnistSplits(quick: boolean): Promise<MnistSplits> {
  const mnist = await loadMnist();
  const trainSamples = quick ? QUICK_TRAIN : mnist.trainLabels.length;
  const testSamples = quick ? QUICK_TEST : mnist.testLabels.length;
  const train = new TensorDataset([
    {
      data: mnist.trainImages.subarray(0, trainSamples * MNIST_INPUTS),
      shape: [trainSamples, 784],
    },
    { data: mnist.trainLabels.subarray(0, trainSamples), shape: [trainSamples] },
  ]);
  const testX = Tensor.from(mnist.testImages.subarray(0, testSamples * MNIST_INPUTS), [
    testSamples,
    MNIST_INPUTS,
  ]).keep();
  const testY = Tensor.from(mnist.testLabels.subarray(0, testSamples), [testSamples], "i32")
    .keep();
  return {
    train,
    testX,
    testY,
    trainSamples,
    testSamples,
    dispose() {
      train.dispose();
      testX.dispose();
      testY.dispose();
    },
  };
}

/** Which penalised kernels: TP2 Ex2 regularises the hidden Dense, TP0's variant both. */
export interface L2Spec {
  lambda: number;
  layers: "hidden" | "all";
}

export interface MnistRunSpec {
  /** Checkpoint sub-folder under --checkpoint-dir (e.g. "tp2/ex3-adam"). */
  slug: string;
  experiment: string;
  /** Absent: MLflow's random adjective-animal-NNN name (as `mlflow.start_run()`). */
  runName?: string;
  /** Figure title. */
  title: string;
  epochs: number;
  batchSize: number;
  seed: number;
  model: MlpOptions;
  optimizer: (params: Tensor[]) => Optimizer;
  l2?: L2Spec;
  earlyStopping?: EarlyStoppingOptions;
  params: Record<string, unknown>;
  /** MLflow name of each Keras history key logged per epoch (step = epoch index). */
  curveNames: Record<string, string>;
  /** MLflow names of the test accuracy and loss (logged at step 0). */
  testNames: { accuracy: string; loss: string };
}

export interface Timing {
  /** Median wall time of an epoch after the first (which compiles the pipelines). */
  secondsPerEpoch: number;
  /** That epoch time over its training steps (the validation pass included). */
  msPerStep: number;
  /** Seconds of each epoch. */
  epochSeconds: number[];
}

export interface MnistRunResult {
  run: Run;
  model: Sequential;
  optimizer: Optimizer;
  history: History;
  test: { accuracy: number; loss: number };
  /** Epochs actually trained in total (early stopping may cut them short). */
  epochsRun: number;
  earlyStopping: EarlyStopping | null;
  timing: Timing;
  summaryText: string;
}

/** What a checkpoint carries besides weights, optimizer and dropout state. */
interface CheckpointExtra {
  history: History;
  runId: string;
  batchSize: number;
  seed: number;
  quick: boolean;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Wall time of every epoch (its validation pass included). */
function epochTimer(): Callback & { seconds: number[] } {
  let start = 0;
  const seconds: number[] = [];
  return {
    seconds,
    onEpochBegin() {
      start = performance.now();
    },
    onEpochEnd() {
      seconds.push((performance.now() - start) / 1000);
    },
  };
}

function appendHistory(history: History, epoch: number, logs: Logs): void {
  history.epoch.push(epoch);
  for (const [k, v] of Object.entries(logs)) (history.history[k] ??= []).push(v);
}

async function readCheckpoint(file: string, args: LabArgs) {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch {
    return null;
  }
  const extra = JSON.parse(decodeSafetensors(bytes).metadata.extra ?? "null") as
    | CheckpointExtra
    | null;
  if (!extra?.history || !extra.runId) {
    throw new Error(`--resume: ${file} is not a checkpoint of this lab`);
  }
  if (extra.quick !== args.quick) {
    throw new Error(
      `--resume: ${file} was written ${extra.quick ? "with" : "without"} --quick; ` +
        `resume it ${extra.quick ? "with" : "without"} --quick`,
    );
  }
  return { bytes, extra };
}

/**
 * Trains `spec` in its own MLflow run: per-epoch metrics, test metrics, `learning_curves.png`
 * (+ its Vega-Lite spec), the model summary, history.json, and whatever `finish` adds before the
 * run ends. With --resume it continues from the run's checkpoint in a new MLflow run that repeats
 * the earlier epochs' metrics (as the demo lab does).
 */
export async function trainMnistRun(
  args: LabArgs,
  data: MnistSplits,
  spec: MnistRunSpec,
  finish?: (run: Run, result: MnistRunResult) => Promise<void>,
): Promise<MnistRunResult> {
  const checkpointFile = path.join(args.checkpointDir, spec.slug, "last.safetensors");
  const resumed = args.resume ? await readCheckpoint(checkpointFile, args) : null;
  const batchSize = resumed?.extra.batchSize ?? spec.batchSize;
  const seed = resumed?.extra.seed ?? spec.seed;

  const model = mnistMlp({ ...spec.model, seed: seed + 1 });
  const optimizer = spec.optimizer(model.parameters());
  const history: History = { epoch: [], history: {} };
  let initialEpoch = 0;
  if (resumed) {
    initialEpoch = loadTrainingCheckpoint(resumed.bytes, { model, optimizer }).epoch;
    Object.assign(history, resumed.extra.history);
  }
  const penalised = spec.l2
    ? (spec.l2.layers === "all" ? kernels(model) : kernels(model).slice(0, 1))
    : [];
  const extraLoss = spec.l2 ? () => l2Penalty(penalised, spec.l2!.lambda) : undefined;

  const summaryText = summary(model, [MNIST_INPUTS], { name: spec.runName ?? spec.slug }).text;
  args.out.write(`\n== ${spec.title} ==\n${summaryText}\n`);
  const store = openStore();
  const result = await withRun(store, spec.experiment, {
    runName: spec.runName,
    tags: {
      "denograd.lab": spec.slug,
      ...(resumed
        ? {
          "denograd.resumed_from_run": resumed.extra.runId,
          "denograd.resumed_from_epoch": String(initialEpoch),
        }
        : {}),
    },
  }, async (run) => {
    await run.logParams({ ...spec.params, seed, quick: args.quick });
    const logCurves = (epoch: number, logs: Logs) => {
      const named: Logs = {};
      for (const [key, name] of Object.entries(spec.curveNames)) {
        if (logs[key] !== undefined) named[name] = logs[key];
      }
      return run.logMetrics(named, epoch);
    };
    for (const [i, epoch] of history.epoch.entries()) {
      const logs: Logs = {};
      for (const [k, v] of Object.entries(history.history)) logs[k] = v[i];
      await logCurves(epoch, logs);
    }
    const earlyStopping = spec.earlyStopping ? new EarlyStopping(spec.earlyStopping) : null;
    const clock = epochTimer();
    const checkpoint: Callback = {
      async onEpochEnd(epoch, logs) {
        appendHistory(history, epoch, logs);
        await logCurves(epoch, logs);
        const extra: CheckpointExtra = {
          history,
          runId: run.id,
          batchSize,
          seed,
          quick: args.quick,
        };
        const bytes = await saveTrainingCheckpoint({
          model,
          optimizer,
          epoch: epoch + 1,
          step: optimizer.iterations,
          rng: new Rng(seed),
          extra: JSON.parse(JSON.stringify(extra)),
        });
        await writeFileAtomic(checkpointFile, bytes);
      },
    };
    if (initialEpoch >= spec.epochs) {
      args.out.write(`checkpoint is at epoch ${initialEpoch}: nothing left to train\n`);
    }
    await fit(model, optimizer, data.train, {
      loss: softmaxCrossEntropy,
      epochs: spec.epochs,
      initialEpoch,
      batchSize,
      validationSplit: VALIDATION_SPLIT,
      seed,
      metrics: ["accuracy"],
      extraLoss,
      callbacks: [
        clock,
        checkpoint,
        ...(earlyStopping ? [earlyStopping] : []),
        new ProgressBar({ writer: args.out }),
      ],
    });

    const test = await evaluate(model, data.testX, data.testY, {
      loss: softmaxCrossEntropy,
      metrics: ["accuracy"],
      extraLoss,
    });
    await run.logMetrics({
      [spec.testNames.accuracy]: test.accuracy,
      [spec.testNames.loss]: test.loss,
    }, 0);
    args.out.write(`test: loss ${test.loss.toFixed(4)} - accuracy ${test.accuracy.toFixed(4)}\n`);

    const trainSteps = Math.ceil(
      (data.trainSamples - Math.ceil(data.trainSamples * VALIDATION_SPLIT)) / batchSize,
    );
    const steady = clock.seconds.length > 1 ? clock.seconds.slice(1) : clock.seconds;
    const secondsPerEpoch = steady.length ? median(steady) : NaN;
    const timing: Timing = {
      secondsPerEpoch,
      msPerStep: (secondsPerEpoch * 1000) / trainSteps,
      epochSeconds: clock.seconds,
    };
    await run.setTag("denograd.seconds_per_epoch", secondsPerEpoch.toFixed(3));
    await run.setTag("denograd.ms_per_step", timing.msPerStep.toFixed(2));

    const figure = learningCurvesSpec(spec.title, history);
    await run.logDict("learning_curves.vl.json", figure);
    await run.logArtifact("learning_curves.png", await renderPng(figure));
    await run.logText("model_summary.txt", `${summaryText}\n`);
    await run.logDict("history.json", history);
    const out: MnistRunResult = {
      run,
      model,
      optimizer,
      history,
      test: { accuracy: test.accuracy, loss: test.loss },
      epochsRun: history.epoch.length,
      earlyStopping,
      timing,
      summaryText,
    };
    if (finish) await finish(run, out);
    return out;
  });
  return result;
}

/** Frees the run's model and optimizer state on the GPU. */
export function disposeRun(result: MnistRunResult): void {
  result.optimizer.dispose();
  result.model.dispose();
}

/** The model (with its softmax) as safetensors plus its config, under `dir/` of the run. */
export async function logModel(
  run: Run,
  dir: string,
  model: Sequential,
  metadata: Record<string, string>,
): Promise<Uint8Array> {
  const bytes = await saveModel(model, metadata);
  await run.logArtifact(`${dir}/model.safetensors`, bytes);
  await run.logDict(`${dir}/config.json`, modelConfig(model));
  return bytes;
}

/** Formats a fraction as a percentage with 2 decimals. */
export function pct(x: number): string {
  return `${(100 * x).toFixed(2)} %`;
}
