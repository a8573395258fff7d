// TP4 Exercise 3 (spec labs/TP1-TP4.md §5.4): the handout's Conv3D block (30,689 parameters)
// trained for real on a volumetric task that needs 3-D context (labs/data/volumes.ts: a ball or an
// upright cylinder of the same radius and volume). MLflow as the handout's `__main__`: experiment
// `3D_Volumetric_Analysis`, run `Conv3D_Baseline`, `log_dict({"model_config": model.to_json()},
// "artifacts/model_architecture.json")`, params optimizer=adam and filters_start=16, and a real
// `final_val_loss` (the students logged random or hard-coded numbers), plus the per-epoch curves,
// orthogonal slices of validation volumes with their predicted probability, and the weights.
import * as path from "node:path";
import { binaryCrossEntropy } from "../../engine/ops/loss.ts";
import { Adam } from "../../engine/optim/optimizers.ts";
import { Rng } from "../../engine/random.ts";
import { Tensor } from "../../engine/tensor.ts";
import { predict } from "../../engine/train/fit.ts";
import { conv3dModel } from "../../models/conv3d.ts";
import { withRun } from "../../tracking/run.ts";
import { openStore } from "../../tracking/store.ts";
import { SHAPE_NAMES, shapeVolumes, type Volumes } from "../data/volumes.ts";
import { learningCurvesSpec } from "../figures.ts";
import { logModel, readResumePoint, trainRun } from "../train_run.ts";
import { type Check, f4, tupleText } from "../checks.ts";
import { logUnitResult, unitTags } from "../unit_runs.ts";
import type { Tp4Options } from "./common.ts";
import { greyTile, gridPng } from "../images.ts";
import { kerasModelJson } from "./keras_json.ts";

export const VOLUME_EXPERIMENT = "3D_Volumetric_Analysis";
export const VOLUME_RUN = "Conv3D_Baseline";
export const ARCHITECTURE_ARTIFACT = "artifacts/model_architecture.json";
export const CONV3D_PARAMS = 30_689;
export const ACCURACY_TARGET = 0.95;
const FILTERS_START = 16;
const INPUT_SHAPE = [32, 32, 32, 1] as const;

export interface VolumeConfig {
  trainVolumes: number;
  valVolumes: number;
  batchSize: number;
  epochs: number;
  learningRate: number;
  noise: number;
  seed: number;
  quick: boolean;
}

export function volumeConfig(options: Tp4Options): VolumeConfig {
  return {
    trainVolumes: options.quick ? 16 : 400,
    valVolumes: options.quick ? 8 : 100,
    batchSize: options.batchSize ?? (options.quick ? 8 : 16),
    epochs: options.epochs ?? (options.quick ? 1 : 10),
    learningRate: 1e-3,
    noise: 0.2,
    seed: options.seed,
    quick: options.quick,
  };
}

/** Depth, height and width slices through voxel (d, h, w) of volume n, as D×H×W images. */
function orthogonalSlices(volumes: Volumes, n: number, [d0, h0, w0]: number[]) {
  const s = volumes.size;
  const base = n * s * s * s;
  const at = (d: number, h: number, w: number) => volumes.x[base + (d * s + h) * s + w];
  const slice = (f: (row: number, col: number) => number) =>
    Float32Array.from({ length: s * s }, (_, i) => f(Math.floor(i / s), i % s));
  return [
    slice((h, w) => at(d0, h, w)),
    slice((d, w) => at(d, h0, w)),
    slice((d, h) => at(d, h, w0)),
  ];
}

function slicesFigure(volumes: Volumes, probs: Float32Array, count: number) {
  // Alternate classes so both shapes show.
  const picks: number[] = [];
  for (const label of [0, 1, 0, 1, 0, 1]) {
    const n = volumes.shapes.findIndex((s, i) => s.label === label && !picks.includes(i));
    if (n >= 0 && picks.length < count) picks.push(n);
  }
  const s = volumes.size;
  return gridPng({
    title: "Conv3D: orthogonal slices through each shape's centre (validation)",
    columns: ["depth slice (H×W)", "height slice (D×W)", "width slice (D×H)"],
    cell: 128,
    rows: picks.map((n) => {
      const shape = volumes.shapes[n];
      const centre = shape.centre.map((c) => Math.min(s - 1, Math.max(0, Math.round(c))));
      return {
        label: `${SHAPE_NAMES[shape.label]}`,
        tiles: orthogonalSlices(volumes, n, centre).map((v) => greyTile(v, s, s)),
        captions: [
          `r ${shape.radius.toFixed(1)}, ${shape.voxels} voxels`,
          `p(cylinder) ${probs[n].toFixed(3)}`,
          `predicted ${SHAPE_NAMES[probs[n] > 0.5 ? 1 : 0]}`,
        ],
      };
    }),
  });
}

