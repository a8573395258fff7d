// TP5 Part 1 (spec labs/TP5.md §1.6): the attention layer's invariants (Σα = 1, shapes,
// permutation equivariance), the 1/√d_k variance table, the seeded task generators, the
// GRU + attention model, and the `tp5 --part 1 --quick` run as users start it, read back from
// its MLflow store.
import assert from "node:assert/strict";
import * as path from "node:path";
import { runLab } from "./lab_runner.ts";
import { SimpleAttention } from "../engine/nn/attention.ts";
import { runtime } from "../engine/runtime.ts";
import { Tensor } from "../engine/tensor.ts";
import { burstSegment, burstTask, sumTask } from "../labs/data/attention_tasks.ts";
import {
  P1_CAPTION,
  PART1_EXPERIMENT,
  SCALING_DKS,
  scalingVariance,
  scalingWithinTolerance,
} from "../labs/tp5/part1.ts";
import { AttentionGru } from "../models/attention_gru.ts";
import { FileStore } from "../tracking/file_store.ts";
import { randomData, setup, testRng } from "./helpers.ts";

await setup();

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function randomStates(shape: number[]): { data: Float64Array; seed: number } {
  const { rng, seed } = testRng();
  return { data: randomData(shape.reduce((a, b) => a * b, 1), rng, -2, 2), seed };
}

Deno.test("SimpleAttention (§1.6 1, 2): Σ_t α = 1 per sample within 1e-6, shapes (B, d) and (B, T, 1)", async () => {
  const [batch, steps, d] = [7, 50, 64];
  const layer = new SimpleAttention(steps, d, { rng: testRng().rng });
  // A nonzero per-step bias as well, so the check does not rest on near-uniform weights.
  runtime().upload(layer.bias.storage, Float32Array.from(randomData(steps, testRng().rng, -3, 3)));
  const { data, seed } = randomStates([batch, steps, d]);
  const [context, weights] = layer.forward(Tensor.from(data, [batch, steps, d]));
  assert.deepEqual(context.shape, [batch, d]);
  assert.deepEqual(weights.shape, [batch, steps, 1]);
  const alpha = await weights.data();
  for (let b = 0; b < batch; b++) {
    let total = 0;
    for (let t = 0; t < steps; t++) {
      assert.ok(alpha[b * steps + t] > 0, `α[${b}, ${t}] = ${alpha[b * steps + t]} (seed ${seed})`);
      total += alpha[b * steps + t];
    }
    assert.ok(Math.abs(total - 1) <= 1e-6, `sample ${b}: Σα = ${total} (seed ${seed})`);
  }
});

Deno.test("SimpleAttention (§1.6 4): with b = 0, permuting the time steps of H permutes α the same way", async () => {
  const [batch, steps, d] = [3, 20, 8];
  const layer = new SimpleAttention(steps, d, { rng: testRng().rng });
  const { rng, seed } = testRng();
  const { data } = randomStates([batch, steps, d]);
  const perm = rng.shuffle(Int32Array.from({ length: steps }, (_, t) => t));
  const permuted = new Float64Array(data.length);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < steps; t++) {
      const from = (b * steps + perm[t]) * d;
      permuted.set(data.subarray(from, from + d), (b * steps + t) * d);
    }
  }
  const [c1, a1] = layer.forward(Tensor.from(data, [batch, steps, d]));
  const [c2, a2] = layer.forward(Tensor.from(permuted, [batch, steps, d]));
  const [alpha, alphaPermuted] = [await a1.data(), await a2.data()];
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < steps; t++) {
      const want = alpha[b * steps + perm[t]];
      const got = alphaPermuted[b * steps + t];
      assert.ok(
        Math.abs(got - want) <= 1e-7,
        `α'[${b}, ${t}] = ${got}, α[π(t)] = ${want} (seed ${seed})`,
      );
    }
  }
  // The context is a weighted sum over time: unchanged by the permutation.
  const [ctx, ctxPermuted] = [await c1.data(), await c2.data()];
  ctx.forEach((v, i) => assert.ok(Math.abs(v - ctxPermuted[i]) <= 1e-5, `context ${i}`));

  // A nonzero bias ties weights to positions: the same permutation no longer commutes.
  runtime().upload(layer.bias.storage, Float32Array.from({ length: steps }, (_, t) => t / steps));
  const b1 = await layer.forward(Tensor.from(data, [batch, steps, d]))[1].data();
  const b2 = await layer.forward(Tensor.from(permuted, [batch, steps, d]))[1].data();
  let worst = 0;
  for (let t = 0; t < steps; t++) worst = Math.max(worst, Math.abs(b2[t] - b1[perm[t]]));
  assert.ok(worst > 1e-4, `bias ≠ 0 should break the equivariance (worst ${worst})`);
});

