import assert from "node:assert/strict";
import { Adam, AdamW, RMSprop, SGD } from "../engine/optim/optimizers.ts";
import { clipGradNorm } from "../engine/optim/clip.ts";
import { sizeOf, Tensor, tidy } from "../engine/tensor.ts";
import { sub } from "../engine/ops/elementwise.ts";
import { sum } from "../engine/ops/reduce.ts";
import { assertClose, randomData, setup, testRng } from "./helpers.ts";
import { clipFactor } from "./reference/optim.ts";
import { CLIP_SHAPES, makeParams, OPTIM_CHECKS, setGrad, SHAPES } from "./op_checks/optim.ts";

const rt = await setup();

for (const check of OPTIM_CHECKS) Deno.test(check.name, check.run);

Deno.test("optim: one dispatch per parameter with a gradient, no submission", () => {
  const params = makeParams(SHAPES.map((s) => new Float64Array(sizeOf(s)).fill(0.5)));
  const opt = new Adam(params, { amsgrad: true });
  params.slice(0, 3).forEach((p) => setGrad(p, new Float64Array(p.size).fill(1)));
  const before = rt.poolStats();
  opt.step();
  const after = rt.poolStats();
  assert.equal(after.dispatches - before.dispatches, 3);
  assert.equal(after.submissions, before.submissions);
  opt.dispose();
  for (const p of params) p.dispose();
});

Deno.test("optim: zeroGrad disposes the gradients and nulls them", async () => {
  const params = makeParams(SHAPES.map((s) => new Float64Array(sizeOf(s)).fill(1)));
  const opt = new SGD(params, { lr: 0.1 });
  const grads = params.map((p) => {
    setGrad(p, new Float64Array(p.size).fill(2));
    return p.grad!;
  });
  const live = rt.poolStats().liveBuffers;
  opt.zeroGrad();
  assert.ok(params.every((p) => p.grad === null));
  assert.ok(grads.every((g) => g.isDisposed));
  assert.equal(rt.poolStats().liveBuffers, live - grads.length);
  opt.step(); // nothing to update
  assert.equal(opt.iterations, 1);
  assertClose(await params[0].data(), new Float64Array(7).fill(1));
  opt.dispose();
  for (const p of params) p.dispose();
});

