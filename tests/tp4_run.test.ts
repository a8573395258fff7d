// `deno task train tp4 --quick` as users start it, its MLflow store read back through the
// tracking reader: experiment and run names, params, per-epoch metric keys (training and
// validation from their own history keys), the dataset-level Dice recomputed from the logged
// counts, figures, the Conv3D architecture file; then --compare-losses, --resume and bad flags.
import assert from "node:assert/strict";
import * as path from "node:path";
import { diceFromCounts, sumCounts } from "../engine/train/metrics.ts";
import { METRICS_EXPERIMENT, METRICS_RUN, RADII } from "../labs/tp4/metrics_table.ts";
import { UNET_EXPERIMENT } from "../labs/tp4/unet.ts";
import { ARCHITECTURE_ARTIFACT, VOLUME_EXPERIMENT, VOLUME_RUN } from "../labs/tp4/volumetric.ts";
import { openStore, type RunRecord, type TrackingStore } from "../tracking/store.ts";
import { runLab } from "./lab_runner.ts";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const FIXTURE = path.resolve(
  import.meta.dirname!,
  "fixtures/tracking/mlruns-sample/mlflow-3.x-sqlite-backend_bouiyoda-tp4-artifacts-only/store/1",
  "441ca074dcb344e9b39d586c7e21fff4/artifacts/artifacts/model_architecture.json",
);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

async function runsOf(store: TrackingStore, experiment: string): Promise<RunRecord[]> {
  const found = await store.getExperimentByName(experiment);
  assert.ok(found, `no experiment '${experiment}'`);
  return store.searchRuns({ experimentIds: [found.experimentId] });
}

const steps = (run: RunRecord, key: string) => (run.metrics[key] ?? []).map((p) => p.step);
const last = (run: RunRecord, key: string) => run.metrics[key].at(-1)!.value;

async function assertPng(store: TrackingStore, run: RunRecord, file: string) {
  const bytes = await store.readArtifact(run.info.runId, file);
  assert.deepEqual([...bytes.subarray(0, 8)], PNG_SIGNATURE, file);
}

