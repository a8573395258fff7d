// The MNIST labs as users run them: `labs/main.ts tp1|tp2 --quick` in subprocesses writing into a
// temporary MLflow store and checkpoint folder, then the runs read back with the tracking reader
// and the saved model loaded and run here. (The MNIST loader itself is covered in data.test.ts.)
import assert from "node:assert/strict";
import * as path from "node:path";
import { runLab as train } from "./lab_runner.ts";
import { loadModel } from "../engine/io/checkpoint.ts";
import { decodeSafetensors } from "../engine/io/safetensors.ts";
import type { Module } from "../engine/nn/module.ts";
import { argmax } from "../engine/ops/reduce.ts";
import { init, Tensor } from "../engine/tensor.ts";
import { predict } from "../engine/train/fit.ts";
import { loadMnist } from "../labs/data/mnist.ts";
import { QUICK_TEST } from "../labs/mnist_run.ts";
import { biasVarianceVerdict } from "../labs/tp2/common.ts";
import { FileStore } from "../tracking/file_store.ts";
import type { RunRecord } from "../tracking/store.ts";
import { engineOptionsFromEnv } from "../host/env.ts";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

async function runsOf(store: FileStore, experimentName: string): Promise<RunRecord[]> {
  const experiment = await store.getExperimentByName(experimentName);
  assert.ok(experiment, `no experiment '${experimentName}'`);
  return store.searchRuns({ experimentIds: [experiment.experimentId] });
}

/** Steps of a metric, in order. */
function steps(run: RunRecord, key: string): number[] {
  assert.ok(run.metrics[key], `run ${run.info.runName} has no metric '${key}'`);
  return run.metrics[key].map((p) => p.step);
}

function value(run: RunRecord, key: string): number {
  return run.metrics[key].at(-1)!.value;
}

async function assertPng(store: FileStore, run: RunRecord, file: string): Promise<void> {
  const png = await store.readArtifact(run.info.runId, file);
  assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE, `${file} is not a PNG`);
  // Two panels with axes, labels and curves: blank or label-less renders are far smaller.
  assert.ok(png.length > 20_000, `${file} is only ${png.length} bytes`);
}

/** Checks what every lab run has: FINISHED, no reader warnings, the figure and summary. */
async function assertCompleteRun(store: FileStore, run: RunRecord): Promise<void> {
  assert.equal(run.info.status, "FINISHED", run.info.runName);
  assert.deepEqual(run.warnings, []);
  assert.ok(run.info.endTime! >= run.info.startTime!);
  await assertPng(store, run, "learning_curves.png");
  const spec = JSON.parse(
    new TextDecoder().decode(await store.readArtifact(run.info.runId, "learning_curves.vl.json")),
  );
  assert.equal(spec.hconcat.length, 2);
  await store.readArtifact(run.info.runId, "model_summary.txt");
}

Deno.test("tp2 bias/variance verdict: documented thresholds on the students' numbers", () => {
  // BJ 15 epochs: train 99.61 %, dev 98.22 % → variance; KR no-dropout 0.9983 / 0.9818 too.
  assert.equal(biasVarianceVerdict(0.9961, 0.9822).verdict, "high variance");
  assert.equal(biasVarianceVerdict(0.9983, 0.9818).verdict, "high variance");
  // BJ's L2 + Dropout 0.5: train 96.40 % < dev 98.02 %: bias 1.4 pt above human level.
  assert.equal(biasVarianceVerdict(0.964, 0.9802).verdict, "high bias");
  assert.equal(biasVarianceVerdict(0.9, 0.85).verdict, "high bias and high variance");
  assert.equal(biasVarianceVerdict(0.992, 0.987).verdict, "balanced");
  const { avoidableBias, variance } = biasVarianceVerdict(0.99, 0.98);
  assert.ok(Math.abs(avoidableBias - 0.008) < 1e-12 && Math.abs(variance - 0.01) < 1e-12);
});