Deno.test("1/√d_k (§1.6 6): Var(q·k) within ±10 % of d_k, Var(q·k/√d_k) within ±10 % of 1", () => {
  const { seed } = testRng();
  const rows = scalingVariance(SCALING_DKS, 10_000, seed);
  assert.deepEqual(rows.map((r) => r.dk), [16, 64, 256, 512]);
  for (const r of rows) {
    assert.ok(Math.abs(r.unscaled / r.dk - 1) <= 0.1, `d_k ${r.dk}: ${r.unscaled} (seed ${seed})`);
    assert.ok(Math.abs(r.scaled - 1) <= 0.1, `d_k ${r.dk} scaled: ${r.scaled} (seed ${seed})`);
  }
  assert.ok(scalingWithinTolerance(rows));
  // The criterion can fail: unscaled variances are not ≈ 1.
  assert.ok(!scalingWithinTolerance(rows.map((r) => ({ ...r, scaled: r.unscaled }))));
});

Deno.test("sumTask: shapes, y = Σ_t X[:, t, 0] / √T, unit variance, determined by the seed", () => {
  const task = sumTask(5, { samples: 400, steps: 50, features: 10 });
  assert.equal(task.x.length, 400 * 50 * 10);
  assert.equal(task.y.length, 400);
  assert.equal(task.yScale, Math.sqrt(50));
  for (const n of [0, 123, 399]) {
    let sum = 0;
    for (let t = 0; t < 50; t++) sum += task.x[(n * 50 + t) * 10];
    assert.ok(Math.abs(task.y[n] - sum / Math.sqrt(50)) < 1e-5, `y[${n}]`);
  }
  const meanSq = task.y.reduce((s, v) => s + v * v, 0) / 400;
  assert.ok(meanSq > 0.8 && meanSq < 1.2, `E[y²] = ${meanSq}`);
  assert.deepEqual(sumTask(5, { samples: 400 }).x, task.x);
  assert.notDeepEqual(sumTask(6, { samples: 400 }).y, task.y);
  assert.throws(() => sumTask(0, { steps: 0 }), /sumTask: steps 0, expected an integer ≥ 1/);
});

Deno.test("burstTask: 3 classes, the burst N(1, 0.2) on its segment and N(0, 0.1) elsewhere, seeded", () => {
  const [n, steps, features] = [300, 50, 10];
  const task = burstTask(42, { samples: n, steps, features });
  assert.equal(task.x.length, n * steps * features);
  assert.deepEqual(burstSegment(0, 50), { start: 0, end: 25 });
  assert.deepEqual(burstSegment(1, 50), { start: 25, end: 50 });
  assert.deepEqual(burstSegment(2, 50), { start: 17, end: 33 }); // JB: 16 < t < 33
  const counts = [0, 0, 0];
  const inside: number[] = [];
  const outside: number[] = [];
  for (let s = 0; s < n; s++) {
    const label = task.labels[s];
    counts[label]++;
    assert.deepEqual(task.segments[s], burstSegment(label, steps));
    for (let t = 0; t < steps; t++) {
      const { start, end } = task.segments[s];
      const values = task.x.subarray((s * steps + t) * features, (s * steps + t + 1) * features);
      (t >= start && t < end ? inside : outside).push(...values);
    }
  }
  assert.ok(counts.every((c) => c > 70), `class counts ${counts}`);
  const stats = (v: number[]) => {
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    return { mean, std: Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length) };
  };
  const [a, b] = [stats(inside), stats(outside)];
  assert.ok(Math.abs(a.mean - 1) < 0.01 && Math.abs(a.std - 0.2) < 0.01, JSON.stringify(a));
  assert.ok(Math.abs(b.mean) < 0.005 && Math.abs(b.std - 0.1) < 0.005, JSON.stringify(b));
  assert.deepEqual(burstTask(42, { samples: n }).labels, task.labels);
  assert.notDeepEqual(burstTask(43, { samples: n }).labels, task.labels);
  assert.throws(() => burstSegment(3, 50), /burstSegment: class 3/);
});