Deno.test("tp4 --quick: the three exercises' runs, names, params, per-epoch metrics and artifacts", async () => {
  const tmp = await Deno.makeTempDir();
  const mlruns = path.join(tmp, "mlruns");
  const started = performance.now();
  const out = await runLab(["tp4", "--quick", "--checkpoint-dir", path.join(tmp, "ckpt")], mlruns);
  const seconds = (performance.now() - started) / 1000;
  assert.equal(out.code, 0, out.stdout + out.stderr);
  assert.match(out.stdout, /== TP4 summary/);
  assert.match(out.stdout, /all \d+ enforced targets reached/);
  assert.match(out.stdout, /^Epoch 2\/2 - 6 steps - .* - val_dice_dataset: /m);
  console.log(`tp4 --quick took ${seconds.toFixed(1)} s`);
  const store = openStore(`file:${mlruns}`);

  // Exercise 1: the U-Net run.
  const [unet, ...others] = await runsOf(store, UNET_EXPERIMENT);
  assert.equal(others.length, 0);
  assert.equal(unet.info.runName, "unet_dice_adam_img32_f4");
  assert.equal(unet.info.status, "FINISHED");
  assert.deepEqual(unet.warnings, []);
  assert.deepEqual(
    {
      loss: unet.params.loss,
      optimizer: unet.params.optimizer,
      learning_rate: unet.params.learning_rate,
      batch_size: unet.params.batch_size,
      epochs: unet.params.epochs,
      input_shape: unet.params.input_shape,
      base_filters: unet.params.base_filters,
    },
    {
      loss: "dice",
      optimizer: "adam",
      learning_rate: "0.001",
      batch_size: "4",
      epochs: "2",
      input_shape: "(32, 32, 1)",
      base_filters: "4",
    },
  );
  const history = JSON.parse(decode(await store.readArtifact(unet.info.runId, "history.json")));
  for (
    const key of [
      "loss",
      "dice_coef",
      "iou",
      "val_loss",
      "val_dice_coef",
      "val_iou",
      "val_dice_dataset",
      "val_iou_dataset",
    ]
  ) {
    assert.deepEqual(steps(unet, key), [0, 1], key);
    // Each logged curve is its own history key (a training value never stands in for validation).
    assert.deepEqual(unet.metrics[key].map((p) => p.value), history.history[key], key);
  }
  assert.notDeepEqual(history.history.dice_coef, history.history.val_dice_coef);
  assert.ok(history.history.loss[1] < history.history.loss[0], "training loss falls");
  // Dataset-level Dice = the Dice of the summed per-image counts logged beside it.
  const perImage = JSON.parse(
    decode(await store.readArtifact(unet.info.runId, "per_image_dice.json")),
  );
  assert.equal(perImage.dice.length, 8);
  assert.ok(
    Math.abs(diceFromCounts(sumCounts(perImage.counts)) - last(unet, "val_dice_dataset")) < 1e-12,
  );
  for (const key of ["val_dice_per_image_mean", "val_dice_dataset_batch_stats"]) {
    assert.deepEqual(steps(unet, key), [1], key);
  }
  for (const png of ["learning_curves.png", "val_predictions.png", "per_image_dice.png"]) {
    await assertPng(store, unet, png);
  }
  assert.match(
    decode(await store.readArtifact(unet.info.runId, "model_summary.txt")),
    /Total params: 30,997/,
  );
  await store.readArtifact(unet.info.runId, "model/model.safetensors");

  // Exercise 2: the metrics table, per radius.
  const [table] = await runsOf(store, METRICS_EXPERIMENT);
  assert.equal(table.info.runName, METRICS_RUN);
  assert.deepEqual(steps(table, "dice_dilate_1px"), RADII);
  assert.ok(last(table, "dice_empty") < 1e-6); // smooth 1e-6 over ≥ 45 pixels
  assert.match(
    decode(await store.readArtifact(table.info.runId, "metrics_sensitivity.txt")),
    /IoU/,
  );

  // Exercise 3: Conv3D with the handout's MLflow names.
  const [volume, ...more] = await runsOf(store, VOLUME_EXPERIMENT);
  assert.equal(more.length, 0);
  assert.equal(volume.info.runName, VOLUME_RUN);
  assert.equal(volume.info.status, "FINISHED");
  assert.equal(volume.params.optimizer, "adam");
  assert.equal(volume.params.filters_start, "16");
  assert.equal(volume.params.input_shape, "(32, 32, 32, 1)");
  for (const key of ["loss", "accuracy", "val_loss", "val_accuracy"]) {
    assert.deepEqual(steps(volume, key), [0], key);
  }
  assert.equal(last(volume, "final_val_loss"), last(volume, "val_loss"));
  assert.equal(last(volume, "final_val_accuracy"), last(volume, "val_accuracy"));
  assert.equal(last(volume, "total_parameters"), 30_689);
  assert.equal(
    decode(await store.readArtifact(volume.info.runId, ARCHITECTURE_ARTIFACT)),
    await Deno.readTextFile(FIXTURE),
  );
  for (const png of ["learning_curves.png", "volume_slices.png"]) {
    await assertPng(store, volume, png);
  }
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("tp4 --exercise 1 --compare-losses --quick: three runs by the naming convention, compared", async () => {
  const tmp = await Deno.makeTempDir();
  const mlruns = path.join(tmp, "mlruns");
  const out = await runLab(
    [
      "tp4",
      "--exercise",
      "1",
      "--compare-losses",
      "--quick",
      "--checkpoint-dir",
      path.join(tmp, "ckpt"),
    ],
    mlruns,
  );
  assert.equal(out.code, 0, out.stdout + out.stderr);
  assert.match(
    out.stdout,
    /== losses compared ==\n.*val Dice dice\s+val Dice bce\s+val Dice bce_dice/,
  );
  assert.match(out.stdout, /all-background|background everywhere/);
  const store = openStore(`file:${mlruns}`);
  const runs = await runsOf(store, UNET_EXPERIMENT);
  assert.deepEqual(runs.map((r) => r.info.runName).sort(), [
    "unet_bce_adam_img32_f4",
    "unet_bce_dice_adam_img32_f4",
    "unet_dice_adam_img32_f4",
  ]);
  for (const run of runs) {
    assert.equal(run.params.loss, run.info.runName.replace(/^unet_(.*)_adam_img32_f4$/, "$1"));
    await assertPng(store, run, "loss_comparison.png");
    assert.match(
      decode(await store.readArtifact(run.info.runId, "loss_comparison.txt")),
      /val Dice \(batch BN stats\)/,
    );
  }
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("tp4 --resume continues a U-Net run; bad flags are refused", async () => {
  const tmp = await Deno.makeTempDir();
  const mlruns = path.join(tmp, "mlruns");
  const base = ["tp4", "--exercise", "1", "--quick", "--checkpoint-dir", path.join(tmp, "ckpt")];
  const missing = await runLab([...base, "--resume"], mlruns);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /--resume: no checkpoint at .*unet_dice_adam_img32_f4/);
  assert.equal((await runLab([...base, "--epochs", "1"], mlruns)).code, 0);
  const resumed = await runLab([...base, "--epochs", "2", "--resume"], mlruns);
  assert.equal(resumed.code, 0, resumed.stderr);
  const runs = await runsOf(openStore(`file:${mlruns}`), UNET_EXPERIMENT);
  const second = runs.find((r) => r.tags["denograd.resumed_from_epoch"] === "1");
  assert.ok(second, "the resumed run");
  assert.deepEqual(steps(second, "val_dice_coef"), [0, 1]);

  const badLoss = await runLab(["tp4", "--loss", "focal", "--quick"], mlruns);
  assert.equal(badLoss.code, 1);
  assert.match(badLoss.stderr, /--loss focal: expected one of dice, bce, bce_dice/);
  const wrongExercise = await runLab(["tp4", "--exercise", "3", "--loss", "bce"], mlruns);
  assert.equal(wrongExercise.code, 1);
  assert.match(wrongExercise.stderr, /--loss applies to exercise 1 \(the U-Net\) only/);
  const otherLab = await runLab(["tp1", "--base-filters", "8"], mlruns);
  assert.equal(otherLab.code, 2);
  assert.match(otherLab.stderr, /lab 'tp1' has no --base-filters option/);
  await Deno.remove(tmp, { recursive: true });
});
