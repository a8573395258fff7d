import assert from "node:assert/strict";
import { Tensor } from "../engine/tensor.ts";
import { dropout } from "../engine/ops/dropout.ts";
import { setup } from "./helpers.ts";
import { dropoutMaskRef, philox4x32 } from "./reference/dropout.ts";
import { DROPOUT_CHECKS, nonzeroData } from "./op_checks/dropout.ts";

const rt = await setup();

for (const check of DROPOUT_CHECKS) Deno.test(check.name, check.run);

Deno.test("philox4x32-10 host reference matches the Random123 known-answer vectors", () => {
  const hex = (v: number[]) => v.map((w) => w.toString(16).padStart(8, "0")).join(" ");
  assert.deepEqual(hex(philox4x32([0, 0, 0, 0], [0, 0])), "6627e8d5 e169c58d bc57ac4c 9b00dbd8");
  const ones = 0xffffffff;
  assert.deepEqual(
    hex(philox4x32([ones, ones, ones, ones], [ones, ones])),
    "408f276d 41c83b0e a20bc7c6 6d5451fd",
  );
  assert.deepEqual(
    hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])),
    "d16cfe09 94fdcceb 5001e420 24126ea1",
  );
});

Deno.test("dropout: same (seed, offset) replays the mask; another offset or seed changes it", async () => {
  const n = 4099;
  const x = Tensor.from(nonzeroData(n), [n]);
  const rate = 0.4;
  const a = await dropout(x, rate, { seed: 42, offset: 5 }).data();
  const b = await dropout(x, rate, { seed: 42, offset: 5 }).data();
  assert.deepEqual(Array.from(a), Array.from(b));
  const expectedDiffering = 2 * rate * (1 - rate) * n;
  for (const other of [{ seed: 42, offset: 6 }, { seed: 43, offset: 5 }]) {
    const c = await dropout(x, rate, other).data();
    let differing = 0;
    for (let i = 0; i < n; i++) if ((a[i] === 0) !== (c[i] === 0)) differing++;
    // Independent masks disagree on a fraction 2·rate·(1 − rate) of the elements.
    assert.ok(
      Math.abs(differing - expectedDiffering) < 5 * Math.sqrt(expectedDiffering),
      `${JSON.stringify(other)}: ${differing} masks differ, expected ≈ ${expectedDiffering}`,
    );
  }
});

Deno.test("dropout: rate 0 is the identity with no dispatch; 0-d and Inf inputs", async () => {
  const x = Tensor.from([1, 2, 3], [3]);
  const before = rt.poolStats().dispatches;
  assert.ok(dropout(x, 0, { seed: 1 }) === x);
  assert.deepEqual(rt.poolStats().dispatches, before);

  const scalar = await dropout(Tensor.scalar(3), 0.5, { seed: 11, offset: 0 }).data();
  const kept = dropoutMaskRef(1, 0.5, 11, 0)[0];
  assert.deepEqual(scalar[0], kept ? 6 : 0);

  // A dropped Inf must give 0, not NaN.
  const inf = await dropout(Tensor.full([64], Infinity), 0.5, { seed: 5 }).data();
  assert.ok(inf.every((v) => v === 0 || v === Infinity), `got ${inf}`);
  assert.ok(inf.some((v) => v === 0));
});

Deno.test("dropout rejects bad rates, seeds and dtypes before dispatching", () => {
  const x = Tensor.from([1, 2, 3], [3]);
  for (const rate of [-0.1, 1, 1.5, NaN]) {
    assert.throws(
      () => dropout(x, rate),
      new RegExp(`dropout: rate ${rate} is outside \\[0, 1\\)`),
    );
  }
  assert.throws(() => dropout(x, 0.5, { seed: -1 }), /dropout: seed -1 is not an integer/);
  assert.throws(() => dropout(x, 0.5, { offset: 1.5 }), /dropout: offset 1.5 is not an integer/);
  assert.throws(
    () => dropout(Tensor.from([1, 2], [2], "i32"), 0.5),
    /dropout: input \[2\] has dtype i32, expected f32/,
  );
});