Deno.test("AttentionGru: output, context and α shapes for both heads and both attentions, Σα = 1", async () => {
  const [batch, steps, features] = [3, 12, 4];
  const x = Tensor.from(randomData(batch * steps * features, testRng().rng), [
    batch,
    steps,
    features,
  ]);
  const cases = [
    { head: { kind: "regression" as const }, attention: "simple" as const, out: 1 },
    { head: { kind: "classes" as const, classes: 3 }, attention: "scaled" as const, out: 3 },
  ];
  for (const c of cases) {
    const model = new AttentionGru({
      steps,
      features,
      units: 8,
      head: c.head,
      attention: c.attention,
    });
    const { output, weights, context } = model.attend(x);
    assert.deepEqual(output.shape, [batch, c.out]);
    assert.deepEqual(context.shape, [batch, 8]);
    assert.deepEqual(weights.shape, [batch, steps]);
    const alpha = Float64Array.from(await weights.data());
    for (let b = 0; b < batch; b++) {
      const total = alpha.subarray(b * steps, (b + 1) * steps).reduce((s, v) => s + v, 0);
      assert.ok(Math.abs(total - 1) <= 1e-6, `${c.attention}: Σα = ${total}`);
    }
  }
  // GRU(8) on 4 features + SimpleAttention (8 + 12) + Dense(1): the Keras parameter count.
  const simple = new AttentionGru({ steps, features, units: 8, head: { kind: "regression" } });
  assert.equal(simple.trainableCount(), 3 * (8 * (4 + 8) + 2 * 8) + (8 + 12) + (8 + 1));
  assert.throws(() => simple.forward(Tensor.zeros([2, 11, 4])), /AttentionGru: input \[2, 11, 4\]/);
});

Deno.test("tp5 --part 1 --quick: FINISHED runs with params, per-epoch and span metrics, figures and weights", async () => {
  const tmp = await Deno.makeTempDir();
  const mlruns = path.join(tmp, "mlruns");
  const out = await runLab(["tp5", "--part", "1", "--quick"], mlruns);
  const stdout = out.stdout;
  assert.equal(out.code, 0, stdout + out.stderr);
  assert.match(stdout, /all \d+ checks passed/);
  assert.match(stdout, /\[burst\/simple\] epoch 3\/3/);

  const store = new FileStore(mlruns);
  const experiment = await store.getExperimentByName(PART1_EXPERIMENT);
  assert.ok(experiment);
  const runs = await store.searchRuns({ experimentIds: [experiment.experimentId] });
  const byName = new Map(runs.map((r) => [r.info.runName, r]));
  assert.deepEqual([...byName.keys()].sort(), ["burst_simple", "scaling_variance", "sum_simple"]);
  const decode = (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b));

  for (const task of ["sum", "burst"]) {
    const run = byName.get(`${task}_simple`)!;
    assert.equal(run.info.status, "FINISHED");
    assert.deepEqual(run.warnings, []);
    for (const key of ["task", "attention", "epochs", "batch_size", "data_seed", "model_seed"]) {
      assert.ok(key in run.params, `${task}: param ${key}`);
    }
    assert.equal(run.params.task, task);
    assert.equal(run.params.batch_size, "32");
    assert.equal(run.params.validation_split, "0.2");
    assert.deepEqual(run.metrics.loss.map((p) => p.step), [0, 1, 2]);
    assert.deepEqual(run.metrics.val_loss.map((p) => p.step), [0, 1, 2]);
    for (const key of ["attn_entropy_norm", "attn_max_weight", "attn_span_count"]) {
      const value = run.metrics[key].at(-1)!.value;
      assert.ok(Number.isFinite(value), `${task}: ${key} = ${value}`);
    }
    assert.ok(run.metrics.attn_sum_max_error.at(-1)!.value <= 1e-6);
    assert.ok(run.metrics.attn_entropy_norm.at(-1)!.value <= 1);
    assert.equal(run.tags["p1_attention_weights.caption"], P1_CAPTION);
    for (const figure of ["p1_attention_weights", "p1_training_curves"]) {
      const png = await store.readArtifact(run.info.runId, `${figure}.png`);
      assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE, `${task} ${figure}.png`);
    }
    const raw = decode(await store.readArtifact(run.info.runId, "p1_attention_weights.json"));
    assert.equal(raw.samples.length, 3);
    for (const s of raw.samples) {
      assert.equal(s.alpha.length, 50);
      const total = s.alpha.reduce((a: number, b: number) => a + b, 0);
      assert.ok(Math.abs(total - 1) <= 1e-6, `${task} sample ${s.sample}: Σα = ${total}`);
      if (task === "burst") assert.deepEqual(s.segment, burstSegment(s.label, 50));
    }
    if (task === "burst") {
      assert.deepEqual(raw.samples.map((s: { label: number }) => s.label), [0, 1, 2]);
    }
    const weights = await store.readArtifact(run.info.runId, "model/weights.safetensors");
    assert.ok(weights.length > 4 * 14_592, `weights.safetensors is ${weights.length} bytes`);
  }
  const scaling = byName.get("scaling_variance")!;
  assert.equal(scaling.info.status, "FINISHED");
  assert.deepEqual(scaling.metrics.var_unscaled.map((p) => p.step), [16, 64, 256, 512]);
  const table = decode(await store.readArtifact(scaling.info.runId, "p1_scaling_variance.json"));
  assert.ok(scalingWithinTolerance(table.rows));
  await store.readArtifact(scaling.info.runId, "p1_scaling_variance.png");
  await Deno.remove(tmp, { recursive: true });
});
