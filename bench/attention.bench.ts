// Fused attention at the peer measurement's shape (TF.js WebGPU: 32 ms forward for b8 h4 s128
// d32, three separate ops) and softmax over [4096, 512] (TF.js WebGPU 23 ms, wasm 2 ms).
// Goals on lavapipe (issue 5): attention forward ≤ 6 ms, softmax ≤ 5 ms.
import { Tensor } from "../engine/tensor.ts";
import { noGrad } from "../engine/autograd.ts";
import { attention, attentionFlops } from "../engine/ops/attention.ts";
import { softmax } from "../engine/ops/reduce.ts";
import { benchKernel } from "./lib/kernel.ts";
import { softmaxWork } from "./lib/work.ts";

const [B, H, S, D] = [8, 4, 128, 32];
const SHAPE = `b${B} h${H} s${S} d${D}`;
const WORK = attentionFlops({ batch: B, heads: H, sq: S, sk: S, d: D, dv: D });
/** q, k, v read and the output written once (the score matrix never leaves the kernel). */
const FORWARD_BYTES = 4 * 4 * B * H * S * D;

const qkv = (grad: boolean) =>
  [0, 1, 2].map(() => Tensor.uniform([B, H, S, D], -1, 1).requireGrad(grad).keep());

benchKernel({
  kernel: "attention",
  variant: "forward",
  shape: SHAPE,
  work: { flops: WORK.forward, bytes: FORWARD_BYTES },
  setup: () => {
    const [q, k, v] = qkv(false);
    return () => attention(q, k, v).dispose();
  },
});

benchKernel({
  kernel: "attention",
  variant: "forward causal",
  shape: SHAPE,
  // The causal kernel skips the masked half of the scores (the op counts them all).
  work: { flops: WORK.forward / 2, bytes: FORWARD_BYTES },
  setup: () => {
    const [q, k, v] = qkv(false);
    return () => attention(q, k, v, { mask: "causal" }).dispose();
  },
});

benchKernel({
  kernel: "attention",
  variant: "forward+backward",
  shape: SHAPE,
  // Backward reads q, k, v, o, dO and writes dq, dk, dv.
  work: { flops: WORK.forward + WORK.backwardQuery + WORK.backwardKey, bytes: 3 * FORWARD_BYTES },
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
