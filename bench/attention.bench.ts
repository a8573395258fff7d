// Fused attention at the peer measurement's shape (TF.js WebGPU: 32 ms forward for b8 h4 s128
// d32, three separate ops) and softmax over [4096, 512] (TF.js WebGPU 23 ms, wasm 2 ms).
// Goals on lavapipe (issue 5): attention forward ≤ 6 ms, softmax ≤ 5 ms.
import { Tensor } from "../engine/tensor.ts";
import { noGrad } from "../engine/autograd.ts";
import { attention } from "../engine/ops/attention.ts";
import { softmax } from "../engine/ops/reduce.ts";
import { benchKernel } from "./lib/kernel.ts";
import { softmaxWork } from "./lib/work.ts";

const [B, H, S, D] = [8, 4, 128, 32];
const SHAPE = `b${B} h${H} s${S} d${D}`;
/** Q·Kᵀ and P·V: 2·S·S·D multiply-adds each per head. */
const FORWARD_FLOPS = 2 * B * H * S * S * (D + D);
/** q, k, v read and the output written once (the score matrix never leaves the kernel). */
const FORWARD_BYTES = 4 * 4 * B * H * S * D;

const qkv = (grad: boolean) =>
  [0, 1, 2].map(() => Tensor.uniform([B, H, S, D], -1, 1).requireGrad(grad).keep());

benchKernel({
  kernel: "attention",
  variant: "forward",
  shape: SHAPE,
  work: { flops: FORWARD_FLOPS, bytes: FORWARD_BYTES },
  setup: () => {
    const [q, k, v] = qkv(false);
    return () => attention(q, k, v).dispose();
  },
});

benchKernel({
  kernel: "attention",
  variant: "forward causal",
  shape: SHAPE,
  work: { flops: FORWARD_FLOPS / 2, bytes: FORWARD_BYTES },
  setup: () => {
    const [q, k, v] = qkv(false);
    return () => attention(q, k, v, { mask: "causal" }).dispose();
  },
});

benchKernel({
  kernel: "attention",
  variant: "forward+backward",
  shape: SHAPE,
  // Backward recomputes the scores and does four more products: 3.5× the forward's FLOPs;
  // it reads q, k, v, o, dO and writes dq, dk, dv.
  work: { flops: 3.5 * FORWARD_FLOPS, bytes: 3 * FORWARD_BYTES },
  setup: () => {
    const [q, k, v] = qkv(true);
    const seed = Tensor.uniform([B, H, S, D], -1, 1).keep();
    return () => {
      const out = attention(q, k, v);
      out.backward(seed);
      noGrad(() => out.dispose());
      for (const t of [q, k, v]) {
        t.grad!.dispose();
        t.grad = null;
      }
    };
  },
});

benchKernel({
  kernel: "softmax",
  variant: "last axis",
  shape: "[4096, 512]",
  work: softmaxWork(4096 * 512),
  setup: () => {
    const x = Tensor.uniform([4096, 512], -5, 5).keep();
    return () => softmax(x).dispose();
  },
});
