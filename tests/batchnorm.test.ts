import assert from "node:assert/strict";
import { Tensor, tidy } from "../engine/tensor.ts";
import { dropout } from "../engine/ops/dropout.ts";
import { batchNorm } from "../engine/ops/batchnorm.ts";
import { assertClose, randomData, ref, setup, testRng } from "./helpers.ts";
import { batchNormRef } from "./reference/batchnorm.ts";
import {
  BATCHNORM_CHECKS,
  CASES,
  channelsOf,
  hostVectors,
  underEachRowLayout,
} from "./op_checks/batchnorm.ts";

const rt = await setup();

for (const check of BATCHNORM_CHECKS) Deno.test(check.name, check.run);

for (const training of [true, false]) {
  for (const kase of CASES) {
    const mode = training ? "training" : "inference";
    Deno.test(`batchNorm ${mode} forward ${JSON.stringify(kase.shape)} axis ${kase.axis}`, async () => {
      const { rng, seed } = testRng();
      const c = channelsOf(kase);
      const n = kase.shape.reduce((a, b) => a * b, 1);
      // An offset far from zero: a one-pass E[x²] − E[x]² in f32 would lose the variance.
      const xHost = randomData(n, rng, 99, 101);
      const v = hostVectors(c, rng);
      // Inference reads x ≈ 100 with mean ≈ 0: outputs are ~100, so compare relatively.
      const expected = batchNormRef(
        ref(kase.shape, xHost),
        ref([c], v.gamma),
        ref([c], v.beta),
        v.mean,
        v.variance,
        { axis: kase.axis, training },
      );
      await underEachRowLayout(async (table) => {
        const movingMean = Tensor.from(v.mean, [c]);
        const movingVar = Tensor.from(v.variance, [c]);
        const y = batchNorm(
          Tensor.from(xHost, kase.shape),
          Tensor.from(v.gamma, [c]),
          Tensor.from(v.beta, [c]),
          movingMean,
          movingVar,
          { axis: kase.axis, training },
        );
        const what = `seed ${seed}, ${table} rows`;
        assertClose(await y.data(), expected.y.data, { atol: 2e-4, rtol: 1e-4, what: `${what} y` });
        assertClose(await movingMean.data(), expected.movingMean, { what: `${what} moving mean` });
        assertClose(await movingVar.data(), expected.movingVar, { what: `${what} moving var` });
      });
    });
  }
}

Deno.test("batchNorm moving statistics follow Keras: biased variance, momentum 0.99 (pinned fixture)", async () => {
  // Channel 0: x = 1, 2, 3, 6 → mean 3, biased variance (4 + 1 + 0 + 9)/4 = 3.5 (unbiased would be
  // 14/3). Channel 1: x = 0, 0, 4, 4 → mean 2, variance 4. Moving stats start at (0, 1).
  const x = Tensor.from([1, 0, 2, 0, 3, 4, 6, 4], [4, 2]);
  const movingMean = Tensor.zeros([2]);
  const movingVar = Tensor.ones([2]);
  const y = batchNorm(x, Tensor.ones([2]), Tensor.zeros([2]), movingMean, movingVar, {
    training: true,
  });
  assertClose(await movingMean.data(), [0.03, 0.02], { what: "moving mean after one step" });
  assertClose(await movingVar.data(), [1.025, 1.03], { what: "moving variance after one step" });
  const s0 = Math.sqrt(3.5 + 1e-3);
  const s1 = Math.sqrt(4 + 1e-3);
  assertClose(await y.data(), [-2 / s0, -2 / s1, -1 / s0, -2 / s1, 0, 2 / s1, 3 / s0, 2 / s1], {
    what: "normalised output",
  });
});

