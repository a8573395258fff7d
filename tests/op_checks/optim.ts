import assert from "../assert.ts";
import {
  Adam,
  AdamW,
  l2Penalty,
  type Optimizer,
  RMSprop,
  SGD,
} from "../../engine/optim/optimizers.ts";
import { clipGradNorm } from "../../engine/optim/clip.ts";
import { type Shape, sizeOf, Tensor } from "../../engine/tensor.ts";
import { assertClose, checkOp, randomData, ref, testRng } from "../helpers.ts";
import {
  clipFactor,
  globalNorm,
  l2,
  type OptimizerConfig,
  RefOptimizer,
  slotNames,
} from "../reference/optim.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("optim");

/** Odd sizes, one spanning several workgroups; the last parameter never receives a gradient. */
export const SHAPES: Shape[] = [[7], [3, 5], [33, 17], [70, 40], [4]];
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

export function makeParams(data: Float64Array[]): Tensor[] {
  return data.map((w, i) => Tensor.from(w, SHAPES[i]).requireGrad().keep());
}

export function setGrad(p: Tensor, data: Float64Array): void {
  p.grad?.dispose();
  p.grad = Tensor.from(data, p.shape).keep();
}

for (const c of CASES) {
  test(`optim ${c.label}: 5 steps match the float64 Keras rule`, async () => {
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

// ---- clipGradNorm -------------------------------------------------------------------------

/** More gradients than one clipping dispatch binds, one of them long enough to loop per thread. */
export const CLIP_SHAPES: Shape[] = [
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

test("clipGradNorm: norm above the limit scales every gradient", () => clipCase(0.3));
test("clipGradNorm: norm below the limit leaves gradients unchanged", () => clipCase(2));

// ---- l2Penalty ----------------------------------------------------------------------------

test("l2Penalty: λ·Σw² and its gradient", async () => {
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

export const OPTIM_CHECKS: OpCheckTest[] = tests;
