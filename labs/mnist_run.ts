// What TP1 and every TP2 run share: MNIST on the GPU, and one tracking run around one training of
// an MNIST MLP (the lab's own L2 and early stopping, Keras history keys renamed per lab, the test
// evaluation and learning curves) through labs/train_run.ts.
import * as path from "node:path";
import type { Sequential } from "../engine/nn/sequential.ts";
import { softmaxCrossEntropy } from "../engine/ops/loss.ts";
import { l2Penalty, type Optimizer } from "../engine/optim/optimizers.ts";
import { Tensor } from "../engine/tensor.ts";
import { EarlyStopping, type EarlyStoppingOptions } from "../engine/train/callbacks.ts";
import { TensorDataset } from "../engine/train/dataset.ts";
import type { History } from "../engine/train/fit.ts";
import { kernels, type MlpOptions, MNIST_INPUTS, mnistMlp } from "../models/mlp.ts";
import { type Run, withRun } from "../tracking/run.ts";
import { openStore } from "../tracking/store.ts";
import { loadMnist } from "./data/mnist.ts";
import { learningCurvesSpec } from "./figures.ts";
import { type LabArgs, UsageError } from "./registry.ts";
import { readResumePoint, resumedSettings, type Timing, trainRun } from "./train_run.ts";
import { logUnitResult, unitTags } from "./unit_runs.ts";

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
  dispose(): void;
}

export async function loadMnistSplits(quick: boolean): Promise<MnistSplits> {
  const mnist = await loadMnist();
  const trainSamples = quick ? QUICK_TRAIN : mnist.trainLabels.length;
  const testSamples = quick ? QUICK_TEST : mnist.testLabels.length;
  const train = new TensorDataset([
    {
      data: mnist.trainImages.subarray(0, trainSamples * MNIST_INPUTS),
      shape: [trainSamples, MNIST_INPUTS],
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
  /** Summary heading and figure title. */
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
  /** The run is unit `name` of plan `plan` (labs/unit_runs.ts): tagged so, its result logged. */
  unit?: { plan: string; name: string };
}

/** What a unit's MNIST run leaves for its lab's summary (`unit_result.json`). */
export interface MnistUnitResult {
  test: { accuracy: number; loss: number };
  history: History;
  epochsRun: number;
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
}

/**
 * Trains `spec` in its own MLflow run: per-epoch metrics, test metrics, `learning_curves.png`
 * (+ its Vega-Lite spec), the model summary, history.json, and whatever `finish` adds before the
 * run ends. With --resume it continues from the run's checkpoint (if there is one) in a new run
 * that repeats the earlier epochs' metrics.
 */
export async function trainMnistRun(
  args: LabArgs,
  data: MnistSplits,
  spec: MnistRunSpec,
  finish?: (run: Run, result: MnistRunResult) => Promise<void>,
): Promise<MnistRunResult> {
  const checkpointFile = path.join(args.checkpointDir, spec.slug, "last.safetensors");
  const resume = args.resume ? await readResumePoint(checkpointFile) : null;
  if (resume && resume.settings.quick !== args.quick) {
    const how = resume.settings.quick ? "with" : "without";
    throw new UsageError(
      `--resume: ${checkpointFile} was written ${how} --quick; resume it ${how} --quick`,
    );
  }
  // A resumed run keeps the batches and seed it started with.
  const asked = { batchSize: spec.batchSize, seed: spec.seed };
  const { batchSize, seed } = resume
    ? resumedSettings(
      args,
      checkpointFile,
      {
        batchSize: resume.settings.batchSize as number,
        seed: resume.settings.seed as number,
      },
      asked,
      { batchSize: "batch-size", seed: "seed" },
    )
    : asked;

  const model = mnistMlp({ ...spec.model, seed: seed + 1 });
  const optimizer = spec.optimizer(model.parameters());
  const penalised = spec.l2
    ? (spec.l2.layers === "all" ? kernels(model) : kernels(model).slice(0, 1))
    : [];
  const earlyStopping = spec.earlyStopping ? new EarlyStopping(spec.earlyStopping) : null;
  return await withRun(openStore(), spec.experiment, {
    runName: spec.runName,
    tags: {
      "denograd.lab": spec.slug,
      ...(spec.unit ? unitTags(spec.unit.plan, spec.unit.name) : {}),
    },
  }, async (run) => {
    await run.logParams({ ...spec.params, seed, quick: args.quick });
    const trained = await trainRun(run, {
      model,
      optimizer,
      loss: softmaxCrossEntropy,
      data: data.train,
      validationSplit: VALIDATION_SPLIT,
      metrics: ["accuracy"],
      extraLoss: spec.l2 ? () => l2Penalty(penalised, spec.l2!.lambda) : undefined,
      epochs: spec.epochs,
      batchSize,
      seed,
      out: args.out,
      callbacks: earlyStopping ? [earlyStopping] : [],
      metricNames: spec.curveNames,
      summary: {
        inputShape: [MNIST_INPUTS],
        name: spec.runName ?? spec.slug,
        artifact: "model_summary.txt",
        title: spec.title,
      },
      test: {
        data: { x: data.testX, y: data.testY },
        names: spec.testNames,
      },
      figures: [{
        name: "learning_curves",
        spec: (history) => learningCurvesSpec(spec.title, history),
      }],
      historyArtifact: "history.json",
      checkpoint: {
        file: checkpointFile,
        settings: { batchSize, seed, quick: args.quick },
        resume,
      },
    });
    const result: MnistRunResult = {
      run,
      model,
      optimizer,
      history: trained.history,
      test: { accuracy: trained.test!.accuracy, loss: trained.test!.loss },
      epochsRun: trained.history.epoch.length,
      earlyStopping,
      timing: trained.timing,
    };
    if (finish) await finish(run, result);
    if (spec.unit) {
      const { test, history, epochsRun } = result;
      await logUnitResult(run, { test, history, epochsRun } satisfies MnistUnitResult);
    }
    return result;
  });
}

/** Frees the run's model and optimizer state on the GPU. */
export function disposeRun(result: MnistRunResult): void {
  result.optimizer.dispose();
  result.model.dispose();
}

/** Formats a fraction as a percentage with 2 decimals. */
export function pct(x: number): string {
  return `${(100 * x).toFixed(2)} %`;
}
