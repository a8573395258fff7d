// Fused attention and softmax. Each timed region runs REPS ops and waits for the GPU (the sync
// is inside the timing); median ms per op and GFLOP/s print at the end, with the load average
// (the CPU adapter shares its cores with whatever else runs).
import { init, Tensor } from "../engine/tensor.ts";
import { noGrad } from "../engine/autograd.ts";
import { attention } from "../engine/ops/attention.ts";
import { softmax } from "../engine/ops/reduce.ts";

const rt = await init();
const REPS = 10;

interface Case {
  label: string;
  goal: string;
  flops: number;
  setup: () => () => void;
}

/** Attention b8 h4 s128 d32, the peer measurement's shape (TF.js WebGPU: 32 ms forward). */
const [B, H, S, D] = [8, 4, 128, 32];
const ATTENTION_FLOPS = 2 * B * H * S * S * (D + D);

function qkv(grad: boolean): Tensor[] {
  return [0, 1, 2].map(() => Tensor.uniform([B, H, S, D], -1, 1).requireGrad(grad).keep());
}

const CASES: Case[] = [
  {
    label: `attention forward b${B} h${H} s${S} d${D}`,
    goal: "≤ 6 ms (TF.js WebGPU 32 ms)",
    flops: ATTENTION_FLOPS,
    setup: () => {
      const [q, k, v] = qkv(false);
      return () => attention(q, k, v).dispose();
    },
  },
  {
    label: `attention forward b${B} h${H} s${S} d${D}, causal`,
    goal: "-",
    flops: ATTENTION_FLOPS / 2,
    setup: () => {
      const [q, k, v] = qkv(false);
      return () => attention(q, k, v, { mask: "causal" }).dispose();
    },
  },
  {
    label: `attention forward+backward b${B} h${H} s${S} d${D}`,
    goal: "-",
    // Backward recomputes the scores and does four more products: 3.5× the forward.
    flops: 3.5 * ATTENTION_FLOPS,
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
  },
  {
    label: "softmax over the last axis of [4096, 512]",
    goal: "≤ 5 ms (TF.js WebGPU 23 ms, wasm 2 ms)",
    // exp, max, sum and divide per element.
    flops: 4 * 4096 * 512,
    setup: () => {
      const x = Tensor.uniform([4096, 512], -5, 5).keep();
      return () => softmax(x).dispose();
    },
  },
];

const results: string[] = [];
for (const { label, goal, flops, setup } of CASES) {
  const run = setup();
  run(); // compile pipelines outside the timings
  await rt.sync();
  const times: number[] = [];
  Deno.bench({
    name: `${label} ×${REPS} + sync`,
    group: "attention",
    async fn(b) {
      const start = performance.now();
      b.start();
      for (let i = 0; i < REPS; i++) run();
      await rt.sync();
      b.end();
      times.push(performance.now() - start);
    },
  });
  globalThis.addEventListener("unload", () => {
    if (!times.length) return;
    const ms = times.sort((a, b) => a - b)[Math.floor(times.length / 2)] / REPS;
    const gflops = flops / (ms * 1e6);
    results.push(`${label}: ${ms.toFixed(2)} ms, ${gflops.toFixed(1)} GFLOP/s (goal ${goal})`);
    if (results.length === CASES.length) {
      const load = Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
      console.log(`\nAttention on ${rt.ctx.report.description || "(unknown adapter)"}:`);
      console.log(`  load average ${load} on ${navigator.hardwareConcurrency} cores`);
      for (const line of results) console.log(`  ${line}`);
    }
  });
}
