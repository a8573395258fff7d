// benchKernel: the one way a bench declares a kernel, its shape and its work next to the code it
// times. It wraps Deno.bench so every case builds random inputs once, warms up (compiles its
// pipelines), sizes its timed region to amortise the device sync, and syncs inside the region.
// Under `deno task bench` (bench/run.ts) each case also appends its declared work to a file the
// runner joins with `deno bench --json`; under plain `deno bench` nothing is written. In a
// browser (no Deno) the cases only collect in KERNEL_BENCHES, and the benchmark page times them
// with the same warm-up, region sizing and sync (bench/browser.ts).
import { init } from "../../engine/tensor.ts";
import { engineOptionsFromEnv, readEnv } from "../../host/env.ts";
import type { Work } from "./work.ts";
import { BENCH_ENV, type BenchRecord, type CeilingKind, type WorkRecord } from "./report.ts";

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

const env = (name: string) => readEnv(name) || undefined;
const recordsPath = env(BENCH_ENV.records);
/** Target length of one timed region, and timed regions per case (the browser page sets them). */
export const benchSettings = {
  regionMs: Number(env(BENCH_ENV.regionMs) ?? 200),
  iterations: Number(env(BENCH_ENV.iterations) ?? 10),
};
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
  backend: env("DENO_WEBGPU_BACKEND") ?? "default",
});

/** Every case declared so far, in declaration order. */
export const KERNEL_BENCHES: KernelBench[] = [];

export function benchName(
  { kernel, variant, shape }: Pick<KernelBench, "kernel" | "variant" | "shape">,
): string {
  return [kernel, variant, shape].filter(Boolean).join(" ");
}

/** Milliseconds for `reps` ops and the device sync that ends them. */
export async function timeRegion(op: Op, reps: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < reps; i++) op(i);
  await rt.sync();
  return performance.now() - start;
}

/** Ops per region so that one region lasts about `regionMs` (the sync stays a small share). */
export async function calibrate(op: Op): Promise<number> {
  const { regionMs } = benchSettings;
  let reps = 1;
  for (;;) {
    const ms = await timeRegion(op, reps);
    if (ms >= regionMs || reps >= MAX_REPS) return reps;
    reps = Math.min(MAX_REPS, Math.ceil(reps * Math.min(16, Math.max(2, regionMs / ms))));
  }
}

/** A case's untimed warm-up: its inputs, its pipelines' compilation and its region's sizing. */
export async function warmUp(spec: KernelBench): Promise<{ op: Op; record: WorkRecord }> {
  const op = await spec.setup();
  await timeRegion(op, 1);
  const reps = await calibrate(op);
  return {
    op,
    record: {
      type: "work",
      name: benchName(spec),
      kernel: spec.kernel,
      ...(spec.variant ? { variant: spec.variant } : {}),
      shape: spec.shape,
      reps,
      ...spec.work,
      ...(spec.ceiling ? { ceiling: spec.ceiling } : {}),
    },
  };
}

export function benchKernel(spec: KernelBench): void {
  KERNEL_BENCHES.push(spec);
  if (typeof Deno === "undefined") return;
  let op: Op | null = null;
  let reps = 1;
  Deno.bench({
    name: benchName(spec),
    group: spec.kernel,
    n: benchSettings.iterations,
    warmup: 1,
    async fn(b) {
      if (!op) {
        // First (warm-up) call: inputs, pipeline compilation and region sizing stay untimed.
        const ready = await warmUp(spec);
        op = ready.op;
        reps = ready.record.reps;
        append(ready.record);
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
