// `deno task train tp3 --quick` as users start it, on Fashion-MNIST (Debian's package, as CI
// installs it) and on CIFAR-10 files in the official format written by the test; the MLflow
// store read back through the tracking reader: one run per model named after its architecture,
// params, per-epoch and test metrics, figures, the confusion matrix against the test count, the
// model. Then the command lines that must stop with exit 2 and a message, never a stack trace.
import assert from "node:assert/strict";
import * as path from "node:path";
import { CIFAR10_FOLDER, TEST_FILE, TRAIN_FILES } from "../labs/data/cifar10.ts";
import { EXPERIMENT, QUICK_TEST, QUICK_TRAIN } from "../labs/tp3/classify.ts";
import { openStore, type RunRecord } from "../tracking/store.ts";
import { runLab } from "./lab_runner.ts";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const decode = (b: Uint8Array) => new TextDecoder().decode(b);
const FIGURES = [
  "learning_curves.png",
  "confusion_matrix.png",
  "per_class_accuracy.png",
  "misclassified.png",
  "first_layer.png",
];

async function tp3Runs(mlruns: string): Promise<RunRecord[]> {
  const store = openStore(`file:${mlruns}`);
  const experiment = await store.getExperimentByName(EXPERIMENT);
  assert.ok(experiment, `no experiment ${EXPERIMENT}`);
  return store.searchRuns({ experimentIds: [experiment.experimentId] });
}

async function assertRunComplete(mlruns: string, run: RunRecord, testImages: number) {
  const store = openStore(`file:${mlruns}`);
  assert.equal(run.info.status, "FINISHED");
  assert.deepEqual(run.warnings, []);
  for (const key of ["loss", "accuracy", "val_loss", "val_accuracy"]) {
    assert.deepEqual(run.metrics[key]?.map((p) => p.step), [0], key);
  }
  for (const key of ["test_loss", "test_accuracy"]) {
    const value = run.metrics[key]?.at(-1)?.value;
    assert.ok(value !== undefined && Number.isFinite(value), key);
  }
  for (const file of FIGURES) {
    const bytes = await store.readArtifact(run.info.runId, file);
    assert.deepEqual([...bytes.subarray(0, 8)], PNG_SIGNATURE, file);
  }
  const confusion = JSON.parse(
    decode(await store.readArtifact(run.info.runId, "confusion_matrix.json")),
  );
  const counts: number[][] = confusion.counts;
  assert.equal(counts.flat().reduce((a, b) => a + b, 0), testImages);
  // The diagonal over the total is the test accuracy that was logged.
  const correct = counts.reduce((n, row, i) => n + row[i], 0);
  assert.ok(Math.abs(correct / testImages - run.metrics.test_accuracy.at(-1)!.value) < 1e-6);
  const model = await store.readArtifact(run.info.runId, "model/model.safetensors");
  assert.ok(model.length > 1000);
  assert.match(
    decode(await store.readArtifact(run.info.runId, "model_summary.txt")),
    /Total params: /,
  );
}

