import { Tensor } from "../../engine/tensor.ts";
import { attention, type AttentionMask } from "../../engine/ops/attention.ts";
import { checkOp, ref } from "../helpers.ts";
import { attentionRef, type RefMask } from "../reference/attention.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("attention");

// Odd sizes, none a multiple of a key tile (16) or of a workgroup's rows.
export const [B, H, SQ, SK, D, DV] = [2, 3, 7, 13, 5, 6];

/** A padding mask [B, 1, 1, Sk]: batch 0 sees every key, batch 1 only the first 9. */
export function paddingMask(sk: number): number[] {
  return Array.from({ length: 2 * sk }, (_, n) => (n >= sk && n - sk >= 9 ? -Infinity : 0));
}

export interface MaskCase {
  name: string;
  gpu: () => AttentionMask | undefined;
  ref: RefMask;
}

export function maskCases(sk: number): MaskCase[] {
  const padding = paddingMask(sk);
  return [
    { name: "no mask", gpu: () => undefined, ref: "none" },
    { name: "causal", gpu: () => "causal", ref: "causal" },
    { name: "window 3", gpu: () => ({ window: 3 }), ref: { window: 3 } },
    {
      name: "padding [B, 1, 1, Sk]",
      gpu: () => Tensor.from(padding, [2, 1, 1, sk]),
      ref: ref([2, 1, 1, sk], padding),
    },
  ];
}

for (const [sq, sk, label] of [[SQ, SK, "cross Sq < Sk"], [SK, SK, "self"], [SK, SQ, "Sq > Sk"]]) {
  for (const m of maskCases(sk as number)) {
    test(`attention ${label} ${m.name}: forward and gradients of q, k, v`, async () => {
      const mask = m.gpu();
      await checkOp({
        name: `attention ${label} ${m.name}`,
        inputs: [
          { shape: [B, H, sq as number, D], low: -2, high: 2 },
          { shape: [B, H, sk as number, D], low: -2, high: 2 },
          { shape: [B, H, sk as number, DV] },
        ],
        gpu: (q, k, v) => attention(q, k, v, { mask }),
        ref: (q, k, v) => attentionRef(q, k, v, m.ref).output,
        atol: 2e-6,
        rtol: 1e-4,
      });
      if (mask instanceof Tensor) mask.dispose();
    });
  }
}

test("attention: the scale option and a single query against a long memory", async () => {
  await checkOp({
    name: "attention scale 0.7, Sq 1, Sk 37, causal",
    inputs: [{ shape: [3, 1, 1, 4] }, { shape: [3, 1, 37, 4] }, { shape: [3, 1, 37, 2] }],
    gpu: (q, k, v) => attention(q, k, v, { mask: "causal", scale: 0.7 }),
    ref: (q, k, v) => attentionRef(q, k, v, "causal", 0.7).output,
  });
});

test("attention: head dims that are multiples of 4, several key tiles and row groups", async () => {
  await checkOp({
    name: "attention [1, 2, 70, 8] × [1, 2, 45, 8], window 20",
    inputs: [{ shape: [1, 2, 70, 8] }, { shape: [1, 2, 45, 8] }, { shape: [1, 2, 45, 4] }],
    gpu: (q, k, v) => attention(q, k, v, { mask: { window: 20 } }),
    ref: (q, k, v) => attentionRef(q, k, v, { window: 20 }).output,
    gradAtol: 2e-4,
  });
});

export const ATTENTION_CHECKS: OpCheckTest[] = tests;
