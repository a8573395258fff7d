// The `demo` lab: an MLP learns two interleaved spirals. It exercises the whole training spine:
// fit with validation and metrics, progress display, MLflow tracking, per-epoch atomic
// training checkpoints and an exact --resume, the model saved as a safetensors artifact.
import * as path from "node:path";
import { Dropout } from "../engine/nn/dropout.ts";
import { Linear } from "../engine/nn/linear.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { summary } from "../engine/nn/summary.ts";
import { softmaxCrossEntropy } from "../engine/ops/loss.ts";
import { Adam } from "../engine/optim/optimizers.ts";
import { Rng } from "../engine/random.ts";
import { Tensor } from "../engine/tensor.ts";
import {
  loadTrainingCheckpoint,
  saveModel,
  saveTrainingCheckpoint,
} from "../engine/io/checkpoint.ts";
import { modelConfig } from "../engine/io/config.ts";
import { decodeSafetensors } from "../engine/io/safetensors.ts";
import type { Callback, Logs } from "../engine/train/callbacks.ts";
import { evaluate, fit, type History } from "../engine/train/fit.ts";
import { ProgressBar } from "../engine/train/progress.ts";
import { writeFileAtomic } from "../tracking/files.ts";
import { withRun } from "../tracking/run.ts";
import { openStore } from "../tracking/store.ts";
import { type LabArgs, registerLab } from "./registry.ts";

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

/** What a checkpoint carries besides weights and optimizer state. */
interface CheckpointExtra {
  config: DemoConfig;
  history: History;
  /** The MLflow run that wrote the checkpoint. */
  runId: string;
}

/** Writes the whole training state after every epoch, atomically. */
function checkpointEvery(
  file: string,
  model: Sequential,
  optimizer: Adam,
  config: DemoConfig,
  history: History,
  runId: string,
): Callback {
  return {
    async onEpochEnd(epoch: number, logs: Logs) {
      history.epoch.push(epoch);
      for (const [k, v] of Object.entries(logs)) (history.history[k] ??= []).push(v);
      const extra: CheckpointExtra = { config, history, runId };
      const bytes = await saveTrainingCheckpoint({
        model,
        optimizer,
        epoch: epoch + 1,
        step: optimizer.iterations,
        rng: new Rng(config.seed),
        extra: JSON.parse(JSON.stringify(extra)),
      });
      await writeFileAtomic(file, bytes);
    },
  };
}

async function run(args: LabArgs): Promise<void> {
  let config = configOf(args);
  const checkpointFile = path.join(args.checkpointDir, "demo", "last.safetensors");
  let resumed: { history: History; runId: string; bytes: Uint8Array } | null = null;
  if (args.resume) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(checkpointFile);
    } catch {
      throw new Error(`--resume: no checkpoint at ${checkpointFile}; train without --resume first`);
    }
    // Resuming continues the saved configuration; only --epochs may extend it.
    const { metadata } = decodeSafetensors(bytes);
    const extra = JSON.parse(metadata.extra ?? "null") as CheckpointExtra | null;
    if (!extra?.config || !extra.history) {
      throw new Error(`--resume: ${checkpointFile} is not a demo training checkpoint`);
    }
    config = { ...extra.config, epochs: args.epochs ?? extra.config.epochs };
    resumed = { history: extra.history, runId: extra.runId, bytes };
  }

  const data = spirals(config.pointsPerClass, new Rng(config.seed));
  const test = spirals(Math.max(50, config.pointsPerClass / 4), new Rng(config.seed + 1000));
  const x = Tensor.from(data.x, [data.y.length, 2]).keep();
  const y = Tensor.from(data.y, [data.y.length], "i32").keep();
  const model = buildModel(config);
  const optimizer = new Adam(model.parameters(), { lr: config.lr });
  let initialEpoch = 0;
  const history: History = { epoch: [], history: {} };
  if (resumed) {
    const restored = loadTrainingCheckpoint(resumed.bytes, { model, optimizer });
    initialEpoch = restored.epoch;
    Object.assign(history, resumed.history);
  }

  const table = summary(model, [2], { name: "demo_mlp" }).text;
  args.out.write(`${table}\n`);
  const store = openStore();
  await withRun(store, "demo", {
    runName: `demo-seed${config.seed}${resumed ? `-resumed${initialEpoch}` : ""}`,
    tags: {
      "denograd.lab": "demo",
      ...(resumed
        ? {
          "denograd.resumed_from_run": resumed.runId,
          "denograd.resumed_from_epoch": String(initialEpoch),
        }
        : {}),
    },
  }, async (mlflowRun) => {
    await mlflowRun.logParams({
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
    // A resumed run repeats the earlier epochs' metrics so its curves are complete.
    for (const [i, epoch] of history.epoch.entries()) {
      const logs: Logs = {};
      for (const [k, v] of Object.entries(history.history)) logs[k] = v[i];
      await mlflowRun.logMetrics(logs, epoch);
    }
    const logToMlflow: Callback = {
      onEpochEnd: (epoch, logs) => mlflowRun.logMetrics({ ...logs }, epoch),
    };
    if (initialEpoch >= config.epochs) {
      args.out.write(`checkpoint is at epoch ${initialEpoch}: nothing left to train\n`);
    }
    await fit(model, optimizer, { x, y }, {
      loss: softmaxCrossEntropy,
      epochs: config.epochs,
      initialEpoch,
      batchSize: config.batchSize,
      validationSplit: config.validationSplit,
      seed: config.seed,
      metrics: ["accuracy"],
      callbacks: [
        logToMlflow,
        checkpointEvery(checkpointFile, model, optimizer, config, history, mlflowRun.id),
        new ProgressBar({ writer: args.out }),
      ],
    });
    const final = await evaluate(
      model,
      Tensor.from(test.x, [test.y.length, 2]),
      Tensor.from(test.y, [test.y.length], "i32"),
      { loss: softmaxCrossEntropy, metrics: ["accuracy"] },
    );
    await mlflowRun.logMetrics(
      { test_loss: final.loss, test_accuracy: final.accuracy },
      config.epochs,
    );
    args.out.write(
      `test: loss ${final.loss.toFixed(4)} - accuracy ${final.accuracy.toFixed(4)}\n`,
    );
    await mlflowRun.logArtifact("model/model.safetensors", await saveModel(model));
    await mlflowRun.logDict("model/config.json", modelConfig(model));
    await mlflowRun.logText("model/summary.txt", `${table}\n`);
    await mlflowRun.logDict("history.json", history);
  });
}

registerLab({
  name: "demo",
  description: "MLP on two interleaved spirals (exercises fit, tracking, checkpoints, --resume)",
  flags: ["batch-size", "resume"],
  run,
});
