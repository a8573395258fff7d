import assert from "node:assert/strict";
import {
  Adam,
  AdamW,
  l2Penalty,
  type Optimizer,
  RMSprop,
  SGD,
} from "../engine/optim/optimizers.ts";
import { clipGradNorm } from "../engine/optim/clip.ts";
import { type Shape, sizeOf, Tensor, tidy } from "../engine/tensor.ts";
import { sub } from "../engine/ops/elementwise.ts";
import { sum } from "../engine/ops/reduce.ts";
import { assertClose, checkOp, randomData, ref, setup, testRng } from "./helpers.ts";
import {
  clipFactor,
  globalNorm,
  l2,
  type OptimizerConfig,
  RefOptimizer,
  slotNames,
} from "./reference/optim.ts";

const rt = await setup();

/** Odd sizes, one spanning several workgroups; the last parameter never receives a gradient. */
const SHAPES: Shape[] = [[7], [3, 5], [33, 17], [70, 40], [4]];
const NO_GRAD = SHAPES.length - 1;
/** Parameter 1 has no gradient at step 2: it must be skipped while the step counter advances. */
const SKIPS = new Set(["1:2"]);
/** Gradient scale per step: falling gradients make AMSGrad's running max differ from v. */
const GRAD_SCALES = [1, 0.5, 2, 1e-3, 1e-3];
/** Learning rate per step, relative to the case's base rate (a schedule changing it). */
const LR_FACTORS = [1, 1, 0.5, 2, 0.25];

interface Case {
  label: string;
  config: OptimizerConfig;
  lr: number;
  make: (params: Tensor[], lr: number) => Optimizer;
}

const sgd = (momentum: number, nesterov: boolean, weightDecay: number, lr = 0.05): Case => ({
  label: `SGD momentum=${momentum} nesterov=${nesterov} weightDecay=${weightDecay}`,
  config: { kind: "sgd", momentum, nesterov, weightDecay },
  lr,
  make: (params, lr) => new SGD(params, { lr, momentum, nesterov, weightDecay }),
});

const rmsprop = (
  o: {
    rho?: number;
    momentum?: number;
    epsilon?: number;
    centered?: boolean;
    weightDecay?: number;
  },
): Case => {
  const config = {
    kind: "rmsprop" as const,
    rho: o.rho ?? 0.9,
    momentum: o.momentum ?? 0,
    epsilon: o.epsilon ?? 1e-7,
    centered: o.centered ?? false,
    weightDecay: o.weightDecay ?? 0,
  };
  return {
    label: `RMSprop ${JSON.stringify(o)}`,
    config,
    lr: 0.01,
    make: (params, lr) => new RMSprop(params, { ...o, lr }),
  };
};

const adam = (
  o: { beta1?: number; beta2?: number; epsilon?: number; amsgrad?: boolean; weightDecay?: number },
  adamW = false,
): Case => {
  const config = {
    kind: "adam" as const,
    beta1: o.beta1 ?? 0.9,
    beta2: o.beta2 ?? 0.999,
    epsilon: o.epsilon ?? 1e-7,
    amsgrad: o.amsgrad ?? false,
    weightDecay: o.weightDecay ?? (adamW ? 0.004 : 0),
  };
  return {
    label: `${adamW ? "AdamW" : "Adam"} ${JSON.stringify(o)}`,
    config,
    lr: 0.05,
    make: (params, lr) => adamW ? new AdamW(params, { ...o, lr }) : new Adam(params, { ...o, lr }),
  };
};

const CASES: Case[] = [
  sgd(0, false, 0),
  sgd(0.9, false, 0),
  sgd(0.9, true, 0),
  sgd(0.5, false, 0.1),
  sgd(0, false, 0.2),
  rmsprop({}),
  rmsprop({ momentum: 0.9 }),
  rmsprop({ centered: true }),
  rmsprop({ centered: true, momentum: 0.5, weightDecay: 0.05 }),
  rmsprop({ rho: 0.5, epsilon: 1e-3 }),
  adam({}),
  adam({ amsgrad: true }),
  adam({ amsgrad: true, beta2: 0.9 }),
  adam({ beta1: 0.5, beta2: 0.9, epsilon: 1e-3 }),
  adam({ weightDecay: 0.05 }),
  adam({}, true),
  adam({ amsgrad: true, weightDecay: 0.1 }, true),
];

function makeParams(data: Float64Array[]): Tensor[] {
  return data.map((w, i) => Tensor.from(w, SHAPES[i]).requireGrad().keep());
}

function setGrad(p: Tensor, data: Float64Array): void {
  p.grad?.dispose();
  p.grad = Tensor.from(data, p.shape).keep();
}

