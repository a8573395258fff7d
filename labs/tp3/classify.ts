// TP3 Exercises 1 and 2 (spec labs/TP1-TP4.md §4.2, §4.3): the classic CNN and the mini-ResNet
// (handout block with the stem conv; BJ's BatchNorm variant) trained the Keras way — Adam,
// categorical cross-entropy on one-hot labels, batch 64, 10 epochs, the last 10 % of the
// training images as validation — then evaluated on the test set (the students never evaluated
// the ResNet). One MLflow run per model in experiment TP3_CNN, named after its architecture, with
// params, per-epoch metrics, test metrics, the model and the figures of labs/tp3/figures.ts.
import * as path from "node:path";
import { noGrad } from "../../engine/autograd.ts";
import { Conv2D } from "../../engine/nn/conv.ts";
import type { Module } from "../../engine/nn/module.ts";
import { Sequential } from "../../engine/nn/sequential.ts";
import { softmaxCrossEntropy } from "../../engine/ops/loss.ts";
import { softmax } from "../../engine/ops/reduce.ts";
import { Adam } from "../../engine/optim/optimizers.ts";
import { Rng } from "../../engine/random.ts";
import { Tensor } from "../../engine/tensor.ts";
import { TensorDataset } from "../../engine/train/dataset.ts";
import { predict } from "../../engine/train/fit.ts";
import { classicCnn } from "../../models/cnn.ts";
import { MiniResNet } from "../../models/resnet.ts";
import { withRun } from "../../tracking/run.ts";
import { openStore } from "../../tracking/store.ts";
import { type Check, type ExerciseResult, f4, tupleText } from "../checks.ts";
import { headOf, type ImageClasses, oneHot, pixelsOf } from "../data/image_classes.ts";
import { learningCurvesSpec, renderPng } from "../figures.ts";
import { logModel, readResumePoint, type Timing, trainRun } from "../train_run.ts";
import { logUnitResult, unitTags } from "../unit_runs.ts";
import type { Tp3Options } from "./common.ts";
import {
  confusionMatrix,
  confusionSpec,
  firstLayerPng,
  mistakesPng,
  perClassAccuracy,
  perClassSpec,
  worstMistakes,
} from "./figures.ts";

export const EXPERIMENT = "TP3_CNN";
export const VALIDATION_SPLIT = 0.1;
/** `--quick`: the first QUICK_TRAIN training images (the last 10 % validate), QUICK_TEST tests. */
export const QUICK_TRAIN = 640;
export const QUICK_TEST = 200;

export const MODEL_KEYS = ["cnn", "resnet", "resnet_bn"] as const;
export type ModelKey = typeof MODEL_KEYS[number];

export interface ModelSpec {
  key: ModelKey;
  exercise: 1 | 2;
  title: string;
  /** The architecture, for the run name: `<architecture>_<dataset>`. */
  architecture: string;
  build(shape: readonly [number, number, number], classes: number, rng: Rng): Module;
  firstConv(model: Module): Conv2D;
  /** Keras' parameter counts (trainable + non-trainable) on CIFAR-10 and on 28×28×1 images. */
  params: { cifar10: number; "fashion-mnist": number };
}

