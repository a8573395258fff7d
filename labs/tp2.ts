// The `tp2` lab (spec §3), "Improving Deep Neural Networks", on TP1's MNIST MLP. Every run has its
// own MLflow run, learning curves (PNG + Vega-Lite spec) and a written conclusion (tag
// `conclusion` and conclusion.txt). `--exercise N` runs one exercise:
//   1  bias/variance: 15 epochs with the last 6,000 training images as dev set, automatic verdict
//   2  L2(0.001) on the hidden kernel + Dropout 0.5 (λ·Σw² included in the reported loss)
//   3  optimizer loop: SGD (lr 0.01, momentum 0.9), RMSprop, Adam; 10 epochs each, fresh model
//      and optimizer per run, runs Optimizer_Comparison_<name>
//   4  Dense → BatchNorm → Dropout 0.2, 10 epochs
//   5  TP0's variant: L2(0.001) on both kernels + BatchNorm + Dropout 0.3 + EarlyStopping(val_loss,
//      patience 5, restore best weights), up to 20 epochs
// Per-epoch metrics follow BJ's scripts (training_/validation_{accuracy,loss}, step = epoch index;
// final_test_accuracy, final_test_loss). `--epochs` overrides every exercise's epoch count.
import { Adam } from "../engine/optim/optimizers.ts";
import { openStore } from "../tracking/store.ts";
import {
  disposeRun,
  loadMnistSplits,
  type MnistSplits,
  type MnistUnitResult,
  pct,
  trainMnistRun,
} from "./mnist_run.ts";
import { type LabArgs, type LabUnit, registerLab, type SummaryOutcome } from "./registry.ts";
import { findUnitRuns } from "./unit_runs.ts";
import {
  BAYES_ERROR,
  bestValLossEpoch,
  BIAS_THRESHOLD,
  biasVarianceVerdict,
  conclude,
  type Earlier,
  epochReaching,
  last,
  planOf,
  specFor,
  VARIANCE_THRESHOLD,
} from "./tp2/common.ts";
import {
  compareOptimizers,
  OPTIMIZER_EXPERIMENT,
  optimizerRun,
  OPTIMIZERS,
  trainOptimizer,
} from "./tp2/optimizers.ts";

async function exercise1(args: LabArgs, data: MnistSplits, earlier: Earlier) {
  const spec = specFor(args, 15, {
    slug: "tp2/ex1-bias-variance",
    experiment: "Bias Variance Analysis",
    runName: "Base_Model_Bias_Variance",
    title: "TP2 Ex1 — bias/variance (TP1 model, dev = last 6,000)",
    model: { dropout: 0.2 },
    optimizer: (p) => new Adam(p),
    params: {},
  });
  spec.params = {
    epochs: spec.epochs,
    batch_size: spec.batchSize,
    dropout_rate: 0.2,
    optimizer: "adam",
    dev_set: "x_train[54000:]",
    bayes_error: BAYES_ERROR,
    bias_threshold: BIAS_THRESHOLD,
    variance_threshold: VARIANCE_THRESHOLD,
  };
  const result = await trainMnistRun(args, data, spec, async (run, r) => {
    const train = last(r.history, "accuracy");
    const val = last(r.history, "val_accuracy");
    const v = biasVarianceVerdict(train, val);
    earlier.baseline = { history: r.history, variance: v.variance };
    await run.logMetrics({
      final_train_accuracy: train,
      final_val_accuracy: val,
      avoidable_bias: v.avoidableBias,
      variance: v.variance,
    });
    await run.setTag("verdict", v.verdict);
    const best = bestValLossEpoch(r.history);
    await conclude(
      run,
      `${v.verdict.toUpperCase()}: after ${r.epochsRun} epochs training accuracy ${pct(train)} ` +
        `vs dev ${pct(val)}. Avoidable bias (training error − ${pct(BAYES_ERROR)} human-level ` +
        `error) = ${(100 * v.avoidableBias).toFixed(2)} pt (threshold ` +
        `${100 * BIAS_THRESHOLD} pt); variance (dev error − training error) = ` +
        `${(100 * v.variance).toFixed(2)} pt (threshold ${100 * VARIANCE_THRESHOLD} pt). ` +
        `Dev loss is lowest at epoch ${best} (${
          Math.min(...r.history.history.val_loss).toFixed(4)
        }) and ends at ${last(r.history, "val_loss").toFixed(4)} while training loss keeps ` +
        `falling to ${last(r.history, "loss").toFixed(4)}` +
        (best < r.epochsRun ? ": the model is overfitting." : ".") +
        (v.verdict === "high variance"
          ? " Remedies: regularisation (L2, more dropout), more data, early stopping."
          : ""),
      args.out,
    );
  });
  disposeRun(result);
}

