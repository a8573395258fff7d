// The `tp3` lab (spec labs/TP1-TP4.md §4), "Convolutional Neural Networks and Computer Vision":
//   1  the classic CNN (2,122,186 parameters on CIFAR-10's 32×32×3)
//   2  the mini-ResNet: the handout block with the stem conv, and BJ's BatchNorm variant,
//      evaluated on the test set, with a conclusion on which overfits less
//   3  concepts only in the handout (segmentation maps, bounding-box heads): nothing to run
//   4  neural style transfer (labs/tp3/style.ts), which needs the VGG16 weights (--weights)
// on `--dataset fashion-mnist` (default: Debian's package, works offline) or `cifar10` (the
// official binary release, downloaded once into the data cache, or `--data DIR`). Each model and
// the style transfer is a unit (`--plan`, `--unit`); the closing table, built from their runs in
// the store (after the whole lab, or alone with `--summarize`), puts each result beside the
// students' and the target; the exit status is 1 when an enforced target is missed.
import { openStore } from "../tracking/store.ts";
import { type ExerciseResult, exercisesSummary, exitStatus } from "./checks.ts";
import { loadCifar10 } from "./data/cifar10.ts";
import { loadFashionMnist } from "./data/fashion_mnist.ts";
import type { ImageClasses } from "./data/image_classes.ts";
import {
  type LabArgs,
  type LabUnit,
  registerLab,
  type SummaryOutcome,
  UsageError,
} from "./registry.ts";
import {
  type ClassifierResult,
  classifierResult,
  conclusion,
  EXPERIMENT,
  MODEL_KEYS,
  MODELS,
  outcomeOf,
  QUICK_TRAIN,
  trainClassifier,
} from "./tp3/classify.ts";
import { DATASET_NAMES, type DatasetName, type Tp3Options } from "./tp3/common.ts";
import { runStyleExercise, STYLE_EXPERIMENT, STYLE_UNIT, type StyleResult } from "./tp3/style.ts";
import { findUnitRuns, planKey, unitSeconds } from "./unit_runs.ts";

const STYLE_FLAGS = ["weights", "content", "style", "steps", "image-size"] as const;
const CLASSIFIER_FLAGS = ["epochs", "batch-size", "resume", "dataset", "data"] as const;

const isDatasetName = (name: string): name is DatasetName =>
  (DATASET_NAMES as readonly string[]).includes(name);

