import assert from "../assert.ts";
import { Tensor } from "../../engine/tensor.ts";
import { dropout } from "../../engine/ops/dropout.ts";
import { assertClose, randomData, testRng } from "../helpers.ts";
import { dropoutMaskRef } from "../reference/dropout.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("dropout");

/** Nonzero inputs, so a zero output always means "dropped". */
export function nonzeroData(n: number): Float32Array {
  const { rng } = testRng();
  return Float32Array.from(randomData(n, rng, 0.5, 2), (v, i) => (i % 2 ? -v : v));
}

test("dropout keeps ≈ 1 − rate, scales survivors exactly, and matches the host Philox mask", async () => {
  const n = 100_003; // not a multiple of 4: the tail block is partial
  const data = nonzeroData(n);
  const x = Tensor.from(data, [n]);
  for (const [rate, seed, offset] of [[0.3, 1234, 0], [0.5, 7, 99], [0.9, 2 ** 40 + 3, 2 ** 33]]) {
    const y = await dropout(x, rate, { seed, offset }).data();
    const scale = Math.fround(1 / (1 - rate));
    const mask = dropoutMaskRef(n, rate, seed, offset);
    let kept = 0;
    for (let i = 0; i < n; i++) {
      if (mask[i]) {
        kept++;
        assert.ok(y[i] === Math.fround(data[i] * scale), `rate ${rate}: element ${i} is ${y[i]}`);
      } else {
        assert.ok(y[i] === 0, `rate ${rate}: element ${i} should be dropped, is ${y[i]}`);
      }
    }
    // Binomial(n, 1 − rate): 5 standard deviations.
    const bound = 5 * Math.sqrt(n * rate * (1 - rate));
    assert.ok(
      Math.abs(kept - n * (1 - rate)) < bound,
      `rate ${rate}: kept ${kept} of ${n}, expected ${n * (1 - rate)} ± ${bound.toFixed(0)}`,
    );
  }
});

test("dropout gradient is mask · scale · g, the mask recomputed from (seed, offset)", async () => {
  const shape = [37, 53];
  const n = 37 * 53;
  const x = Tensor.from(nonzeroData(n), shape).requireGrad();
  const rate = 0.25;
  const y = dropout(x, rate, { seed: 9, offset: 3 });
  const { rng } = testRng();
  const g = randomData(n, rng);
  y.backward(Tensor.from(g, shape));
  const out = await y.data();
  const scale = Math.fround(1 / (1 - rate));
  const expected = Array.from(out, (v, i) => (v !== 0 ? Math.fround(g[i] * scale) : 0));
  assertClose(await x.grad!.data(), expected, { atol: 0, rtol: 0, what: "dropout gradient" });
});

export const DROPOUT_CHECKS: OpCheckTest[] = tests;
