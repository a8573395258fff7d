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
