// TP5 Part 2: the series generator (spec §2.1), teacher forcing without target leakage, the
// seq2seq's two decoding paths agreeing, and `labs/main.ts tp5 --part 2 --quick` end to end in a
// subprocess writing into a temporary MLflow store.
import assert from "node:assert/strict";
import * as path from "node:path";
import { runLab } from "./lab_runner.ts";
import { noGrad } from "../engine/autograd.ts";
import { Rng } from "../engine/random.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { decoderInputs, generateSeries, seriesSplits } from "../labs/data/series.ts";
import { predictZeroMse, rowSumError } from "../labs/tp5/part2.ts";
import { Seq2Seq, type Seq2SeqScore } from "../models/seq2seq.ts";
import { FileStore } from "../tracking/file_store.ts";
import { setup } from "./helpers.ts";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function meanVar(values: ArrayLike<number>): { mean: number; variance: number } {
  let s = 0, s2 = 0;
  for (let i = 0; i < values.length; i++) {
    s += values[i];
    s2 += values[i] * values[i];
  }
  const mean = s / values.length;
  return { mean, variance: s2 / values.length - mean * mean };
}

Deno.test("series generator: shapes, determinism, seeds, statistics of spec §2.1", () => {
  const a = generateSeries({ n: 2000, seed: 5 });
  assert.equal(a.x.length, 2000 * 50);
  assert.equal(a.y.length, 2000 * 20);
  assert.deepEqual([a.n, a.inputLen, a.horizon, a.features], [2000, 50, 20, 1]);
  const again = generateSeries({ n: 2000, seed: 5 });
  assert.deepEqual(again.x, a.x);
  assert.deepEqual(again.y, a.y);
  assert.notDeepEqual(generateSeries({ n: 10, seed: 6 }).x, generateSeries({ n: 10, seed: 5 }).x);
  // The spec measured std(X) ≈ 0.81 and Var(y) ≈ 0.76 (the "predict 0" MSE) on 20 000 samples.
  const x = meanVar(a.x), y = meanVar(a.y);
  assert.ok(Math.abs(Math.sqrt(x.variance) - 0.81) < 0.03, `std(X) ${Math.sqrt(x.variance)}`);
  assert.ok(Math.abs(y.variance + y.mean ** 2 - 0.76) < 0.04, `E[y²] ${y.variance}`);
  assert.ok(Math.abs(predictZeroMse(a) - (y.variance + y.mean ** 2)) < 1e-9);
  // No phase: every series starts at x(0) = ε(0) ~ N(0, 0.1²).
  const x0 = meanVar(Array.from({ length: a.n }, (_, i) => a.x[i * 50]));
  assert.ok(Math.abs(x0.mean) < 0.01 && Math.abs(Math.sqrt(x0.variance) - 0.1) < 0.01);
  // Consecutive steps continue one series: x(50) = y(0) follows x(49) closely (slow sines).
  let jump = 0;
  for (let i = 0; i < a.n; i++) jump += (a.y[i * 20] - a.x[i * 50 + 49]) ** 2;
  assert.ok(jump / a.n < 0.25, `mean squared step ${jump / a.n}`);

  const presets = generateSeries({ n: 3, seed: 1, horizon: 10, features: 2 });
  assert.equal(presets.x.length, 3 * 50 * 2);
  assert.equal(presets.y.length, 3 * 10 * 2);
  // Channels are independent series (their own frequencies): no two channels are equal.
  assert.notEqual(presets.x[2], presets.x[3]);
  assert.throws(() => generateSeries({ n: 0, seed: 1 }), /generateSeries: n 0/);

  const splits = seriesSplits(3, { n: 40, testN: 30 });
  assert.notEqual(splits.trainSeed, splits.testSeed);
  assert.equal(splits.test.n, 30);
  assert.deepEqual(splits.train.x, generateSeries({ n: 40, seed: splits.trainSeed }).x);
  assert.notDeepEqual(splits.test.x.subarray(0, 50), splits.train.x.subarray(0, 50));
});

