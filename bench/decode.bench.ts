// Free-running decoding at the LOP-120 shape (spec labs/TP5.md §3.5): batch 64, 19 generated
// steps after a 100-step context, GRU 64 units, 14 content + 4 flag channels, a 32-d memory.
// The fused decoder (one dispatch forward, one plus a matmul per weight backward) against the
// same steps composed from primitive ops (~50 dispatches per step), in a whole training update
// (context GRU and attention, loss, backward, clipping, Adam) for the TAP baseline and H-TAP.
import { Tensor, tidy } from "../engine/tensor.ts";
import { Rng } from "../engine/random.ts";
import { noGrad } from "../engine/autograd.ts";
import { mse } from "../engine/ops/loss.ts";
import { decodeFlops, gruDecode } from "../engine/ops/decode.ts";
import { clipGradNorm } from "../engine/optim/clip.ts";
import { Adam } from "../engine/optim/optimizers.ts";
import {
  CONTENT,
  CONTEXT,
  FRAMES,
  HORIZON,
  LOP120_SIZES,
  STEP_INPUT,
} from "../labs/data/lop120.ts";
import { type MemoryKind, TapModel } from "../models/htap.ts";
import { benchKernel } from "./lib/kernel.ts";

const B = 64, H = 64, K = 32, S = HORIZON - 1, F = 4;
const dims = {
  hidden: H,
  content: CONTENT,
  flags: F,
  steps: S,
  keyDim: K,
  memory: CONTEXT,
  window: 0,
};

for (const backward of [false, true]) {
  benchKernel({
    kernel: "gru_decode",
    variant: backward ? "forward+backward" : "forward",
    shape: `b${B} S${S} h${H} k${K} m${CONTEXT}`,
    // Backward does each product twice more (input and weight gradients).
    work: { flops: (backward ? 3 : 1) * decodeFlops(dims, B) },
    setup: () => {
      const rng = new Rng(1);
      const r = (shape: number[], grad = true) => {
        const t = Tensor.uniform(shape, -0.3, 0.3, rng).keep();
        return grad ? t.requireGrad() : t;
      };
      const I = CONTENT + F;
      const args = {
        h0: r([B, H]),
        content0: r([B, CONTENT]),
        flags: r([B, S, F], false),
        kernel: r([I, 3 * H]),
        recurrentKernel: r([H, 3 * H]),
        bias: r([2, 3 * H]),
        outWeight: r([2 * H, CONTENT]),
        outBias: r([CONTENT]),
        memory: {
          keys: r([B, CONTEXT, K]),
          values: r([B, CONTEXT, K]),
          queryWeight: r([H + I, K]),
          queryBias: r([K]),
          keyWeight: r([I, K]),
          keyBias: r([S, K]),
          valueWeight: r([I, K]),
          valueBias: r([K]),
          gateWeight: r([H + K, H]),
          gateBias: r([H]),
          contextWeight: r([K, H]),
          contextBias: r([H]),
        },
      };
      const seed = Tensor.uniform([B, S, CONTENT], -1, 1, rng).keep();
      return () =>
        tidy(() => {
          if (!backward) return void noGrad(() => gruDecode(args));
          gruDecode(args).predictions.backward(seed);
        });
    },
  });
}

for (const memory of ["none", "full"] as MemoryKind[]) {
  for (const decoder of ["fused", "composed"] as const) {
    benchKernel({
      kernel: "LOP-120 update",
      variant: `${memory === "none" ? "GRU-64" : "H-TAP"} ${decoder} decoder`,
      shape: `b${B}`,
      work: {},
      setup: () => {
        const rng = new Rng(1);
        const model = new TapModel({ sizes: LOP120_SIZES, units: H, memory, rng, decoder });
        const opt = new Adam(model.parameters(), { lr: 2e-3 });
        const x = Tensor.uniform([B, CONTEXT, STEP_INPUT], 0, 1, rng).keep();
        const flags = Tensor.uniform([B, S, F], 0, 1, rng).keep();
        const y = Tensor.uniform([B, FRAMES - 1, CONTENT], -1, 1, rng).keep();
        return () =>
          tidy(() => {
            opt.zeroGrad();
            mse(model.forward(x, flags), y).backward();
            clipGradNorm(model.parameters(), 1);
            opt.step();
          });
      },
    });
  }
}