async function exercise2(args: LabArgs, data: MnistSplits, earlier: Earlier) {
  const lambda = 0.001;
  const dropout = 0.5;
  const spec = specFor(args, 15, {
    slug: "tp2/ex2-l2-dropout",
    experiment: "Regularization",
    runName: "Model_With_L2_Dropout",
    title: `TP2 Ex2 — L2(${lambda}) on the hidden kernel + Dropout ${dropout}`,
    model: { dropout },
    optimizer: (p) => new Adam(p),
    l2: { lambda, layers: "hidden" },
    params: {},
  });
  spec.params = {
    epochs: spec.epochs,
    batch_size: spec.batchSize,
    dropout_rate: dropout,
    l2_lambda: lambda,
    l2_layers: "hidden Dense kernel",
    regularization: "L2+Dropout",
    optimizer: "adam",
  };
  const result = await trainMnistRun(args, data, spec, async (run, r) => {
    const train = last(r.history, "accuracy");
    const val = last(r.history, "val_accuracy");
    const gap = train - val;
    await run.logMetrics({ final_train_accuracy: train, final_val_accuracy: val });
    const baseline = earlier.baseline
      ? ` Without regularisation (Ex1) the gap was ${
        (100 * earlier.baseline.variance).toFixed(2)
      }` +
        ` pt and the dev accuracy ${pct(last(earlier.baseline.history, "val_accuracy"))}.`
      : "";
    await conclude(
      run,
      `${val >= train ? "Validation ≥ training" : "Validation < training"}: dev accuracy ` +
        `${pct(val)} vs training ${pct(train)} (gap ${(100 * gap).toFixed(2)} pt).${baseline} ` +
        (gap <= VARIANCE_THRESHOLD
          ? `No variance left (gap ≤ ${100 * VARIANCE_THRESHOLD} pt): `
          : `Variance remains (gap > ${100 * VARIANCE_THRESHOLD} pt): `) +
        `dropout ${dropout} is active only while training (the running training accuracy is ` +
        `measured on a handicapped network, which is why dev can beat it) and L2 keeps the ` +
        `weights small. The reported losses include the penalty λ·Σw²: training loss ` +
        `${last(r.history, "loss").toFixed(4)}, dev loss ${
          last(r.history, "val_loss").toFixed(4)
        }.`,
      args.out,
    );
  });
  disposeRun(result);
}

async function exercise4(args: LabArgs, data: MnistSplits) {
  const spec = specFor(args, 10, {
    slug: "tp2/ex4-batchnorm",
    experiment: "Batch Normalization Test",
    runName: "Model_With_BatchNorm",
    title: "TP2 Ex4 — Dense → BatchNorm → Dropout 0.2",
    model: { dropout: 0.2, batchNorm: true },
    optimizer: (p) => new Adam(p),
    params: {},
  });
  spec.params = {
    epochs: spec.epochs,
    batch_size: spec.batchSize,
    batch_normalization: "True",
    dropout_rate: 0.2,
    optimizer: "adam",
  };
  const result = await trainMnistRun(args, data, spec, async (run, r) => {
    const h = r.history.history.val_accuracy;
    const reach = epochReaching(r.history, 0.976);
    await conclude(
      run,
      `With BatchNorm the dev accuracy is ${pct(h[0])} after epoch 1` +
        (h.length > 1 ? ` and ${pct(h[1])} after epoch 2` : "") +
        `; it reaches 97.6 % ${reach ? `at epoch ${reach}` : "not at all"} (BJ: epoch 2 with ` +
        `BN vs epoch 4 without). Test accuracy ${pct(r.test.accuracy)} (loss ` +
        `${r.test.loss.toFixed(4)}). Normalising the hidden activations per batch keeps the ` +
        `next layer's inputs on a stable scale, which speeds up early training.`,
      args.out,
    );
  });
  disposeRun(result);
}

async function exercise5(args: LabArgs, data: MnistSplits) {
  const lambda = 0.001;
  const patience = 5;
  const spec = specFor(args, 20, {
    slug: "tp2/ex5-l2-bn-es",
    experiment: "TP2_Improving_Deep_Models",
    runName: "Run_Improved_Model_L2_BN_ES",
    title: "TP2 variant — L2 + BatchNorm + Dropout 0.3 + EarlyStopping",
    model: { dropout: 0.3, batchNorm: true },
    optimizer: (p) => new Adam(p),
    l2: { lambda, layers: "all" },
    earlyStopping: { monitor: "val_loss", patience, restoreBestWeights: true },
    params: {},
  });
  spec.params = {
    epochs: spec.epochs,
    batch_size: spec.batchSize,
    optimizer: "adam",
    dropout_rate: 0.3,
    num_classes: 10,
    input_shape: 784,
    l2_lambda: lambda,
    use_batch_norm: true,
    early_stopping_patience: patience,
    early_stopping_monitor: "val_loss",
    regularization_applied: true,
  };
  const result = await trainMnistRun(args, data, spec, async (run, r) => {
    const h = r.history.history;
    const es = r.earlyStopping!;
    const stopped = es.stoppedEpoch > 0;
    await run.logParam("actual_epochs", r.epochsRun);
    await run.logMetrics({
      final_val_accuracy: h.val_accuracy.at(-1)!,
      final_val_loss: h.val_loss.at(-1)!,
      best_val_accuracy: Math.max(...h.val_accuracy),
      best_val_loss: Math.min(...h.val_loss),
      actual_epochs: r.epochsRun,
    });
    await conclude(
      run,
      `${
        stopped
          ? `Early stopping ended training after epoch ${es.stoppedEpoch + 1}`
          : `Early stopping did not trigger in ${r.epochsRun} epochs`
      }; the weights of epoch ${es.bestEpoch + 1} (best dev loss ` +
        `${Math.min(...h.val_loss).toFixed(4)}) were restored. Test accuracy ` +
        `${pct(r.test.accuracy)}, test loss ${r.test.loss.toFixed(4)} (the L2 penalty on both ` +
        `kernels is included in the loss). Final training accuracy ` +
        `${pct(h.accuracy.at(-1)!)} vs dev ${pct(h.val_accuracy.at(-1)!)}: with L2, BatchNorm ` +
        `and Dropout 0.3 the gap is ${
          (100 * (h.accuracy.at(-1)! - h.val_accuracy.at(-1)!)).toFixed(2)
        } pt.`,
      args.out,
    );
  });
  disposeRun(result);
}