Deno.test("batchNorm: moving statistics after two training steps match the reference", async () => {
  const { rng, seed } = testRng();
  const shape = [6, 4, 3, 5];
  const c = 5;
  const v = hostVectors(c, rng);
  const movingMean = Tensor.from(v.mean, [c]);
  const movingVar = Tensor.from(v.variance, [c]);
  let mean: ArrayLike<number> = v.mean;
  let variance: ArrayLike<number> = v.variance;
  for (let step = 0; step < 2; step++) {
    const xHost = randomData(6 * 4 * 3 * 5, rng, -2, 3);
    batchNorm(
      Tensor.from(xHost, shape),
      Tensor.ones([c]),
      Tensor.zeros([c]),
      movingMean,
      movingVar,
      {
        training: true,
        momentum: 0.9,
      },
    );
    const expected = batchNormRef(
      ref(shape, xHost),
      ref([c], new Array(c).fill(1)),
      ref([c], new Array(c).fill(0)),
      mean,
      variance,
      {
        training: true,
        momentum: 0.9,
      },
    );
    mean = expected.movingMean;
    variance = expected.movingVar;
  }
  assertClose(await movingMean.data(), mean, { what: `seed ${seed}: moving mean` });
  assertClose(await movingVar.data(), variance, { what: `seed ${seed}: moving variance` });
});

Deno.test("batchNorm: training forward and backward are two dispatches each", () => {
  rt.poison = false; // poisoning adds a dispatch per allocation
  try {
    const x = Tensor.from(randomData(40 * 9, testRng().rng), [40, 9]).requireGrad();
    const [gamma, beta, mean, variance] = [1, 0, 0, 1].map((v) => Tensor.full([9], v));
    const g = Tensor.ones([40, 9]);
    const before = rt.poolStats().dispatches;
    const y = batchNorm(x, gamma, beta, mean, variance, { training: true });
    const afterForward = rt.poolStats().dispatches;
    y.backward(g);
    assert.equal(afterForward - before, 2);
    assert.equal(rt.poolStats().dispatches - afterForward, 2);
  } finally {
    rt.poison = true;
  }
});

Deno.test("batchNorm + dropout training steps keep the pool's live bytes flat", () => {
  const c = 6;
  const gamma = Tensor.ones([c]).requireGrad();
  const beta = Tensor.zeros([c]).requireGrad();
  const [mean, variance] = [Tensor.zeros([c]), Tensor.ones([c])];
  const x = Tensor.from(randomData(50 * c, testRng().rng), [50, c]).requireGrad();
  const g = Tensor.ones([50, c]);
  const live: number[] = [];
  for (let step = 0; step < 6; step++) {
    tidy(() => {
      const h = batchNorm(x, gamma, beta, mean, variance, { training: true });
      dropout(h, 0.3, { seed: 1, offset: step }).backward(g);
    });
    for (const p of [x, gamma, beta]) {
      p.grad?.dispose();
      p.grad = null;
    }
    live.push(rt.poolStats().liveBytes);
  }
  assert.ok(live.every((b) => b === live[0]), `live bytes per step: ${live}`);
});

Deno.test("batchNorm rejects bad shapes, axes and options before dispatching", () => {
  const x = Tensor.zeros([4, 3]);
  const v = () => Tensor.zeros([3]);
  assert.throws(
    () => batchNorm(x, Tensor.zeros([4]), v(), v(), v()),
    /batchNorm: gamma has shape \[4\] \(f32\), expected \[3\] f32 for input \[4, 3\]/,
  );
  assert.throws(
    () => batchNorm(x, v(), v(), v(), v(), { axis: 2 }),
    /batchNorm: axis 2 is out of range for input \[4, 3\]/,
  );
  assert.throws(() => batchNorm(x, v(), v(), v(), v(), { momentum: 1.5 }), /momentum 1.5/);
  assert.throws(() => batchNorm(x, v(), v(), v(), v(), { epsilon: 0 }), /epsilon 0/);
  assert.throws(
    () => batchNorm(Tensor.zeros([0, 3]), v(), v(), v(), v()),
    /input \[0, 3\] is empty/,
  );
  const shared = v();
  assert.throws(
    () => batchNorm(x, v(), v(), shared, shared, { training: true }),
    /updated in place in training mode/,
  );
});
