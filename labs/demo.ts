// The `demo` lab: an MLP learns two interleaved spirals. It exercises the whole training spine:
// fit with validation and metrics, progress display, MLflow tracking, per-epoch atomic
// training checkpoints and an exact --resume, the model saved as a safetensors artifact.
import * as path from "node:path";
import { Dropout } from "../engine/nn/dropout.ts";
import { Linear } from "../engine/nn/linear.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { softmaxCrossEntropy } from "../engine/ops/loss.ts";
import { Adam } from "../engine/optim/optimizers.ts";
import { Rng } from "../engine/random.ts";
import { Tensor } from "../engine/tensor.ts";
import { withRun } from "../tracking/run.ts";
import { openStore } from "../tracking/store.ts";
import { type LabArgs, type LabUnit, registerLab, UsageError } from "./registry.ts";
import { logModel, readResumePoint, resumedSettings, trainRun } from "./train_run.ts";
import { findUnitRuns, logUnitResult, planKey, unitSeconds, unitTags } from "./unit_runs.ts";

/** Two interleaved spirals, `n` points per class, in a seeded random order. */
export function spirals(n: number, rng: Rng): { x: Float32Array; y: Int32Array } {
  const order = rng.shuffle(Array.from({ length: 2 * n }, (_, k) => k));
  const x = new Float32Array(4 * n);
  const y = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const r = (i / n) * 5 + 0.3;
    const t = 1.75 * (i / n) * 2 * Math.PI;
    for (let c = 0; c < 2; c++) {
      const k = order[2 * i + c];
      const angle = t + c * Math.PI;
      x[2 * k] = r * Math.cos(angle) / 5 + rng.normal(0, 0.01);
      x[2 * k + 1] = r * Math.sin(angle) / 5 + rng.normal(0, 0.01);
      y[k] = c;
    }
  }
  return { x, y };
}

interface DemoConfig {
  pointsPerClass: number;
  hidden: number;
  dropout: number;
  epochs: number;
  batchSize: number;
  lr: number;
  validationSplit: number;
  seed: number;
}

function configOf(args: LabArgs): DemoConfig {
  return {
    pointsPerClass: args.quick ? 200 : 600,
    hidden: args.quick ? 16 : 64,
    dropout: 0.1,
    epochs: args.epochs ?? (args.quick ? 6 : 40),
    batchSize: args.batchSize ?? 32,
    lr: 0.01,
    validationSplit: 0.2,
    seed: args.seed,
  };
}

function buildModel(config: DemoConfig): Sequential {
  const rng = new Rng(config.seed + 1);
  return new Sequential(
    new Linear(2, config.hidden, { activation: "relu", rng }),
    new Linear(config.hidden, config.hidden, { activation: "relu", rng }),
    new Dropout(config.dropout, { rng }),
    new Linear(config.hidden, 2, { rng }),
  );
}

/** The demo's one training, as a unit: what a sweep of it runs (and a requeue resumes). */
const UNIT = "spirals";

const planOf = (args: LabArgs) =>
  planKey("demo", {
    quick: args.quick,
    seed: args.seed,
    epochs: args.epochs ?? "default",
    batch_size: args.batchSize ?? "default",
  });

function units(args: LabArgs): LabUnit[] {
  const config = configOf(args);
  return [{
    name: UNIT,
    trains: `MLP ${config.hidden}-${config.hidden} on ${2 * config.pointsPerClass} spiral ` +
      `points, ${config.epochs} epochs`,
    seconds: 5 + config.epochs * (args.quick ? 0.1 : 0.3),
  }];
}

interface DemoResult {
  test_accuracy: number;
  test_loss: number;
}

