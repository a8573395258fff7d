// The `tp3` lab (spec labs/TP1-TP4.md §4), "Convolutional Neural Networks and Computer Vision":
//   1  the classic CNN (2,122,186 parameters on CIFAR-10's 32×32×3)
//   2  the mini-ResNet: the handout block with the stem conv, and BJ's BatchNorm variant,
//      evaluated on the test set, with a conclusion on which overfits less
//   3  concepts only in the handout (segmentation maps, bounding-box heads): nothing to run
//   4  neural style transfer (labs/tp3/style.ts), which needs the VGG16 weights (--weights)
// on `--dataset fashion-mnist` (default: Debian's package, works offline) or `cifar10` (the
// official binary release, downloaded once into the data cache, or `--data DIR`). MLflow
// experiment TP3_CNN, one run per model. The closing table puts each result beside the
// students' and the target; the exit status is 1 when an enforced target is missed.
import { type ExerciseResult, exercisesSummary, exitStatus } from "./checks.ts";
import { loadCifar10 } from "./data/cifar10.ts";
import { loadFashionMnist } from "./data/fashion_mnist.ts";
import type { ImageClasses } from "./data/image_classes.ts";
import { type LabArgs, registerLab, UsageError } from "./registry.ts";
import {
  type ClassifierOutcome,
  classifierResult,
  conclusion,
  isModelKey,
  MODEL_KEYS,
  type ModelKey,
  MODELS,
  trainClassifier,
} from "./tp3/classify.ts";
import { DATASET_NAMES, type DatasetName, type Tp3Options } from "./tp3/common.ts";
import { runStyleExercise } from "./tp3/style.ts";

/** The units of `--unit`: the three classifiers and the style transfer. */
const UNITS = [...MODEL_KEYS, "style"] as const;
const STYLE_FLAGS = ["weights", "content", "style", "steps", "image-size"] as const;
const CLASSIFIER_FLAGS = ["epochs", "batch-size", "resume", "dataset", "data"] as const;

const isDatasetName = (name: string): name is DatasetName =>
  (DATASET_NAMES as readonly string[]).includes(name);

function loadDataset(options: Tp3Options): Promise<ImageClasses> {
  return options.dataset === "cifar10"
    ? loadCifar10({ dataDir: options.dataDir, log: (line) => options.out.write(line) })
    : loadFashionMnist(options.dataDir);
}

async function runClassifiers(
  options: Tp3Options,
  exercise: 1 | 2,
  data: ImageClasses,
  earlier: readonly ClassifierOutcome[],
  unit: ModelKey | undefined,
): Promise<{ result: ExerciseResult; outcomes: ClassifierOutcome[] }> {
  const started = performance.now();
  const keys = MODEL_KEYS.filter((key) =>
    MODELS[key].exercise === exercise && (unit === undefined || unit === key)
  );
  const outcomes: ClassifierOutcome[] = [];
  for (const key of keys) outcomes.push(await trainClassifier(options, key, data));
  if (exercise === 2) options.out.write(`\n${conclusion([...earlier, ...outcomes])}\n`);
  const seconds = (performance.now() - started) / 1000;
  return {
    result: classifierResult(exercise, outcomes, data.name, options.quick, seconds),
    outcomes,
  };
}

async function run(args: LabArgs): Promise<number> {
  const dataset = args.dataset ?? "fashion-mnist";
  if (!isDatasetName(dataset)) {
    throw new UsageError(`--dataset ${dataset}: expected one of ${DATASET_NAMES.join(", ")}`);
  }
  if (args.exercise === 3) {
    throw new UsageError(
      "--exercise 3: TP3's exercise 3 (segmentation maps, bounding-box heads) is questions " +
        "only; the U-Net it discusses is `deno task train tp4`",
    );
  }
  const options: Tp3Options = {
    seed: args.seed,
    epochs: args.epochs,
    batchSize: args.batchSize,
    quick: args.quick,
    resume: args.resume,
    checkpointDir: args.checkpointDir,
    out: args.out,
    dataset,
    dataDir: args.dataDir,
    weights: args.weights,
    contentImage: args.contentImage,
    styleImage: args.styleImage,
    steps: args.steps,
    imageSize: args.imageSize,
  };
  const unit = args.unit;
  if (unit !== undefined && !(UNITS as readonly string[]).includes(unit)) {
    throw new UsageError(`--unit ${unit}: tp3's units are ${UNITS.join(", ")}`);
  }
  const exerciseOf = (u: string) => isModelKey(u) ? MODELS[u].exercise : 4;
  if (unit !== undefined && args.exercise !== undefined && exerciseOf(unit) !== args.exercise) {
    throw new UsageError(
      `--unit ${unit} belongs to exercise ${exerciseOf(unit)}, not --exercise ${args.exercise}`,
    );
  }
  // Style transfer runs when asked for, or when its weights are given with no exercise named:
  // without weights it can only stop, and a plain `train tp3` should train the classifiers.
  const exercise = unit !== undefined ? exerciseOf(unit) : args.exercise;
  const wants = (n: number) =>
    exercise === n || (exercise === undefined && (n < 4 || args.weights !== undefined));
  const given = (flag: string) => args.given?.has(flag) ?? false;
  for (
    const [flags, applies, what] of [
      [STYLE_FLAGS, wants(4), "exercise 4 (style transfer)"],
      [CLASSIFIER_FLAGS, wants(1) || wants(2), "exercises 1 and 2 (the classifiers)"],
    ] as const
  ) {
    const stray = flags.find(given);
    if (stray && !applies) throw new UsageError(`--${stray} applies to ${what} only`);
  }
  const started = performance.now();
  const results: ExerciseResult[] = [];
  if (wants(1) || wants(2)) {
    const data = await loadDataset(options);
    const trained: ClassifierOutcome[] = [];
    for (const n of [1, 2] as const) {
      if (!wants(n)) continue;
      const { result, outcomes } = await runClassifiers(
        options,
        n,
        data,
        trained,
        unit !== undefined && isModelKey(unit) ? unit : undefined,
      );
      trained.push(...outcomes);
      results.push(result);
    }
  }
  if (wants(4)) results.push(await runStyleExercise(options));
  else {
    args.out.write(
      "\nExercise 4 (style transfer) runs with the VGG16 weights: --exercise 4 --weights FILE " +
        "(models/vgg16.ts says how to convert Keras' or PyTorch's ImageNet weights).\n",
    );
  }
  args.out.write(exercisesSummary("TP3", results, (performance.now() - started) / 1000));
  return exitStatus(results);
}

registerLab({
  name: "tp3",
  description: "TP3: CNN and mini-ResNet on Fashion-MNIST or CIFAR-10, neural style transfer",
  flags: [
    "batch-size",
    "exercise",
    "resume",
    "dataset",
    "data",
    "weights",
    "content",
    "style",
    "steps",
    "image-size",
    "unit",
  ],
  exercises: 4,
  run,
});