Deno.test("teacher forcing: decoder input k is y_{k-1}, step 0 the start value, never y_k", () => {
  const data = generateSeries({ n: 7, seed: 2, horizon: 6, features: 2 });
  for (const start of ["zero", "last"] as const) {
    const input = decoderInputs(data, start);
    for (let i = 0; i < data.n; i++) {
      for (let f = 0; f < 2; f++) {
        const first = input[i * 12 + f];
        assert.equal(first, start === "zero" ? 0 : data.x[(i * 50 + 49) * 2 + f]);
        for (let k = 1; k < 6; k++) {
          const at = (i * 6 + k) * 2 + f;
          assert.equal(input[at], data.y[(i * 6 + k - 1) * 2 + f]);
          assert.notEqual(input[at], data.y[at]);
        }
      }
    }
  }
});

Deno.test("seq2seq: step-by-step decoding fed the true inputs equals the teacher-forced pass", async () => {
  await setup();
  const data = generateSeries({ n: 5, seed: 9, inputLen: 12, horizon: 7, features: 2 });
  const scores: Seq2SeqScore[] = ["learned-scalar", "scaled", "none", "additive"];
  for (const score of scores) {
    const model = new Seq2Seq({
      inputLen: 12,
      horizon: 7,
      features: 2,
      hiddenDim: 8,
      score,
      rng: new Rng(4),
    });
    const [tfPred, tfW, swPred, swW, arPred, arW, packed] = noGrad(() =>
      tidy(() => {
        const x = Tensor.from(data.x, [5, 12, 2]);
        const input = Tensor.from(decoderInputs(data), [5, 7, 2]);
        const tf = model.teacherForced(x, input);
        const sw = model.stepwise(x, input);
        const ar = model.autoregressive(x, Tensor.zeros([5, 2]));
        const both = Tensor.from(
          Float32Array.from({ length: 5 * 19 * 2 }, (_, j) => {
            const [i, r] = [Math.floor(j / 38), j % 38];
            return r < 24 ? data.x[i * 24 + r] : decoderInputs(data)[i * 14 + r - 24];
          }),
          [5, 19, 2],
        );
        return [tf.prediction, tf.weights, sw.prediction, sw.weights, ar.prediction, ar.weights]
          .concat(model.forward(both));
      })
    );
    assert.deepEqual(tfPred.shape, [5, 7, 2]);
    assert.deepEqual(tfW.shape, [5, 7, 12]);
    assert.deepEqual(arW.shape, [5, 7, 12]);
    const [tp, tw, sp, sw, ap, aw, fp] = await Promise.all(
      [tfPred, tfW, swPred, swW, arPred, arW, packed].map((t) => t.data()),
    );
    const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
      Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));
    assert.ok(maxDiff(tp, sp) < 1e-5, `${score}: predictions differ by ${maxDiff(tp, sp)}`);
    assert.ok(maxDiff(tw, sw) < 1e-6, `${score}: weights differ by ${maxDiff(tw, sw)}`);
    assert.deepEqual(fp, tp, `${score}: forward(packed) is the teacher-forced pass`);
    // Free running feeds predictions back: the first step (same start 0) agrees, later ones not.
    assert.ok(maxDiff(ap.subarray(0, 2), tp.subarray(0, 2)) < 1e-5);
    assert.ok(maxDiff(ap, tp) > 1e-4, `${score}: autoregressive equals teacher-forced`);
    for (const w of [tw, aw]) {
      assert.ok(rowSumError(w, 12) < 1e-5);
      assert.ok(Array.from(w).every((v) => v > 0 && v < 1));
    }
    for (const t of [tfPred, tfW, swPred, swW, arPred, arW, packed]) t.dispose();
    assert.equal(model.scale !== null, score === "learned-scalar");
    model.dispose();
  }
  const model = new Seq2Seq({ inputLen: 12, horizon: 7 });
  assert.throws(
    () => model.forward(Tensor.zeros([2, 12, 1])),
    /Seq2Seq: packed input \[2, 12, 1\]/,
  );
  assert.throws(
    () => model.autoregressive(Tensor.zeros([2, 12, 1]), Tensor.zeros([3, 1])),
    /Seq2Seq.autoregressive: start \[3, 1\]/,
  );
  assert.throws(() => new Seq2Seq({ inputLen: 5, horizon: 2, hiddenDim: 7 }), /even integer/);
  model.dispose();
});