async function run(args: LabArgs): Promise<void> {
  const checkpointFile = path.join(args.checkpointDir, "demo", "last.safetensors");
  const resume = args.resume ? await readResumePoint(checkpointFile) : null;
  if (args.resume && !resume) {
    // A unit requeued before its first epoch ended has nothing to resume: it starts over.
    if (args.unit === undefined) {
      throw new Error(`--resume: no checkpoint at ${checkpointFile}; train without --resume first`);
    }
    args.out.write(`--resume: no checkpoint at ${checkpointFile} yet: training from the start\n`);
  }
  // Resuming continues the saved configuration; only --epochs may extend it.
  const saved = resume?.settings.config as DemoConfig | undefined;
  if (resume && !saved) {
    throw new Error(`--resume: ${checkpointFile} is not a demo training checkpoint`);
  }
  const asked = configOf(args);
  if (saved) {
    // Sizes follow --quick: a full-size checkpoint cannot continue as a quick one.
    const savedQuick = saved.pointsPerClass === configOf({ ...args, quick: true }).pointsPerClass;
    if (args.quick && !savedQuick) {
      throw new UsageError(
        `--resume: ${checkpointFile} was written without --quick; resume it without --quick`,
      );
    }
    if (savedQuick && !args.quick) {
      args.out.write("--resume: continuing with the checkpoint's --quick\n");
    }
    resumedSettings(args, checkpointFile, { seed: saved.seed, batchSize: saved.batchSize }, {
      seed: asked.seed,
      batchSize: asked.batchSize,
    }, { seed: "seed", batchSize: "batch-size" });
  }
  const config = saved ? { ...saved, epochs: args.epochs ?? saved.epochs } : asked;

  const data = spirals(config.pointsPerClass, new Rng(config.seed));
  const test = spirals(Math.max(50, config.pointsPerClass / 4), new Rng(config.seed + 1000));
  const tensors = {
    x: Tensor.from(data.x, [data.y.length, 2]).keep(),
    y: Tensor.from(data.y, [data.y.length], "i32").keep(),
    testX: Tensor.from(test.x, [test.y.length, 2]).keep(),
    testY: Tensor.from(test.y, [test.y.length], "i32").keep(),
  };
  const model = buildModel(config);
  const optimizer = new Adam(model.parameters(), { lr: config.lr });
  try {
    await withRun(openStore(), "demo", {
      runName: `demo-seed${config.seed}${resume ? `-resumed${resume.epoch}` : ""}`,
      tags: { "denograd.lab": "demo", ...unitTags(planOf(args), UNIT) },
    }, async (run) => {
      await run.logParams({
        points_per_class: config.pointsPerClass,
        hidden: config.hidden,
        dropout: config.dropout,
        epochs: config.epochs,
        batch_size: config.batchSize,
        learning_rate: config.lr,
        optimizer: "adam",
        validation_split: config.validationSplit,
        seed: config.seed,
        quick: args.quick,
      });
      const { test } = await trainRun(run, {
        model,
        optimizer,
        loss: softmaxCrossEntropy,
        data: { x: tensors.x, y: tensors.y },
        validationSplit: config.validationSplit,
        metrics: ["accuracy"],
        epochs: config.epochs,
        batchSize: config.batchSize,
        seed: config.seed,
        out: args.out,
        summary: { inputShape: [2], name: "demo_mlp", artifact: "model/summary.txt" },
        test: {
          data: { x: tensors.testX, y: tensors.testY },
          names: { loss: "test_loss", accuracy: "test_accuracy" },
          step: config.epochs,
        },
        historyArtifact: "history.json",
        checkpoint: { file: checkpointFile, settings: { config }, resume },
      });
      await logModel(run, "model", model);
      await logUnitResult(run, { test_accuracy: test!.accuracy, test_loss: test!.loss });
    });
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
    optimizer.dispose();
    model.dispose();
  }
}

/** The sweep's closing line: the latest finished run of the unit, read back from the store. */
async function summarize(args: LabArgs) {
  const { found, missing } = await findUnitRuns<DemoResult>(openStore(), "demo", planOf(args), [
    UNIT,
  ]);
  const unit = found.get(UNIT);
  if (unit) {
    const resumed = unit.run.tags["denograd.resumed_from_run"];
    args.out.write(
      `demo: test accuracy ${unit.result.test_accuracy.toFixed(4)}, test loss ` +
        `${unit.result.test_loss.toFixed(4)} (run ${unit.run.info.runId}, ` +
        `${unitSeconds(found).toFixed(1)} s${resumed ? `, resumed from run ${resumed}` : ""})\n`,
    );
  }
  return { status: 0, missing };
}

registerLab({
  name: "demo",
  description: "MLP on two interleaved spirals (exercises fit, tracking, checkpoints, --resume)",
  flags: ["batch-size", "resume"],
  run,
  units,
  summarize,
});