Deno.test("tp3 --quick on Fashion-MNIST: a run per model with metrics, test metrics, figures and the model", async () => {
  const tmp = await Deno.makeTempDir();
  const mlruns = path.join(tmp, "mlruns");
  const started = performance.now();
  const out = await runLab(["tp3", "--quick", "--checkpoint-dir", path.join(tmp, "ckpt")], mlruns);
  console.log(`tp3 --quick took ${((performance.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(out.code, 0, out.stdout + out.stderr);
  assert.match(out.stdout, /== TP3 summary/);
  assert.match(out.stdout, /classic CNN: parameters +1,630,090 .* = 1,630,090 +PASS/);
  assert.match(out.stdout, /mini-ResNet \(handout block \+ stem\): parameters +150,858 .*PASS/);
  assert.match(out.stdout, /Which model overfits less \(from the learning curves\):/);
  assert.match(out.stdout, /all 3 enforced targets reached/);
  const runs = await tp3Runs(mlruns);
  assert.deepEqual(runs.map((r) => r.info.runName).sort(), [
    "cnn_conv32-pool-conv64-pool-dense512_fashion-mnist",
    "miniresnet_bn_stem32-res32-res64s2-res64-gap_fashion-mnist",
    "miniresnet_stem32-res32-res64s2-res64-gap_fashion-mnist",
  ]);
  for (const run of runs) {
    assert.equal(run.params.dataset, "fashion-mnist");
    assert.equal(run.params.input_shape, "(28, 28, 1)");
    assert.equal(run.params.loss, "categorical_crossentropy");
    assert.equal(run.params.batch_size, "64");
    assert.equal(run.params.train_images, String(QUICK_TRAIN));
    await assertRunComplete(mlruns, run, QUICK_TEST);
  }
  // The closing table again, from the store alone; the plan lists the three models.
  const again = await runLab(["tp3", "--quick", "--summarize"], mlruns);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /all 3 enforced targets reached/);
  assert.match(again.stdout, /Which model overfits less/);
  const plan = await runLab(["tp3", "--quick", "--plan"]);
  assert.equal(plan.code, 0, plan.stderr);
  assert.deepEqual(JSON.parse(plan.stdout).units.map((u: { name: string }) => u.name), [
    "cnn",
    "resnet",
    "resnet_bn",
  ]);
  const other = await runLab(["tp3", "--quick", "--seed", "5", "--summarize"], mlruns);
  assert.equal(other.code, 1, "another plan has no runs");
  assert.match(other.stdout + other.stderr, /cnn/);
});

Deno.test("tp3 --quick --dataset cifar10 --data DIR --unit cnn: files in the official format, Keras' 2,122,186 parameters", async () => {
  const tmp = await Deno.makeTempDir();
  const data = path.join(tmp, "data", CIFAR10_FOLDER);
  await Deno.mkdir(data, { recursive: true });
  // 40 training records per batch (200, the last 20 validate) and 30 tests, labels 0–9.
  const records = (count: number, salt: number) =>
    Uint8Array.from(
      { length: count * 3073 },
      (_, i) => i % 3073 === 0 ? (i / 3073 + salt) % 10 : (i * 7 + salt * 13) % 256,
    );
  for (const [i, name] of TRAIN_FILES.entries()) {
    await Deno.writeFile(path.join(data, name), records(40, i));
  }
  await Deno.writeFile(path.join(data, TEST_FILE), records(30, 5));
  const mlruns = path.join(tmp, "mlruns");
  const out = await runLab([
    "tp3",
    "--quick",
    "--dataset",
    "cifar10",
    "--data",
    path.join(tmp, "data"),
    "--unit",
    "cnn",
    "--checkpoint-dir",
    path.join(tmp, "ckpt"),
  ], mlruns);
  assert.equal(out.code, 0, out.stdout + out.stderr);
  // One unit trains and stops; its exercise's table comes from the store.
  assert.doesNotMatch(out.stdout, /== TP3 summary/);
  const table = await runLab(
    ["tp3", "--quick", "--dataset", "cifar10", "--exercise", "1", "--summarize"],
    mlruns,
  );
  assert.equal(table.code, 0, table.stdout + table.stderr);
  assert.match(table.stdout, /classic CNN: parameters +2,122,186 +KR 2,122,186 += 2,122,186 +PASS/);
  const [run, ...others] = await tp3Runs(mlruns);
  assert.equal(others.length, 0);
  assert.equal(run.info.runName, "cnn_conv32-pool-conv64-pool-dense512_cifar10");
  assert.equal(run.params.input_shape, "(32, 32, 3)");
  assert.equal(run.params.train_images, "200");
  await assertRunComplete(mlruns, run, 30);
});

Deno.test("tp3 command lines that cannot run: exit 2 with a message, no stack trace", async () => {
  const empty = await Deno.makeTempDir();
  const cases: [string[], RegExp][] = [
    [["--dataset", "mnist"], /--dataset mnist: expected one of fashion-mnist, cifar10/],
    [["--exercise", "3"], /questions only/],
    [["--unit", "vgg"], /--unit vgg: lab 'tp3' has units cnn, resnet, resnet_bn$/m],
    [["--unit", "resnet", "--exercise", "1"], /--unit resnet: lab 'tp3' has units cnn$/m],
    [["--data", empty], /Fashion-MNIST: no train-images-idx3-ubyte\[\.gz\] in .*--data DIR/],
    [["--dataset", "cifar10", "--data", empty], /CIFAR-10: --data .* holds neither/],
    [["--exercise", "4"], /--weights/],
    [["--unit", "style", "--epochs", "2"], /--epochs applies to exercises 1 and 2/],
    [["--exercise", "1", "--steps", "5"], /--steps applies to exercise 4/],
  ];
  for (const [args, message] of cases) {
    const out = await runLab(["tp3", "--quick", ...args]);
    assert.equal(out.code, 2, `${args.join(" ")}: ${out.stdout}${out.stderr}`);
    assert.match(out.stderr, message);
    assert.doesNotMatch(out.stderr, /^\s+at /m, `${args.join(" ")} printed a stack trace`);
  }
});