Deno.test("optim: state() / loadState() resume a run exactly", async () => {
  const { rng } = testRng();
  const hostW = SHAPES.map((s) => randomData(sizeOf(s), rng));
  const gradsAt = Array.from({ length: 5 }, () => SHAPES.map((s) => randomData(sizeOf(s), rng)));
  const a = makeParams(hostW);
  const optA = new Adam(a, { lr: 0.05, amsgrad: true });
  for (let t = 0; t < 3; t++) {
    a.forEach((p, i) => setGrad(p, gradsAt[t][i]));
    optA.step();
  }
  // B restarts from A's weights and A's optimizer state after 3 steps.
  const b = await Promise.all(
    a.map(async (p) => Tensor.from(await p.data(), p.shape).requireGrad().keep()),
  );
  const optB = new Adam(b, { lr: 0.05, amsgrad: true });
  optB.loadState(optA.state());
  assert.equal(optB.iterations, 3);
  for (let t = 3; t < 5; t++) {
    a.forEach((p, i) => setGrad(p, gradsAt[t][i]));
    b.forEach((p, i) => setGrad(p, gradsAt[t][i]));
    optA.step();
    optB.step();
  }
  for (let i = 0; i < a.length; i++) {
    assert.deepEqual(Array.from(await b[i].data()), Array.from(await a[i].data()));
  }

  const fresh = new Adam(b, { amsgrad: true });
  assert.throws(
    () => fresh.loadState({ step: 1, tensors: {} }),
    /Adam.loadState: state names differ; missing \[momentum.0/,
  );
  const wrong = { ...optA.state().tensors, "momentum.0": Tensor.zeros([8]) };
  assert.throws(
    () => fresh.loadState({ step: 1, tensors: wrong }),
    /'momentum.0' is f32 \[8\], expected f32 \[7\]/,
  );
  assert.throws(
    () => new SGD(b, { momentum: 0.9 }).loadState({ step: 1, tensors: optA.state().tensors }),
    /SGD.loadState: state names differ; missing \[\], unexpected \[velocity.0/,
  );
  assert.throws(() => fresh.loadState({ step: -1, tensors: {} }), /step = -1, expected/);
  for (const opt of [optA, optB, fresh]) opt.dispose();
  for (const p of [...a, ...b]) p.dispose();
});

Deno.test("optim: state survives tidy scopes, params train through backward", async () => {
  // Minimise Σ(w − target)² with real autograd gradients; the pool must stay flat.
  const { rng } = testRng();
  const target = Tensor.from(randomData(37, rng), [37]).keep();
  const w = Tensor.zeros([37]).requireGrad().keep();
  const opt = tidy(() => new Adam([w], { lr: 0.1 }));
  const lossAt = async () => (await tidy(() => sum(sub(w, target).pow(2))).data())[0];
  const initial = await lossAt();
  let live = 0;
  for (let i = 0; i < 60; i++) {
    tidy(() => {
      opt.zeroGrad();
      sum(sub(w, target).pow(2)).backward();
      opt.step();
    });
    if (i === 5) live = rt.poolStats().liveBytes;
  }
  assert.equal(rt.poolStats().liveBytes, live);
  assert.ok(await lossAt() < initial * 1e-2, "loss should fall");
  opt.dispose();
  w.dispose();
  target.dispose();
});

Deno.test("optim errors: bad hyperparameters and parameters", () => {
  const p = Tensor.from([1, 2, 3], [3]).requireGrad();
  assert.throws(() => new SGD([p], { lr: -0.1 }), /SGD: lr = -0.1, expected a number in \[0/);
  assert.throws(() => new SGD([p], { momentum: 1.5 }), /SGD: momentum = 1.5, expected .*\[0, 1\]/);
  assert.throws(() => new SGD([p], { nesterov: true }), /SGD: nesterov = true needs momentum/);
  assert.throws(() => new SGD([p], { weightDecay: -1 }), /SGD: weightDecay = -1/);
  assert.throws(() => new RMSprop([p], { rho: 1 }), /RMSprop: rho = 1, expected .*\[0, 1\)/);
  assert.throws(() => new RMSprop([p], { epsilon: -1e-7 }), /RMSprop: epsilon = -1e-7/);
  assert.throws(() => new Adam([p], { beta1: 1 }), /Adam: beta1 = 1, expected .*\[0, 1\)/);
  assert.throws(() => new Adam([p], { beta2: -0.1 }), /Adam: beta2 = -0.1/);
  assert.throws(() => new Adam([p], { lr: NaN }), /Adam: lr = NaN/);
  assert.throws(() => new AdamW([p], { weightDecay: -0.004 }), /AdamW: weightDecay = -0.004/);
  assert.throws(() => new Adam([]), /Adam: received an empty parameter list/);
  assert.throws(() => new Adam([p, p]), /Adam: parameters 0 and 1 share their storage/);
  assert.throws(
    () => new SGD([Tensor.from([1], [1], "i32")]),
    /SGD: parameter 0 \[1\] has dtype i32, expected f32/,
  );
  const opt = new Adam([p]);
  assert.throws(() => opt.learningRate = -1, /Adam: learningRate = -1/);
  p.grad = Tensor.from([1, 2], [2]).keep();
  assert.throws(
    () => opt.step(),
    /Adam.step: parameter 0 \[3\] has a f32 gradient of shape \[2\], expected f32 \[3\]/,
  );
  assert.equal(opt.iterations, 0);
  opt.dispose();
  assert.throws(() => opt.step(), /Adam: the optimizer was disposed/);
  p.dispose();
});

Deno.test("clipGradNorm: few dispatches, no readback", async () => {
  const params = CLIP_SHAPES.map((s) => Tensor.ones(s).requireGrad().keep());
  params.forEach((p) => setGrad(p, new Float64Array(p.size).fill(1)));
  const groupSize = Math.min(15, rt.maxStorageBuffers - 1);
  const groups = Math.ceil(params.length / groupSize);
  rt.poison = false;
  const before = rt.poolStats();
  const norm = clipGradNorm(params, 1);
  const after = rt.poolStats();
  rt.poison = true;
  assert.equal(after.dispatches - before.dispatches, 2 * groups + 1);
  assert.equal(after.submissions, before.submissions);
  const total = CLIP_SHAPES.reduce((n, s) => n + sizeOf(s), 0);
  assertClose(await norm.data(), [Math.sqrt(total)], { rtol: 1e-6 });
  assertClose(await params[3].grad!.data(), new Float64Array(21000).fill(1 / Math.sqrt(total)), {
    rtol: 1e-5,
  });
  for (const p of params) p.dispose();
});

Deno.test("clipGradNorm: gradients sharing a buffer count twice, scale once", async () => {
  const a = Tensor.zeros([5]).requireGrad();
  const b = Tensor.zeros([5]).requireGrad();
  a.grad = Tensor.from([3, 0, 0, 4, 0], [5]).keep();
  b.grad = a.grad.retainView();
  const norm = clipGradNorm([a, b], 1);
  assertClose(await norm.data(), [5 * Math.SQRT2]);
  const factor = clipFactor(5 * Math.SQRT2, 1);
  assertClose(await b.grad.data(), [3 * factor, 0, 0, 4 * factor, 0]);
  for (const t of [a, b]) t.dispose();
});

Deno.test("clipGradNorm: no gradients gives norm 0; errors", async () => {
  const p = Tensor.zeros([3]).requireGrad();
  assertClose(await clipGradNorm([p], 1).data(), [0]);
  assert.throws(
    () => clipGradNorm([p], 0),
    /clipGradNorm: maxNorm = 0, expected a finite number > 0/,
  );
  assert.throws(() => clipGradNorm([p], NaN), /clipGradNorm: maxNorm = NaN/);
  p.dispose();
});