interface Tp2Unit extends LabUnit {
  exercise: number;
  experiment: string;
  train(data: MnistSplits, earlier: Earlier): Promise<void>;
}

/** Every run of the lab (those --exercise selects), in the order the whole lab trains them. */
function tp2Units(args: LabArgs): Tp2Unit[] {
  const epochs = (n: number) => args.epochs ?? (args.quick ? 1 : n);
  const unit = (
    exercise: number,
    experiment: string,
    name: string,
    trains: string,
    defaultEpochs: number,
    train: Tp2Unit["train"],
  ): Tp2Unit => ({
    exercise,
    experiment,
    name,
    trains: `${trains}, ${epochs(defaultEpochs)} epoch(s)`,
    seconds: 10 + epochs(defaultEpochs) * (args.quick ? 1 : 8),
    train,
  });
  const units = [
    unit(
      1,
      "Bias Variance Analysis",
      "Base_Model_Bias_Variance",
      "TP1's MLP",
      15,
      (d, e) => exercise1(args, d, e),
    ),
    unit(
      2,
      "Regularization",
      "Model_With_L2_Dropout",
      "MLP + L2 + Dropout 0.5",
      15,
      (d, e) => exercise2(args, d, e),
    ),
    ...OPTIMIZERS.map((entry) =>
      unit(
        3,
        OPTIMIZER_EXPERIMENT,
        optimizerRun(entry),
        `MLP with ${entry.name}`,
        10,
        (d) => trainOptimizer(args, d, entry),
      )
    ),
    unit(
      4,
      "Batch Normalization Test",
      "Model_With_BatchNorm",
      "MLP + BatchNorm",
      10,
      (d) => exercise4(args, d),
    ),
    unit(
      5,
      "TP2_Improving_Deep_Models",
      "Run_Improved_Model_L2_BN_ES",
      "L2 + BN + ES",
      20,
      (d) => exercise5(args, d),
    ),
  ];
  return units.filter((u) => args.exercise === undefined || u.exercise === args.exercise);
}

/**
 * From the units' runs in the store: exercise 3's comparison, then each run's test accuracy.
 * An exercise with a unit missing is left out and the unit named.
 */
async function summarize(args: LabArgs): Promise<SummaryOutcome> {
  const store = openStore();
  const units = tp2Units(args);
  const lines = ["\n== TP2 summary =="];
  const missing: string[] = [];
  for (let exercise = 1; exercise <= 5; exercise++) {
    const own = units.filter((u) => u.exercise === exercise);
    if (own.length === 0) continue;
    const runs = await findUnitRuns<MnistUnitResult>(
      store,
      own[0].experiment,
      planOf(args),
      own.map((u) => u.name),
    );
    if (runs.missing.length > 0) {
      missing.push(...runs.missing);
      lines.push(`Exercise ${exercise}: no finished run of ${runs.missing.join(", ")}`);
      continue;
    }
    if (exercise === 3) await compareOptimizers(store, args, runs.found);
    for (const { run, result } of runs.found.values()) {
      lines.push(
        `Exercise ${exercise} — ${run.info.runName}: test accuracy ${pct(result.test.accuracy)} ` +
          `after ${result.epochsRun} epoch(s) (MLflow run ${run.info.runId})`,
      );
    }
  }
  args.out.write(`${lines.join("\n")}\n`);
  return { status: 0, missing };
}

async function run(args: LabArgs): Promise<number> {
  const units = tp2Units(args).filter((u) => args.unit === undefined || u.name === args.unit);
  const data = await loadMnistSplits(args.quick);
  // Within one process, exercise 2's conclusion cites exercise 1's numbers.
  const earlier: Earlier = {};
  try {
    for (const unit of units) await unit.train(data, earlier);
  } finally {
    data.dispose();
  }
  if (args.unit !== undefined) return 0;
  return (await summarize(args)).status;
}

registerLab({
  name: "tp2",
  description: "TP2: bias/variance, L2 + Dropout, optimizer comparison, BatchNorm, early stopping",
  flags: ["batch-size", "exercise", "resume"],
  exercises: 5,
  run,
  units: tp2Units,
  summarize,
});