Deno.test("tp1 --quick: a FINISHED Default run with the spec's names, the figure and the model", async () => {
  const tmp = await Deno.makeTempDir();
  const mlruns = path.join(tmp, "mlruns");
  const ckpt = path.join(tmp, "ckpt");
  const { code, stdout, stderr } = await train(
    ["tp1", "--quick", "--checkpoint-dir", ckpt],
    mlruns,
  );
  assert.equal(code, 0, stderr);
  assert.match(stdout, /Total params: 407,050 /);
  assert.match(stdout, /^Test accuracy: 0\.\d{4} /m);

  const store = new FileStore(mlruns);
  const experiment = await store.getExperimentByName("Default");
  assert.equal(experiment?.experimentId, "0");
  const runs = await runsOf(store, "Default");
  assert.equal(runs.length, 1);
  const [run] = runs;
  await assertCompleteRun(store, run);
  assert.match(run.info.runName, /^[a-z]+-[a-z]+-\d+$/);
  assert.deepEqual(
    { epochs: run.params.epochs, batch: run.params.batch_size, rate: run.params.dropout_rate },
    { epochs: "1", batch: "128", rate: "0.2" },
  );
  for (const key of ["accuracy", "loss", "val_accuracy", "val_loss"]) {
    assert.deepEqual(steps(run, key), [0], key);
  }
  assert.deepEqual(steps(run, "test_accuracy"), [0]);
  assert.deepEqual(steps(run, "test_loss"), [0]);
  const testAccuracy = value(run, "test_accuracy");
  assert.ok(testAccuracy > 0.5 && testAccuracy <= 1, `test accuracy ${testAccuracy}`);

  // The model: logged as mnist-model/ and saved where --quick puts it, the same bytes.
  const logged = await store.readArtifact(run.info.runId, "mnist-model/model.safetensors");
  const saved = await Deno.readFile(path.join(ckpt, "tp1", "mnist-model.safetensors"));
  assert.deepEqual(logged, saved);
  const config = JSON.parse(
    new TextDecoder().decode(await store.readArtifact(run.info.runId, "mnist-model/config.json")),
  );
  assert.deepEqual(config.children.map((c: { class: string }) => c.class), [
    "Linear",
    "Dropout",
    "Linear",
    "Softmax",
  ]);
  assert.equal(decodeSafetensors(saved).metadata.mlflow_run_id, run.info.runId);

  // It loads and reproduces the logged test accuracy on the same tests, as probabilities.
  await init(engineOptionsFromEnv());
  const model = loadModel(saved) as Module;
  const mnist = await loadMnist();
  const x = Tensor.from(mnist.testImages.subarray(0, QUICK_TEST * 784), [QUICK_TEST, 784]);
  const probabilities = predict(model, x, { batchSize: 128 });
  const [p, labels] = await Promise.all([
    probabilities.data(),
    argmax(probabilities, -1).data(),
  ]);
  for (let row = 0; row < 3; row++) {
    let sum = 0;
    for (let k = 0; k < 10; k++) sum += p[row * 10 + k];
    assert.ok(Math.abs(sum - 1) < 1e-5, `row ${row} sums to ${sum}`);
  }
  let correct = 0;
  for (let i = 0; i < QUICK_TEST; i++) correct += labels[i] === mnist.testLabels[i] ? 1 : 0;
  assert.ok(Math.abs(correct / QUICK_TEST - testAccuracy) < 1e-6);
  for (const t of [x, probabilities]) t.dispose();
  model.dispose();

  // --resume continues the checkpoint in a new run that repeats the first epoch's metrics.
  const resumed = await train(
    ["tp1", "--quick", "--epochs", "2", "--resume", "--checkpoint-dir", ckpt],
    mlruns,
  );
  assert.equal(resumed.code, 0, resumed.stderr);
  const second = (await runsOf(store, "Default")).find((r) => r.info.runId !== run.info.runId)!;
  assert.equal(second.info.status, "FINISHED");
  assert.equal(second.tags["denograd.resumed_from_run"], run.info.runId);
  assert.deepEqual(steps(second, "val_accuracy"), [0, 1]);
  assert.equal(second.metrics.val_accuracy[0].value, value(run, "val_accuracy"));
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("tp2 --quick: every exercise's run, names, metrics, figures and conclusions", async () => {
  const tmp = await Deno.makeTempDir();
  const mlruns = path.join(tmp, "mlruns");
  const { code, stderr } = await train(
    ["tp2", "--quick", "--checkpoint-dir", path.join(tmp, "ckpt")],
    mlruns,
  );
  assert.equal(code, 0, stderr);
  const store = new FileStore(mlruns);
  const expected: Record<string, string[]> = {
    "Bias Variance Analysis": ["Base_Model_Bias_Variance"],
    "Regularization": ["Model_With_L2_Dropout"],
    "Optimizer Comparison": [
      "Optimizer_Comparison_Adam",
      "Optimizer_Comparison_RMSprop",
      "Optimizer_Comparison_SGD_with_momentum",
    ],
    "Batch Normalization Test": ["Model_With_BatchNorm"],
    "TP2_Improving_Deep_Models": ["Run_Improved_Model_L2_BN_ES"],
  };
  const byName = new Map<string, RunRecord>();
  for (const [experiment, names] of Object.entries(expected)) {
    const runs = await runsOf(store, experiment);
    assert.deepEqual(runs.map((r) => r.info.runName).sort(), names, experiment);
    for (const run of runs) {
      byName.set(run.info.runName, run);
      await assertCompleteRun(store, run);
      for (const key of ["training_accuracy", "training_loss", "validation_accuracy"]) {
        assert.deepEqual(steps(run, key), [0], `${run.info.runName} ${key}`);
      }
      assert.deepEqual(steps(run, "validation_loss"), [0]);
      assert.deepEqual(steps(run, "final_test_accuracy"), [0]);
      assert.ok(value(run, "final_test_loss") > 0);
      assert.equal(run.params.epochs, "1");
      assert.equal(run.params.batch_size, "128");
      assert.ok(run.tags.conclusion.length > 50, `${run.info.runName}: no conclusion`);
      const text = new TextDecoder().decode(
        await store.readArtifact(run.info.runId, "conclusion.txt"),
      );
      assert.equal(text.trim(), run.tags.conclusion);
    }
  }
  const ex1 = byName.get("Base_Model_Bias_Variance")!;
  assert.match(
    ex1.tags.verdict,
    /^(high bias|high variance|high bias and high variance|balanced)$/,
  );
  assert.equal(
    ex1.tags.verdict,
    biasVarianceVerdict(value(ex1, "final_train_accuracy"), value(ex1, "final_val_accuracy"))
      .verdict,
  );
  const ex2 = byName.get("Model_With_L2_Dropout")!;
  assert.deepEqual([ex2.params.l2_lambda, ex2.params.dropout_rate], ["0.001", "0.5"]);
  for (const name of ["SGD_with_momentum", "RMSprop", "Adam"]) {
    const run = byName.get(`Optimizer_Comparison_${name}`)!;
    assert.equal(run.params.optimizer, name);
    await assertPng(store, run, "optimizer_comparison.png");
  }
  assert.equal(byName.get("Optimizer_Comparison_SGD_with_momentum")!.params.momentum, "0.9");
  const ex4 = byName.get("Model_With_BatchNorm")!;
  assert.equal(ex4.params.batch_normalization, "True");
  const es = byName.get("Run_Improved_Model_L2_BN_ES")!;
  assert.deepEqual(
    [es.params.early_stopping_patience, es.params.dropout_rate, es.params.use_batch_norm],
    ["5", "0.3", "True"],
  );
  for (
    const key of ["final_val_accuracy", "final_val_loss", "best_val_accuracy", "best_val_loss"]
  ) {
    assert.ok(Number.isFinite(value(es, key)), key);
  }
  assert.equal(value(es, "actual_epochs"), 1);

  // --exercise N runs that exercise alone; an unknown one fails before training.
  const only = await train(
    ["tp2", "--quick", "--exercise", "4", "--checkpoint-dir", path.join(tmp, "ckpt4")],
    path.join(tmp, "mlruns4"),
  );
  assert.equal(only.code, 0, only.stderr);
  const store4 = new FileStore(path.join(tmp, "mlruns4"));
  assert.deepEqual(
    (await store4.listExperiments()).map((e) => e.name).filter((n) => n !== "Default"),
    ["Batch Normalization Test"],
  );
  const bad = await train(["tp2", "--exercise", "9"], path.join(tmp, "mlruns9"));
  assert.equal(bad.code, 2, "a bad command line");
  assert.match(bad.stderr, /^--exercise 9: lab 'tp2' has exercises 1 to 5\n/);
  await Deno.remove(tmp, { recursive: true });
});