export const MODELS: Record<ModelKey, ModelSpec> = {
  cnn: {
    key: "cnn",
    exercise: 1,
    title: "classic CNN",
    architecture: "cnn_conv32-pool-conv64-pool-dense512",
    build: (shape, classes, rng) => classicCnn({ inputShape: shape, classes, rng }),
    firstConv: (model) => (model as Sequential).layers[0] as Conv2D,
    params: { cifar10: 2_122_186, "fashion-mnist": 1_630_090 },
  },
  resnet: {
    key: "resnet",
    exercise: 2,
    title: "mini-ResNet (handout block + stem)",
    architecture: "miniresnet_stem32-res32-res64s2-res64-gap",
    build: (shape, classes, rng) => new MiniResNet({ inChannels: shape[2], classes, rng }),
    firstConv: (model) => (model as MiniResNet).stem,
    // A 1-channel stem has 576 fewer weights than a 3-channel one.
    params: { cifar10: 151_434, "fashion-mnist": 150_858 },
  },
  resnet_bn: {
    key: "resnet_bn",
    exercise: 2,
    title: "mini-ResNet with BatchNorm (BJ)",
    architecture: "miniresnet_bn_stem32-res32-res64s2-res64-gap",
    build: (shape, classes, rng) =>
      new MiniResNet({ inChannels: shape[2], classes, batchNorm: true, rng }),
    firstConv: (model) => (model as MiniResNet).stem,
    params: { cifar10: 153_098, "fashion-mnist": 152_522 },
  },
};

export interface ClassifierConfig {
  model: ModelKey;
  dataset: string;
  trainImages: number;
  testImages: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  quick: boolean;
}

function classifierConfig(
  options: Tp3Options,
  model: ModelKey,
  data: ImageClasses,
): ClassifierConfig {
  const { quick } = options;
  return {
    model,
    dataset: data.name,
    trainImages: quick ? Math.min(QUICK_TRAIN, data.train.labels.length) : data.train.labels.length,
    testImages: quick ? Math.min(QUICK_TEST, data.test.labels.length) : data.test.labels.length,
    epochs: options.epochs ?? (quick ? 1 : 10),
    batchSize: options.batchSize ?? 64,
    learningRate: 1e-3,
    seed: options.seed,
    quick,
  };
}

const runNameOf = (c: Pick<ClassifierConfig, "model" | "dataset">) =>
  `${MODELS[c.model].architecture}_${c.dataset}`;

/** What one trained model logs for the closing table and the conclusion (unit_result.json). */
export interface ClassifierResult {
  model: ModelKey;
  params: number;
  history: Record<string, number[]>;
  test: { loss: number; accuracy: number };
  timing: Timing;
}

export interface ClassifierOutcome extends ClassifierResult {
  spec: ModelSpec;
  runId: string;
}

export const outcomeOf = (runId: string, result: ClassifierResult): ClassifierOutcome => ({
  ...result,
  spec: MODELS[result.model],
  runId,
});

/** Class probabilities of the test images, read back once. */
async function testProbabilities(model: Module, x: Tensor, batchSize: number) {
  const logits = predict(model, x, { batchSize });
  const probs = noGrad(() => softmax(logits, -1));
  const values = Float32Array.from(await probs.data());
  logits.dispose();
  probs.dispose();
  return values;
}

async function firstLayerFigure(
  spec: ModelSpec,
  model: Module,
  data: ImageClasses,
): Promise<Uint8Array> {
  const conv = spec.firstConv(model);
  const pixels = pixelsOf(data);
  const image = data.test.images.subarray(0, pixels);
  const one = Tensor.from(image, [1, ...data.shape]);
  const maps = noGrad(() => conv.forward(one));
  const [kernel, mapValues] = await Promise.all([conv.weight.data(), maps.data()]);
  const mapShape = maps.shape;
  one.dispose();
  maps.dispose();
  return firstLayerPng(
    `${spec.title}: first conv layer's ${conv.filters} filters and their maps for test image 0`,
    {
      image,
      imageShape: data.shape,
      caption: data.classes[data.test.labels[0]],
      kernel: Float32Array.from(kernel),
      kernelShape: conv.weight.shape,
      maps: Float32Array.from(mapValues),
      mapShape,
    },
  );
}

