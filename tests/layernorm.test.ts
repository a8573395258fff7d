import assert from "node:assert/strict";
import { Tensor } from "../engine/tensor.ts";
import { layerNorm } from "../engine/ops/layernorm.ts";
import { LayerNorm } from "../engine/nn/layernorm.ts";
import { assertClose, randomData, ref, setup, testRng } from "./helpers.ts";
import { layerNormRef } from "./reference/attention.ts";
import { LAYERNORM_CHECKS } from "./op_checks/layernorm.ts";

await setup();

for (const check of LAYERNORM_CHECKS) Deno.test(check.name, check.run);

Deno.test("layerNorm: a large offset does not cancel the variance", async () => {
  const { rng, seed } = testRng();
  const x = randomData(4 * 9, rng, 999, 1001);
  const g = randomData(9, rng, 0.5, 1.5);
  const b = randomData(9, rng);
  const y = layerNorm(Tensor.from(x, [4, 9]), Tensor.from(g, [9]), Tensor.from(b, [9]));
  const expected = layerNormRef(ref([4, 9], x), ref([9], g), ref([9], b), 1e-3);
  assertClose(await y.data(), expected.data, { atol: 5e-4, what: `seed ${seed}` });
});

Deno.test("layerNorm: γ and β gradients over more rows than a lane may loop over", async () => {
  // 70,001 rows: one lane summing its column over every row would pass lavapipe's loop budget.
  const { rng, seed } = testRng();
  const [rows, c] = [70_001, 3];
  const x = randomData(rows * c, rng);
  const w = randomData(rows * c, rng);
  const xt = Tensor.from(x, [rows, c]);
  const gamma = Tensor.from([1.5, -0.5, 2], [c]).requireGrad();
  const beta = Tensor.from([0, 0, 0], [c]).requireGrad();
  layerNorm(xt, gamma, beta).mul(Tensor.from(w, [rows, c])).sum().backward();
  // The loss is Σ w·(x̂·γ + β): dβ = Σ_rows w, dγ = Σ_rows w·x̂.
  const dGamma = new Float64Array(c), dBeta = new Float64Array(c);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * c, (r + 1) * c);
    const mean = row.reduce((a, v) => a + v, 0) / c;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / c;
    for (let j = 0; j < c; j++) {
      dGamma[j] += w[r * c + j] * (row[j] - mean) / Math.sqrt(variance + 1e-3);
      dBeta[j] += w[r * c + j];
    }
  }
  assertClose(await gamma.grad!.data(), dGamma, {
    atol: 0.05,
    rtol: 1e-3,
    what: `dγ seed ${seed}`,
  });
  assertClose(await beta.grad!.data(), dBeta, { atol: 0.05, rtol: 1e-3, what: `dβ seed ${seed}` });
});

Deno.test("LayerNorm module: Keras defaults (γ 1, β 0, ε 1e-3), PyTorch names", async () => {
  const layer = new LayerNorm(6);
  assert.deepEqual(layer.namedParameters().map(([n]) => n), ["weight", "bias"]);
  assert.equal(layer.epsilon, 1e-3);
  assert.equal(new LayerNorm(6, { epsilon: 1e-5 }).epsilon, 1e-5);
  const { rng } = testRng();
  const x = randomData(2 * 6, rng);
  const y = layerNorm(Tensor.from(x, [2, 6]), layer.weight, layer.bias);
  const expected = layerNormRef(
    ref([2, 6], x),
    ref([6], new Array(6).fill(1)),
    ref([6], new Array(6).fill(0)),
    1e-3,
  );
  assertClose(await layer.forward(Tensor.from(x, [2, 6])).data(), expected.data);
  assertClose(await y.data(), expected.data);
});

Deno.test("layerNorm: bad shapes are rejected", () => {
  const x = Tensor.zeros([3, 4]);
  assert.throws(
    () => layerNorm(x, Tensor.ones([3]), Tensor.zeros([4])),
    /layerNorm: x \[3, 4\] f32, gamma \[3\], beta \[4\]; expected f32 x \[\.\.\., C\]/,
  );
  assert.throws(
    () => layerNorm(x, Tensor.ones([4]), Tensor.zeros([4]), { epsilon: 0 }),
    /epsilon 0/,
  );
  assert.throws(() => new LayerNorm(0), /LayerNorm: normalizedShape 0/);
});