function optionsOf(args: LabArgs): Tp3Options {
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
  return {
    seed: args.seed,
    epochs: args.epochs,
    batchSize: args.batchSize,
    quick: args.quick,
    resume: args.resume,
    unit: args.unit !== undefined,
    // Everything that changes what the units train; --exercise and --unit only pick among them.
    plan: planKey("tp3", {
      quick: args.quick,
      seed: args.seed,
      dataset,
      epochs: args.epochs ?? "default",
      batch_size: args.batchSize ?? "default",
      steps: args.steps ?? "default",
      image_size: args.imageSize ?? "default",
    }),
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
}

interface Tp3Unit extends LabUnit {
  exercise: 1 | 2 | 4;
  train(): Promise<unknown>;
}

/**
 * The three classifiers and the style transfer, as --exercise selects them. The style transfer
 * is in the plan when asked for (`--exercise 4`, `--unit style`) or when its weights are given:
 * without weights it can only stop, and a plain `train tp3` trains the classifiers.
 */
function tp3Units(args: LabArgs): Tp3Unit[] {
  const options = optionsOf(args);
  const withStyle = args.weights !== undefined || args.exercise === 4 || args.unit === STYLE_UNIT;
  // Loaded once for all the classifiers a process trains.
  let data: Promise<ImageClasses> | undefined;
  const dataset = () =>
    data ??= options.dataset === "cifar10"
      ? loadCifar10({ dataDir: options.dataDir, log: (line) => options.out.write(line) })
      : loadFashionMnist(options.dataDir);
  const images = options.quick ? QUICK_TRAIN : options.dataset === "cifar10" ? 50_000 : 60_000;
  const epochs = options.epochs ?? (options.quick ? 1 : 10);
  // Seconds per epoch of 1,000 images here (lavapipe, 2 cores), measured.
  const perThousand = { cnn: 4.5, resnet: 32, resnet_bn: 48 };
  const units: Tp3Unit[] = MODEL_KEYS.map((key) => ({
    exercise: MODELS[key].exercise,
    name: key,
    trains: `${MODELS[key].title} on ${options.dataset}, ${epochs} epochs`,
    seconds: Math.round(10 + (epochs * images * perThousand[key]) / 1000),
    train: async () => trainClassifier(options, key, await dataset()),
  }));
  if (withStyle) {
    units.push({
      exercise: 4,
      name: STYLE_UNIT,
      trains: "neural style transfer (VGG16 features, Adam on the pixels)",
      seconds: options.quick ? 30 : 1800,
      train: () => runStyleExercise(options),
    });
  }
  return units.filter((u) => args.exercise === undefined || u.exercise === args.exercise);
}

/** Refuses the flags of one exercise when only the other runs. */
function checkFlags(args: LabArgs, units: readonly Tp3Unit[]): void {
  const selected = args.unit === undefined ? units : units.filter((u) => u.name === args.unit);
  const given = (flag: string) => args.given?.has(flag) ?? false;
  for (
    const [flags, applies, what] of [
      [STYLE_FLAGS, selected.some((u) => u.exercise === 4), "exercise 4 (style transfer)"],
      [
        CLASSIFIER_FLAGS,
        selected.some((u) => u.exercise < 4),
        "exercises 1 and 2 (the classifiers)",
      ],
    ] as const
  ) {
    const stray = flags.find(given);
    if (stray && !applies) throw new UsageError(`--${stray} applies to ${what} only`);
  }
}

/**
 * Each selected exercise's result from its units' runs in the store, printed as the closing
 * table with the overfitting conclusion; an exercise with a unit missing is left out and the
 * unit named. `seconds`: the whole lab's wall time when it just trained.
 */
async function summarize(args: LabArgs, seconds?: number): Promise<SummaryOutcome> {
  const options = optionsOf(args);
  const units = tp3Units(args);
  const store = openStore();
  const results: ExerciseResult[] = [];
  const missing: string[] = [];
  const classifiers = units.filter((u) => u.exercise < 4).map((u) => u.name);
  const found = await findUnitRuns<ClassifierResult>(store, EXPERIMENT, options.plan, classifiers);
  missing.push(...found.missing);
  const outcomes = [...found.found.values()].map(({ run, result }) =>
    outcomeOf(run.info.runId, result)
  );
  for (const exercise of [1, 2] as const) {
    const mine = outcomes.filter((o) => o.spec.exercise === exercise);
    const wanted = units.filter((u) => u.exercise === exercise).map((u) => u.name);
    if (wanted.length === 0) continue;
    if (mine.length < wanted.length) {
      const absent = wanted.filter((name) => !mine.some((o) => o.spec.key === name));
      args.out.write(`\nExercise ${exercise}: not summarised, no finished run of ${absent}\n`);
      continue;
    }
    const parts = new Map([...found.found].filter(([name]) => wanted.includes(name)));
    results.push(
      classifierResult(exercise, mine, options.dataset, options.quick, unitSeconds(parts)),
    );
  }
  if (outcomes.some((o) => o.spec.exercise === 2)) {
    args.out.write(`\n${conclusion(outcomes)}\n`);
  }
  if (units.some((u) => u.name === STYLE_UNIT)) {
    const style = await findUnitRuns<StyleResult>(store, STYLE_EXPERIMENT, options.plan, [
      STYLE_UNIT,
    ]);
    missing.push(...style.missing);
    const hit = style.found.get(STYLE_UNIT);
    if (hit) {
      results.push({
        exercise: 4,
        ...hit.result,
        runs: [`${hit.run.info.runName} (${hit.run.info.runId})`],
        seconds: unitSeconds(style.found),
      });
    } else args.out.write(`\nExercise 4: not summarised, no finished run of ${STYLE_UNIT}\n`);
  } else if (args.exercise === undefined) {
    args.out.write(
      "\nExercise 4 (style transfer) runs with the VGG16 weights: --exercise 4 --weights FILE " +
        "(models/vgg16.ts says how to convert Keras' or PyTorch's ImageNet weights).\n",
    );
  }
  const total = seconds ?? results.reduce((t, r) => t + r.seconds, 0);
  args.out.write(exercisesSummary("TP3", results, total));
  return { status: exitStatus(results), missing };
}

async function run(args: LabArgs): Promise<number> {
  const started = performance.now();
  const units = tp3Units(args);
  checkFlags(args, units);
  for (const unit of units) {
    if (args.unit === undefined || unit.name === args.unit) await unit.train();
  }
  if (args.unit !== undefined) return 0;
  return (await summarize(args, (performance.now() - started) / 1000)).status;
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
  ],
  exercises: 4,
  run,
  units: tp3Units,
  summarize: (args) => summarize(args),
});
