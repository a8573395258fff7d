// The `tp1` lab (spec §2): TP1's `train_model.py` with its MLflow tracking. MNIST MLP
// 784 → Dense 512 ReLU → Dropout 0.2 → Dense 10 softmax, Adam (Keras defaults), sparse
// categorical cross-entropy, 5 epochs of batch 128, the last 10 % as validation, evaluated on the
// 10,000 tests. One run in the "Default" experiment with a random name; the trained model goes
// to the run as `mnist-model/` and to models/mnist-model.safetensors, where the predict API
// looks for it. A --quick model is a smoke test, so it goes to <checkpoint-dir>/tp1/ instead and
// never replaces a trained one.
import * as path from "node:path";
import { Adam } from "../engine/optim/optimizers.ts";
import { withSoftmax } from "../models/mlp.ts";
import { writeFileAtomic } from "../tracking/files.ts";
import { loadMnistSplits, type MnistUnitResult, pct, trainMnistRun } from "./mnist_run.ts";
import { openStore } from "../tracking/store.ts";
import { type LabArgs, type LabUnit, registerLab, type SummaryOutcome } from "./registry.ts";
import { logModel } from "./train_run.ts";
import { findUnitRuns, planKey } from "./unit_runs.ts";

/** Where `deno task serve` loads the model from by default. */
export const MODEL_PATH = "models/mnist-model.safetensors";

export const TP1 = { epochs: 5, batchSize: 128, dropoutRate: 0.2 };

/** Where this invocation saves the model. */
export function tp1ModelPath(args: Pick<LabArgs, "quick" | "checkpointDir">): string {
  return args.quick ? path.join(args.checkpointDir, "tp1", "mnist-model.safetensors") : MODEL_PATH;
}

/** TP1 trains one model: its only unit (a sweep of it runs one task). */
const UNIT = "mnist_mlp";

const epochsOf = (args: LabArgs) => args.epochs ?? (args.quick ? 1 : TP1.epochs);

const planOf = (args: LabArgs) =>
  planKey("tp1", {
    quick: args.quick,
    seed: args.seed,
    epochs: args.epochs ?? "default",
    batch_size: args.batchSize ?? "default",
  });

function units(args: LabArgs): LabUnit[] {
  const epochs = epochsOf(args);
  return [{
    name: UNIT,
    trains: `MNIST MLP 784-512-10 (Dropout ${TP1.dropoutRate}, Adam), ${epochs} epoch(s)`,
    seconds: args.quick ? 15 : 10 + epochs * 20,
  }];
}

/** The unit's test accuracy and where its model went, from its latest finished run. */
async function summarize(args: LabArgs): Promise<SummaryOutcome> {
  const { found, missing } = await findUnitRuns<MnistUnitResult>(
    openStore(),
    "Default",
    planOf(args),
    [UNIT],
  );
  const unit = found.get(UNIT);
  if (unit) {
    args.out.write(
      `TP1: test accuracy ${pct(unit.result.test.accuracy)}, test loss ` +
        `${unit.result.test.loss.toFixed(4)}; model ${
          path.resolve(tp1ModelPath(args))
        }; MLflow run ` +
        `${unit.run.info.runId} (${unit.run.info.runName})\n`,
    );
  }
  return { status: 0, missing };
}

async function run(args: LabArgs): Promise<void> {
  const epochs = epochsOf(args);
  const batchSize = args.batchSize ?? TP1.batchSize;
  const data = await loadMnistSplits(args.quick);
  const modelPath = tp1ModelPath(args);
  try {
    const result = await trainMnistRun(args, data, {
      slug: "tp1",
      experiment: "Default",
      title: "TP1 — MNIST MLP (Dropout 0.2, Adam)",
      epochs,
      batchSize,
      seed: args.seed,
      model: { dropout: TP1.dropoutRate },
      optimizer: (params) => new Adam(params),
      params: { epochs, batch_size: batchSize, dropout_rate: TP1.dropoutRate },
      curveNames: {
        accuracy: "accuracy",
        loss: "loss",
        val_accuracy: "val_accuracy",
        val_loss: "val_loss",
      },
      testNames: { accuracy: "test_accuracy", loss: "test_loss" },
      unit: { plan: planOf(args), name: UNIT },
    }, async (mlflowRun, r) => {
      const bytes = await logModel(mlflowRun, "mnist-model", withSoftmax(r.model), {
        input_shape: "[784]",
        classes: "10",
        input_scale: "pixels / 255",
        test_accuracy: String(r.test.accuracy),
        mlflow_run_id: mlflowRun.id,
      });
      await Deno.mkdir(path.dirname(modelPath), { recursive: true });
      await writeFileAtomic(modelPath, bytes);
    });
    args.out.write(
      `Test accuracy: ${result.test.accuracy.toFixed(4)} (${pct(result.test.accuracy)}), ` +
        `test loss ${result.test.loss.toFixed(4)}\n` +
        `${result.timing.secondsPerEpoch.toFixed(2)} s/epoch, ` +
        `${result.timing.msPerStep.toFixed(1)} ms/step (validation included)\n` +
        `model saved to ${modelPath}; MLflow run ${result.run.id} (${result.run.name})\n`,
    );
  } finally {
    data.dispose();
  }
}

registerLab({
  name: "tp1",
  description: "TP1: MNIST MLP 784-512-10 with Dropout, Adam, MLflow; saves the model for the API",
  flags: ["batch-size", "resume"],
  run,
  units,
  summarize,
});