Deno.test("tp5 --part 2 --quick: a FINISHED run with the spec's names, metrics, figures, weights", async () => {
  const tmp = await Deno.makeTempDir();
  const mlruns = path.join(tmp, "mlruns");
  const out = await runLab(["tp5", "--part", "2", "--quick"], mlruns);
  const stdout = out.stdout;
  assert.equal(out.code, 0, out.stderr + stdout);
  assert.match(stdout, /^Epoch 1\/3 /m);
  assert.match(stdout, /all 3 checks passed/);

  const store = new FileStore(mlruns);
  const experiment = await store.getExperimentByName("TP5_Part2_Seq2Seq");
  assert.ok(experiment);
  const runs = await store.searchRuns({ experimentIds: [experiment.experimentId] });
  assert.equal(runs.length, 1);
  const [run] = runs;
  assert.equal(run.info.status, "FINISHED");
  assert.deepEqual(run.warnings, []);
  assert.equal(run.info.runName, "seq2seq_learned-scalar_50to20");
  assert.deepEqual(
    ["input_len", "output_len", "hidden_dim", "epochs", "batch_size"].map((k) => run.params[k]),
    ["50", "20", "64", "3", "32"],
  );
  assert.equal(run.params.score, "learned-scalar");
  assert.equal(run.params.start_token, "zero");
  assert.ok(run.params.data_seed !== run.params.test_seed);
  for (const key of ["train_loss", "val_loss"]) {
    assert.deepEqual(run.metrics[key].map((p) => p.step), [0, 1, 2], key);
    assert.ok(run.metrics[key].every((p) => Number.isFinite(p.value)));
  }
  assert.deepEqual(
    run.metrics.test_ar_mse_by_step.map((p) => p.step),
    Array.from({ length: 20 }, (_, k) => k + 1),
  );
  const last = (key: string) => {
    assert.ok(run.metrics[key], `no metric ${key}`);
    return run.metrics[key].at(-1)!.value;
  };
  // The per-step AR MSEs average to the logged AR MSE (one feature, equal counts per step).
  const byStep = run.metrics.test_ar_mse_by_step.map((p) => p.value);
  assert.ok(Math.abs(byStep.reduce((a, b) => a + b) / 20 - last("test_ar_mse")) < 1e-5);
  for (
    const key of [
      "test_tf_mse",
      "test_tf_mae",
      "test_predict_zero_mse",
      "attention_scale",
      "attn_effective_span",
      "attn_span_count",
      "attn_mean_position",
      "attn_mean_lag",
      "tf_attn_entropy_norm",
    ]
  ) {
    assert.ok(Number.isFinite(last(key)), key);
  }
  const entropy = last("attn_entropy_norm");
  assert.ok(entropy > 0 && entropy <= 1 + 1e-9);
  assert.ok(last("attn_max_weight") >= 1 / 50);

  for (const name of ["attention_heatmap", "attention_heatmap_tf", "p2_prediction"]) {
    const png = await store.readArtifact(run.info.runId, `${name}.png`);
    assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE, `${name}.png`);
    assert.ok(png.length > 20_000, `${name}.png is only ${png.length} bytes`);
  }
  for (const name of ["p2_training_curves", "p2_horizon_error"]) {
    await store.readArtifact(run.info.runId, `${name}.png`);
  }
  const heatmap = JSON.parse(
    new TextDecoder().decode(await store.readArtifact(run.info.runId, "attention_heatmap.json")),
  );
  assert.equal(heatmap.weights.length, 20);
  for (const row of heatmap.weights as number[][]) {
    assert.equal(row.length, 50);
    assert.ok(Math.abs(row.reduce((a, b) => a + b) - 1) < 1e-5);
  }
  const horizon = JSON.parse(
    new TextDecoder().decode(await store.readArtifact(run.info.runId, "p2_horizon_error.json")),
  );
  assert.deepEqual(horizon.autoregressive, byStep);
  assert.match(run.tags.conclusion, /^Teacher-forced test MSE \d/);
  const weights = await store.readArtifact(run.info.runId, "model/seq2seq.safetensors");
  assert.ok(weights.length > 100_000);
  await Deno.remove(tmp, { recursive: true });
});