/** Trains one model of MODELS on `data` inside its own tracking run. */
export async function trainClassifier(
  options: Tp3Options,
  key: ModelKey,
  data: ImageClasses,
): Promise<ClassifierOutcome> {
  const spec = MODELS[key];
  const runName = runNameOf({ model: key, dataset: data.name });
  const checkpointFile = path.join(options.checkpointDir, "tp3", runName, "last.safetensors");
  const resume = options.resume ? await readResumePoint(checkpointFile) : null;
  // A requeued sweep task gets --resume even when it died before its first checkpoint.
  if (options.resume && !resume && !options.unit) {
    throw new Error(`--resume: no checkpoint at ${checkpointFile}; train without --resume first`);
  }
  const saved = resume?.settings.config as ClassifierConfig | undefined;
  const config = saved
    ? { ...saved, epochs: options.epochs ?? saved.epochs }
    : classifierConfig(options, key, data);
  const pixels = pixelsOf(data);
  const classes = data.classes.length;
  const train = headOf(data.train, config.trainImages, pixels);
  const test = headOf(data.test, config.testImages, pixels);
  const dataset = new TensorDataset([
    { data: train.images, shape: [config.trainImages, ...data.shape] },
    { data: oneHot(train.labels, classes), shape: [config.trainImages, classes] },
  ]);
  const testX = Tensor.from(test.images, [config.testImages, ...data.shape]).keep();
  const testY = Tensor.from(oneHot(test.labels, classes), [config.testImages, classes]).keep();
  const model = spec.build(data.shape, classes, new Rng(config.seed + 1));
  const optimizer = new Adam(model.parameters(), { lr: config.learningRate });
  const params = model.trainableCount() + model.nonTrainableCount();
  options.out.write(`\n== TP3 Exercise ${spec.exercise} — ${spec.title} on ${data.name} ==\n`);
  try {
    return await withRun(openStore(), EXPERIMENT, {
      runName,
      tags: {
        "denograd.lab": "tp3",
        "denograd.exercise": String(spec.exercise),
        ...unitTags(options.plan, key),
      },
    }, async (run) => {
      await run.logParams({
        model: key,
        architecture: spec.architecture,
        dataset: data.name,
        input_shape: tupleText(data.shape),
        classes,
        optimizer: "adam",
        learning_rate: config.learningRate,
        loss: "categorical_crossentropy",
        batch_size: config.batchSize,
        epochs: config.epochs,
        validation_split: VALIDATION_SPLIT,
        train_images: config.trainImages,
        test_images: config.testImages,
        total_parameters: params,
        trainable_parameters: model.trainableCount(),
        seed: config.seed,
        quick: config.quick,
      });
      const trained = await trainRun(run, {
        model,
        optimizer,
        loss: softmaxCrossEntropy,
        data: dataset,
        validationSplit: VALIDATION_SPLIT,
        metrics: ["accuracy"],
        epochs: config.epochs,
        batchSize: config.batchSize,
        seed: config.seed,
        out: options.out,
        summary: {
          inputShape: [...data.shape],
          name: spec.architecture,
          artifact: "model_summary.txt",
          title: `${spec.title} (${params.toLocaleString("en-US")} parameters)`,
        },
        test: {
          data: { x: testX, y: testY },
          names: { loss: "test_loss", accuracy: "test_accuracy" },
        },
        figures: [{
          name: "learning_curves",
          spec: (h) => learningCurvesSpec(`TP3 ${spec.title} — ${data.name}`, h),
        }],
        historyArtifact: "history.json",
        checkpoint: { file: checkpointFile, settings: { config }, resume },
      });
      const probabilities = await testProbabilities(model, testX, config.batchSize);
      const predicted = Int32Array.from({ length: config.testImages }, (_, i) => {
        const row = probabilities.subarray(i * classes, (i + 1) * classes);
        return row.indexOf(Math.max(...row));
      });
      const counts = confusionMatrix(test.labels, predicted, classes);
      const perClass = perClassAccuracy(counts, classes);
      const figures = {
        confusion_matrix: confusionSpec(
          `${spec.title} on ${data.name}: test confusion matrix`,
          data.classes,
          counts,
        ),
        per_class_accuracy: perClassSpec(
          `${spec.title} on ${data.name}: test accuracy per class`,
          data.classes,
          perClass,
        ),
      };
      for (const [name, figure] of Object.entries(figures)) {
        await run.logDict(`${name}.vl.json`, figure);
        await run.logArtifact(`${name}.png`, await renderPng(figure));
      }
      await run.logDict("confusion_matrix.json", {
        classes: data.classes,
        counts: Array.from(
          { length: classes },
          (_, t) => Array.from(counts.subarray(t * classes, (t + 1) * classes)),
        ),
        per_class_accuracy: Object.fromEntries(data.classes.map((c, i) => [c, perClass[i]])),
      });
      await run.logArtifact(
        "misclassified.png",
        await mistakesPng(
          `${spec.title} on ${data.name}: the most confident test mistakes`,
          test.images,
          data.shape,
          data.classes,
          worstMistakes(test.labels, probabilities, classes, 20),
        ),
      );
      await run.logArtifact(
        "first_layer.png",
        await firstLayerFigure(spec, model, data),
      );
      await logModel(run, "model", model, { mlflow_run_id: run.id });
      const testLogs = trained.test!;
      options.out.write(
        `${runName}: test accuracy ${f4(testLogs.accuracy)}, test loss ${f4(testLogs.loss)}; ` +
          `${trained.timing.secondsPerEpoch.toFixed(1)} s/epoch; MLflow run ${run.id}\n`,
      );
      const result: ClassifierResult = {
        model: key,
        params,
        history: trained.history.history,
        test: { loss: testLogs.loss, accuracy: testLogs.accuracy },
        timing: trained.timing,
      };
      await logUnitResult(run, result);
      return outcomeOf(run.id, result);
    });
  } finally {
    dataset.dispose();
    testX.dispose();
    testY.dispose();
    optimizer.dispose();
    model.dispose();
  }
}

