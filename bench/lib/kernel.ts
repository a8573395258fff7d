// benchKernel: the one way a bench declares a kernel, its shape and its work next to the code it
// times. It wraps Deno.bench so every case builds random inputs once, warms up (compiles its
// pipelines), sizes its timed region to amortise the device sync, and syncs inside the region.
// Under `deno task bench` (bench/run.ts) each case also appends its declared work to a file the
// runner joins with `deno bench --json`; under plain `deno bench` nothing is written.
import { init } from "../../engine/tensor.ts";
import { engineOptionsFromEnv } from "../../host/env.ts";
import type { Work } from "./work.ts";
import { BENCH_ENV, type BenchRecord, type CeilingKind } from "./report.ts";

/** One op of a case; `rep` counts the ops of a region, for cases that rotate their inputs. */
export type Op = (rep: number) => void;

export interface KernelBench {
  /** Kernel family, e.g. "matmul"; also the bench group. */
  kernel: string;
  /** What tells this case apart from others of the kernel besides the shape, e.g. "transB". */
  variant?: string;
  /** Problem size as the table shows it, e.g. "1024×1024×1024". */
  shape: string;
  /** Work of one op. */
  work: Work;
  /** Marks the cases that measure the adapter's ceilings (bench/ceiling.bench.ts). */
  ceiling?: CeilingKind;
  /** Builds the (random, non-zero) inputs and returns one op; runs on the first warm-up call. */
  setup: () => Op | Promise<Op>;
}

const env = (name: string) => Deno.env.get(name) || undefined;
const recordsPath = env(BENCH_ENV.records);
const regionMs = Number(env(BENCH_ENV.regionMs) ?? 200);
const iterations = Number(env(BENCH_ENV.iterations) ?? 10);
/** Caps the ops per region for tiny kernels on fast adapters. */
const MAX_REPS = 1024;

export const rt = await init(engineOptionsFromEnv());

function append(record: BenchRecord): void {
  if (recordsPath) {
    Deno.writeTextFileSync(recordsPath, JSON.stringify(record) + "\n", { append: true });
  }
}

append({
  type: "adapter",
  report: rt.ctx.report,
  backend: Deno.env.get("DENO_WEBGPU_BACKEND") || "default",
});

export function benchName(
  { kernel, variant, shape }: Pick<KernelBench, "kernel" | "variant" | "shape">,
): string {
  return [kernel, variant, shape].filter(Boolean).join(" ");
}

async function timeRegion(op: Op, reps: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < reps; i++) op(i);
  await rt.sync();
  return performance.now() - start;
}

/** Ops per region so that one region lasts about `regionMs` (the sync stays a small share). */
async function calibrate(op: Op): Promise<number> {
  let reps = 1;
  for (;;) {
    const ms = await timeRegion(op, reps);
    if (ms >= regionMs || reps >= MAX_REPS) return reps;
    reps = Math.min(MAX_REPS, Math.ceil(reps * Math.min(16, Math.max(2, regionMs / ms))));
  }
}

export function benchKernel(spec: KernelBench): void {
  const name = benchName(spec);
  let op: Op | null = null;
  let reps = 1;
  Deno.bench({
    name,
    group: spec.kernel,
    n: iterations,
    warmup: 1,
    async fn(b) {
      if (!op) {
        // First (warm-up) call: inputs, pipeline compilation and region sizing stay untimed.
        op = await spec.setup();
        await timeRegion(op, 1);
        reps = await calibrate(op);
        append({
          type: "work",
          name,
          kernel: spec.kernel,
          ...(spec.variant ? { variant: spec.variant } : {}),
          shape: spec.shape,
          reps,
          ...spec.work,
          ...(spec.ceiling ? { ceiling: spec.ceiling } : {}),
        });
      }
      b.start();
      for (let i = 0; i < reps; i++) op(i);
      await rt.sync();
      b.end();
    },
  });
}

/** Enough copies of an input set (up to 8) that rotating through them moves ≥ 128 MiB, so no cache holds them. */
export function inputSets<T>(bytesPerSet: number, make: () => T): T[] {
  const count = Math.min(8, Math.max(1, Math.ceil(128 * 2 ** 20 / bytesPerSet)));
  return Array.from({ length: count }, make);
}
