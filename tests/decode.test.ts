import assert from "node:assert/strict";
import { gruDecode } from "../engine/ops/decode.ts";
import { mse } from "../engine/ops/loss.ts";
import { Rng } from "../engine/random.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import {
  CONTENT,
  CONTEXT,
  FRAMES,
  generateLop120,
  HORIZON,
  LOP120_SIZES,
  STEP_INPUT,
} from "../labs/data/lop120.ts";
import { type MemoryKind, TapModel } from "../models/htap.ts";
import { assertClose, setup } from "./helpers.ts";
import { DECODE_CHECKS, decodeArgs } from "./op_checks/decode.ts";

await setup();

for (const check of DECODE_CHECKS) Deno.test(check.name, check.run);

Deno.test("gruDecode: attention weights are the visible keys' softmax", async () => {
  const [B, H, C, F, S, K, M] = [2, 4, 2, 1, 3, 4, 4];
  const rng = new Rng(7);
  const r = (shape: number[]) => Tensor.uniform(shape, -1, 1, rng);
  const out = tidy(() =>
    gruDecode({
      ...decodeArgs({ B, H, C, F, S, K, M, window: 3 }, r),
      returnWeights: true,
    })
  );
  assert.deepEqual(out.weights!.shape, [B, S, M + S]);
  const w = await out.weights!.data() as Float32Array;
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < S; s++) {
      const rowOf = w.subarray((b * S + s) * (M + S), (b * S + s + 1) * (M + S));
      const t = M + s;
      rowOf.forEach((p, j) => {
        if (j > t || j <= t - 3) assert.equal(p, 0, `step ${s} saw key ${j}`);
        else assert.ok(p > 0);
      });
      assert.ok(Math.abs(rowOf.reduce((a, v) => a + v, 0) - 1) < 1e-6);
    }
  }
  out.predictions.dispose();
  out.weights!.dispose();
});

Deno.test("gruDecode: bad shapes and sizes are refused with what was expected", () => {
  const t = (shape: number[]) => Tensor.zeros(shape);
  const base = {
    h0: t([2, 6]),
    content0: t([2, 3]),
    flags: t([2, 4, 1]),
    kernel: t([4, 18]),
    recurrentKernel: t([6, 18]),
    bias: t([2, 18]),
    outWeight: t([6, 3]),
    outBias: t([3]),
  };
  assert.throws(() => gruDecode(base), /units 6.*multiple of 4/);
  assert.throws(
    () => gruDecode({ ...base, h0: t([2, 4]), recurrentKernel: t([4, 12]), kernel: t([5, 12]) }),
    /kernel is f32 of shape \[5, 12\]; expected f32 of shape \[4, 12\]/,
  );
});

Deno.test("TapModel: the fused decoder gives the composed ops' predictions and gradients", async () => {
  // Small sizes for every memory kind, and the LOP-120 shape itself (batch 64, 64 units, 32-d
  // keys): an 8-row, 4-lane decoder table passed the small ones and gave gradients thousands of
  // times too large at that shape, where its loops passed the adapter's loop budget.
  const cases = [
    ...(["none", "full", "fifo"] as MemoryKind[]).map((kind) => ({
      kind,
      B: 11,
      units: 12,
      keyDim: 8,
      atol: 1e-5,
      rtol: 1e-3,
    })),
    { kind: "full" as MemoryKind, B: 64, units: 64, keyDim: 32, atol: 1e-3, rtol: 1e-2 },
  ];
  for (const { kind, B, units, keyDim, atol, rtol } of cases) {
    const d = generateLop120({ n: B, seed: 5 });
    const runs: { predictions: Float32Array; grads: Float32Array[] }[] = [];
    for (const decoder of ["composed", "fused"] as const) {
      const m = new TapModel({
        sizes: LOP120_SIZES,
        units,
        memory: kind,
        keyDim,
        rng: new Rng(3),
        decoder,
      });
      assert.equal(m.fused, decoder === "fused");
      const predictions = tidy(() => {
        const x = Tensor.from(d.contextInput, [B, CONTEXT, STEP_INPUT]);
        const flags = Tensor.from(d.horizonFlags, [B, HORIZON - 1, 4]);
        const y = Tensor.from(d.targets, [B, FRAMES - 1, CONTENT]);
        const p = m.forward(x, flags);
        mse(p, y).backward();
        return p;
      });
      runs.push({
        predictions: await predictions.data() as Float32Array,
        grads: await Promise.all(
          m.parameters().map((p) => p.grad!.data() as Promise<Float32Array>),
        ),
      });
      predictions.dispose();
      for (const p of m.parameters()) p.dispose();
    }
    const [composed, fused] = runs;
    assertClose(fused.predictions, composed.predictions, { what: `${kind} B ${B} predictions` });
    fused.grads.forEach((g, i) => {
      // Gradients are compared at the scale of each parameter's largest entry (the key bias's
      // is analytically zero: a shift of every key by the same vector leaves the softmax alone).
      const scale = Math.max(...composed.grads[i].map(Math.abs), 1e-3);
      assertClose(g, composed.grads[i], {
        atol: atol * scale,
        rtol,
        what: `${kind} B ${B} grad ${i}`,
      });
    });
  }
});