/** Train − validation accuracy at the last epoch, and how far val loss rose above its minimum. */
export function overfitting(history: Record<string, number[]>) {
  const last = (key: string) => history[key]?.at(-1) ?? NaN;
  const valLoss = history.val_loss ?? [];
  const minimum = Math.min(...valLoss);
  return {
    gap: last("accuracy") - last("val_accuracy"),
    valLossRise: last("val_loss") - minimum,
    bestEpoch: valLoss.indexOf(minimum) + 1,
  };
}

/** Which model overfits less, and why, from the curves (printed and logged with the runs). */
export function conclusion(outcomes: readonly ClassifierOutcome[]): string {
  const lines = ["Which model overfits less (from the learning curves):"];
  for (const o of outcomes) {
    const f = overfitting(o.history);
    lines.push(
      `- ${o.spec.title}: ${o.params.toLocaleString("en-US")} parameters; at the last epoch ` +
        `train accuracy ${f4(o.history.accuracy.at(-1)!)} vs validation ` +
        `${f4(o.history.val_accuracy.at(-1)!)} (gap ${f4(f.gap)}); validation loss lowest at ` +
        `epoch ${f.bestEpoch}, then rose by ${f4(f.valLossRise)}; test accuracy ` +
        `${f4(o.test.accuracy)}.`,
    );
  }
  if (outcomes.length > 1) {
    const ranked = [...outcomes].sort((a, b) =>
      overfitting(a.history).gap - overfitting(b.history).gap
    );
    const [least, most] = [ranked[0], ranked.at(-1)!];
    lines.push(
      `${least.spec.title} overfits least (smallest train−validation gap); ${most.spec.title} ` +
        "the most.",
    );
    if (least.spec.key !== "cnn" && outcomes.some((o) => o.spec.key === "cnn")) {
      lines.push(
        "Why: the CNN spends almost all of its parameters on a Dense(512) over the flattened " +
          "feature map, which can memorise the training images; the mini-ResNet has ten times " +
          "fewer, shares them across positions in convolutions, and pools globally before its " +
          "only Dense layer, so it has little capacity to memorise — while its skip " +
          "connections keep the deeper stack easy to optimise.",
      );
    }
  }
  return lines.join("\n");
}