/** Exercise 3 (its one unit): the Conv3D block trained on ball vs cylinder volumes. */
export async function trainVolumeUnit(options: Tp4Options): Promise<void> {
  options.out.write("\n== TP4 Exercise 3 — Conv3D on ball vs cylinder volumes ==\n");
  const checkpointFile = path.join(options.checkpointDir, "tp4", VOLUME_RUN, "last.safetensors");
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
  const saved = resume?.settings.config as VolumeConfig | undefined;
  const config = saved
    ? { ...saved, epochs: options.epochs ?? saved.epochs }
    : volumeConfig(options);
  const train = shapeVolumes(config.seed + 3, config.trainVolumes, { noise: config.noise });
  const val = shapeVolumes(config.seed + 4, config.valVolumes, { noise: config.noise });
  const shape = (n: number) => [n, ...INPUT_SHAPE];
  const tensors = {
    trainX: Tensor.from(train.x, shape(train.count)).keep(),
    trainY: Tensor.from(train.y, [train.count, 1]).keep(),
    valX: Tensor.from(val.x, shape(val.count)).keep(),
    valY: Tensor.from(val.y, [val.count, 1]).keep(),
  };
  const model = conv3dModel({ filters: FILTERS_START, rng: new Rng(config.seed + 5) });
  const optimizer = new Adam(model.parameters(), { lr: config.learningRate });
  const params = model.trainableCount();
  try {
    await withRun(openStore(), VOLUME_EXPERIMENT, {
      runName: VOLUME_RUN,
      tags: {
        "denograd.lab": "tp4",
        "denograd.exercise": "3",
        ...unitTags(options.plan, VOLUME_RUN),
      },
    }, async (run) => {
      await run.logParams({
        optimizer: "adam",
        filters_start: FILTERS_START,
        input_shape: tupleText(INPUT_SHAPE),
        kernel_size: tupleText([3, 3, 3]),
        learning_rate: config.learningRate,
        batch_size: config.batchSize,
        epochs: config.epochs,
        loss: "binary_crossentropy",
        task: "ball vs upright cylinder, equal radius and volume",
        train_volumes: config.trainVolumes,
        val_volumes: config.valVolumes,
        noise_std: config.noise,
        seed: config.seed,
        quick: config.quick,
      });
      await run.logDict(ARCHITECTURE_ARTIFACT, {
        model_config: kerasModelJson(model, INPUT_SHAPE),
      });
      const trained = await trainRun(run, {
        model,
        optimizer,
        loss: binaryCrossEntropy,
        data: { x: tensors.trainX, y: tensors.trainY },
        validationData: { x: tensors.valX, y: tensors.valY },
        metrics: ["accuracy"],
        epochs: config.epochs,
        batchSize: config.batchSize,
        seed: config.seed,
        out: options.out,
        summary: {
          inputShape: [...INPUT_SHAPE],
          name: "functional",
          artifact: "model_summary.txt",
          title: "Conv3D block (handout)",
        },
        figures: [{
          name: "learning_curves",
          spec: (h) => learningCurvesSpec("TP4 Conv3D — ball vs cylinder", h),
        }],
        historyArtifact: "history.json",
        checkpoint: { file: checkpointFile, settings: { config }, resume },
      });
      const h = trained.history.history;
      const final = { valLoss: h.val_loss.at(-1)!, valAccuracy: h.val_accuracy.at(-1)! };
      await run.logMetrics({
        final_val_loss: final.valLoss,
        final_val_accuracy: final.valAccuracy,
        total_parameters: params,
      });
      const probTensor = predict(model, tensors.valX, { batchSize: config.batchSize });
      const probs = Float32Array.from(await probTensor.data());
      probTensor.dispose();
      await run.logArtifact("volume_slices.png", await slicesFigure(val, probs, 4));
      await logModel(run, "model", model, { mlflow_run_id: run.id });
      options.out.write(
        `${VOLUME_RUN}: val accuracy ${f4(final.valAccuracy)}, val loss ${f4(final.valLoss)}; ` +
          `${trained.timing.secondsPerEpoch.toFixed(1)} s/epoch; MLflow run ${run.id}\n`,
      );
      const checks: Check[] = [
        {
          name: "Conv3D: val accuracy (ball vs cylinder)",
          value: f4(final.valAccuracy),
          students: "made up (BJ loss ~U(0.1, 0.4); 0.82 hard-coded)",
          target: `≥ ${ACCURACY_TARGET}`,
          pass: final.valAccuracy >= ACCURACY_TARGET,
          informational: options.quick,
        },
        {
          name: "Conv3D: parameters",
          value: params.toLocaleString("en-US"),
          students: "KR 30689",
          target: "= 30,689",
          pass: params === CONV3D_PARAMS,
        },
      ];
      await logUnitResult(run, {
        title: `Conv3D (${trained.timing.secondsPerEpoch.toFixed(1)} s/epoch)`,
        checks,
      });
    });
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
    optimizer.dispose();
    model.dispose();
  }
}