for (const c of CASES) {
  Deno.test(`optim ${c.label}: 5 steps match the float64 Keras rule`, async () => {
    const { rng, seed } = testRng();
    const what = `${c.label} (seed ${seed})`;
    const hostW = SHAPES.map((s) => randomData(sizeOf(s), rng));
    const params = makeParams(hostW);
    const opt = c.make(params, c.lr);
    const reference = new RefOptimizer(c.config, SHAPES.map(sizeOf));
    const refW = hostW.map((w) => w.slice());
    for (let step = 0; step < GRAD_SCALES.length; step++) {
      const lr = c.lr * LR_FACTORS[step];
      opt.learningRate = lr;
      const grads = params.map((p, i) => {
        if (i === NO_GRAD || SKIPS.has(`${i}:${step}`)) {
          p.grad?.dispose();
          p.grad = null;
          return null;
        }
        const g = randomData(p.size, rng, -GRAD_SCALES[step], GRAD_SCALES[step]);
        setGrad(p, g);
        return g;
      });
      opt.step();
      reference.update(refW, grads, lr);
    }
    assert.equal(opt.iterations, GRAD_SCALES.length);
    const tolerance = { atol: 2e-6, rtol: 2e-5 };
    for (let i = 0; i < params.length; i++) {
      const got = await params[i].data();
      if (i === NO_GRAD) assert.deepEqual(Array.from(got), Array.from(Float32Array.from(hostW[i])));
      assertClose(got, refW[i], { ...tolerance, what: `${what} weight ${i}` });
    }
    const state = opt.state();
    assert.equal(state.step, GRAD_SCALES.length);
    const names = slotNames(c.config).flatMap((s) => SHAPES.map((_, i) => `${s}.${i}`));
    assert.deepEqual(Object.keys(state.tensors).sort(), names.sort());
    for (const slot of slotNames(c.config)) {
      for (let i = 0; i < params.length; i++) {
        assertClose(await state.tensors[`${slot}.${i}`].data(), reference.slots[slot][i], {
          ...tolerance,
          what: `${what} state ${slot}.${i}`,
        });
      }
    }
    opt.dispose();
    for (const p of params) p.dispose();
  });
}

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

// ---- clipGradNorm -------------------------------------------------------------------------

/** More gradients than one clipping dispatch binds, one of them long enough to loop per thread. */
const CLIP_SHAPES: Shape[] = [
  [7],
  [3, 5],
  [33, 17],
  [300, 70],
  [1],
  [5, 5, 5],
  [64],
  [9, 2],
  [11],
  [2, 3, 4, 5],
  [1000],
  [13],
  [17, 3],
  [6],
  [129],
  [31],
  [3],
  [40, 41],
];

async function clipCase(ratio: number): Promise<void> {
  const { rng, seed } = testRng();
  const hostG = CLIP_SHAPES.map((s) => randomData(sizeOf(s), rng));
  const withGrad = CLIP_SHAPES.map((_, i) => i % 5 !== 2);
  const params = CLIP_SHAPES.map((s) => Tensor.zeros(s).requireGrad().keep());
  params.forEach((p, i) => withGrad[i] && setGrad(p, hostG[i]));
  const norm = globalNorm(hostG.filter((_, i) => withGrad[i]));
  const maxNorm = norm * ratio;
  const gpuNorm = clipGradNorm(params, maxNorm);
  assert.deepEqual(gpuNorm.shape, []);
  assertClose(await gpuNorm.data(), [norm], { rtol: 1e-5, what: `norm (seed ${seed})` });
  const factor = clipFactor(norm, maxNorm);
  for (let i = 0; i < params.length; i++) {
    if (!withGrad[i]) {
      assert.equal(params[i].grad, null);
      continue;
    }
    const got = await params[i].grad!.data();
    if (factor === 1) {
      assert.deepEqual(Array.from(got), Array.from(Float32Array.from(hostG[i])));
    } else {
      assertClose(got, hostG[i].map((x) => x * factor), {
        atol: 1e-7,
        rtol: 1e-5,
        what: `clipped gradient ${i} (seed ${seed})`,
      });
    }
  }
  for (const p of params) p.dispose();
}

Deno.test("clipGradNorm: norm above the limit scales every gradient", () => clipCase(0.3));
Deno.test("clipGradNorm: norm below the limit leaves gradients unchanged", () => clipCase(2));

Deno.test("clipGradNorm: few dispatches, no readback", async () => {
  const params = CLIP_SHAPES.map((s) => Tensor.ones(s).requireGrad().keep());
  params.forEach((p) => setGrad(p, new Float64Array(p.size).fill(1)));
  const groupSize = Math.min(15, rt.device.limits.maxStorageBuffersPerShaderStage - 1);
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

// ---- l2Penalty ----------------------------------------------------------------------------

Deno.test("l2Penalty: λ·Σw² and its gradient", async () => {
  const lambda = 0.01;
  await checkOp({
    name: "l2Penalty",
    inputs: [{ shape: [3, 5] }, { shape: [7] }, { shape: [33, 17] }],
    gpu: (...ws) => l2Penalty(ws, lambda),
    ref: (...ws) => ref([], [l2(ws.map((w) => w.data), lambda)]),
    rtol: 1e-5,
  });
  const { rng } = testRng();
  const host = randomData(15, rng, -3, 3);
  const w = Tensor.from(host, [3, 5]).requireGrad();
  l2Penalty([w], 0.5).backward();
  assertClose(await w.grad!.data(), host.map((x) => 2 * 0.5 * x));
  assertClose(await l2Penalty([], 0.1).data(), [0]);
  assert.throws(() => l2Penalty([w], -1), /l2Penalty: lambda = -1, expected a number in \[0/);
  w.dispose();
});