/** The closing-table rows of one model on `dataset`. */
export function classifierChecks(o: ClassifierOutcome, dataset: string, quick: boolean): Check[] {
  const h = o.history;
  const f = overfitting(h);
  const cifar = dataset === "cifar10";
  const name = (what: string) => `${o.spec.title}: ${what}`;
  const acc = f4(o.test.accuracy);
  const checks: Check[] = [];
  const expected = o.spec.params[dataset as keyof ModelSpec["params"]];
  checks.push({
    name: name("parameters"),
    value: o.params.toLocaleString("en-US"),
    students: cifar
      ? { cnn: "KR 2,122,186", resnet: "UD/KR 151,434", resnet_bn: "BJ 153,098" }[o.spec.key]
      : "—",
    target: `= ${expected.toLocaleString("en-US")}`,
    pass: o.params === expected,
  });
  if (o.spec.key === "cnn") {
    checks.push(
      {
        name: name("test accuracy"),
        value: acc,
        students: "CIFAR-10: BJ 0.7116, UD 0.6974, KR 0.7166",
        target: cifar ? "≥ 0.69 (spec ≈ 0.70–0.72)" : "≥ 0.91",
        pass: o.test.accuracy >= (cifar ? 0.69 : 0.91),
        informational: quick,
      },
      {
        name: name("overfitting visible (train − val acc, val loss rise)"),
        value: `${f4(f.gap)}, +${f4(f.valLossRise)} after epoch ${f.bestEpoch}`,
        students: "KR: 0.9546 − 0.7242; val loss min 0.81 at epoch 4 → 1.31",
        target: "gap ≥ 0.02 and val loss rising",
        pass: f.gap >= 0.02 && f.valLossRise > 0,
        informational: quick,
      },
    );
    if (cifar) {
      checks.push({
        name: name("train accuracy, last epoch"),
        value: f4(h.accuracy.at(-1)!),
        students: "BJ 0.9651, UD 0.9657, KR 0.9546",
        target: "≥ 0.93 (spec ≈ 0.96)",
        pass: h.accuracy.at(-1)! >= 0.93,
        informational: quick,
      });
    }
  } else if (o.spec.key === "resnet") {
    checks.push({
      name: name("test accuracy"),
      value: acc,
      students: "never evaluated (KR CIFAR-10 val 0.7506)",
      target: cifar ? "val ≥ 0.72 (spec ≈ 0.75)" : "≥ 0.90",
      pass: cifar ? h.val_accuracy.at(-1)! >= 0.72 : o.test.accuracy >= 0.90,
      informational: quick,
    });
    if (cifar) {
      checks.push({
        name: name("train ≈ val (|gap|)"),
        value: f4(Math.abs(f.gap)),
        students: "KR 0.7580 vs 0.7506",
        target: "≤ 0.05",
        pass: Math.abs(f.gap) <= 0.05,
        informational: quick,
      });
    }
  } else {
    checks.push({
      name: name("test accuracy"),
      value: acc,
      students: "BJ 0.5171 (CIFAR-10, unexplained)",
      target: "reported",
      pass: true,
      informational: true,
    });
  }
  return checks;
}

export function classifierResult(
  exercise: 1 | 2,
  outcomes: readonly ClassifierOutcome[],
  dataset: string,
  quick: boolean,
  seconds: number,
): ExerciseResult {
  return {
    exercise,
    title: outcomes.map((o) => `${o.spec.title} ${o.timing.secondsPerEpoch.toFixed(1)} s/epoch`)
      .join("; "),
    checks: outcomes.flatMap((o) => classifierChecks(o, dataset, quick)),
    runs: outcomes.map((o) => `${runNameOf({ model: o.spec.key, dataset })} (${o.runId})`),
    seconds,
  };
}
