// One-call op check: GPU forward against a float64 reference, and the GPU's analytic gradient
// against central finite differences of the same reference. Browser-clean: the op checks in
// tests/op_checks/ run from this file in Deno and in Chromium alike (tests/browser_ops.test.ts).
import { init, type Shape, sizeOf, Tensor } from "../engine/tensor.ts";
import { Rng } from "../engine/random.ts";
import type { Runtime } from "../engine/runtime.ts";
import type { Tunable } from "../engine/tuning.ts";
import { engineOptionsFromEnv, readEnv } from "../host/env.ts";

/** A float64 host tensor for reference implementations. */
export interface Ref {
  shape: number[];
  data: Float64Array;
}

export function ref(shape: Shape, data: ArrayLike<number>): Ref {
  return { shape: [...shape], data: Float64Array.from(data) };
}

/** Fresh seed per call unless DENOGRAD_TEST_SEED fixes it; printed on failure. */
let seedCounter = Number(readEnv("DENOGRAD_TEST_SEED") ?? Date.now() % 1_000_000);
export function testRng(): { rng: Rng; seed: number } {
  const seed = seedCounter++;
  return { rng: new Rng(seed), seed };
}

/** Initialises the runtime with poisoned allocations (unwritten outputs read as NaN). */
export async function setup(): Promise<Runtime> {
  const rt = await init(engineOptionsFromEnv());
  rt.poison = true;
  return rt;
}

/**
 * Collects garbage and lets the finalizers return dropped tensors' buffers to the pool, so that a
 * memory count sees what is still held and not when V8 happened to collect an earlier test's
 * garbage. Needs V8's gc, which `deno task test` exposes.
 */
export async function settleGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    throw new Error(
      "memory counts need V8's gc: run `deno task test` or pass --v8-flags=--expose-gc",
    );
  }
  gc();
  await new Promise((resolve) => setTimeout(resolve, 0)); // finalizers run as a task after it
}

export function randomData(n: number, rng: Rng, low = -1, high = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.fround(rng.uniform(low, high));
  return out;
}

/** How far `a` lies outside `e`'s tolerance (≤ 0 inside; Infinity for a NaN where none is due). */
function excess(a: number, e: number, atol: number, rtol: number): number {
  if (Number.isNaN(e) && Number.isNaN(a)) return 0;
  if (e === a) return 0; // equal infinities
  const over = Math.abs(a - e) - (atol + rtol * Math.abs(e));
  return Number.isNaN(over) ? Infinity : over;
}

export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-5, rtol = 1e-4, what = "values" } = {},
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  }
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const over = excess(actual[i], expected[i], atol, rtol);
    if (over > 0 && (worst < 0 || over > worstExcess)) {
      worst = i;
      worstExcess = over;
    }
  }
  if (worst >= 0) {
    throw new Error(
      `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
        `(atol ${atol}, rtol ${rtol}; ${actual.length} elements)`,
    );
  }
}

export interface InputSpec {
  shape: Shape;
  /** Host values; random in [low, high) when omitted. */
  data?: ArrayLike<number>;
  low?: number;
  high?: number;
  dtype?: "f32" | "i32" | "u32";
  /** Check the gradient with respect to this input (default: true for f32). */
  grad?: boolean;
}

export interface OpCheck {
  name: string;
  inputs: InputSpec[];
  gpu: (...xs: Tensor[]) => Tensor;
  ref: (...xs: Ref[]) => Ref;
  atol?: number;
  rtol?: number;
  gradAtol?: number;
  gradRtol?: number;
  /** Skip the gradient check (ops with no gradient, e.g. argmax). */
  forwardOnly?: boolean;
  /** Finite-difference step. */
  eps?: number;
  /**
   * The kernel variant class this case exercises (tile layout, vec4 or scalar lanes, …): the
   * browser suite runs the first case of each class per test, since its pipeline builds are slow.
   */
  variant?: string;
}

/** Op checks run and passed so far in this process (the browser suite reports them). */
export const opCheckCounts = { run: 0, passed: 0, sampledOut: 0 };

let sampler: ((spec: OpCheck) => boolean) | null = null;

/** Runs only the cases `keep` accepts (null: all of them); the rest count as sampled out. */
export function sampleOpChecks(keep: ((spec: OpCheck) => boolean) | null): void {
  sampler = keep;
}

/** Fresh draws a check may take when its gradient mismatches only where the reference has a kink. */
const KINK_REDRAWS = 3;

/**
 * Checks forward values and, unless forwardOnly, the gradient of Σ w·op(x) for a random w
 * against central differences of the float64 reference. A central difference straddling a kink
 * (max(a, b) with |a − b| < eps, relu near 0, a pooling window's near-tie) measures a blend of
 * both sides, not a derivative; when every mismatched element sits on one, the inputs are drawn
 * afresh (at most KINK_REDRAWS times) instead of failing on the reference's artefact.
 */
export async function checkOp(spec: OpCheck): Promise<void> {
  if (sampler && !sampler(spec)) {
    opCheckCounts.sampledOut++;
    return;
  }
  opCheckCounts.run++;
  for (let draw = 0;; draw++) {
    const kink = await checkOpOnce(spec);
    if (!kink) break;
    if (draw === KINK_REDRAWS) {
      throw new Error(`${kink}, and so did the ${KINK_REDRAWS} draws before it`);
    }
    console.log(`${kink}: the central difference is no derivative there; inputs redrawn`);
  }
  opCheckCounts.passed++;
}

/** One draw of `checkOp`: null when it passes, what the kink was when only kinks mismatched. */
async function checkOpOnce(spec: OpCheck): Promise<string | null> {
  const { rng, seed } = testRng();
  const what = `${spec.name} (seed ${seed})`;
  const hostInputs = spec.inputs.map((s) =>
    s.data ? Float64Array.from(s.data) : randomData(sizeOf(s.shape), rng, s.low, s.high)
  );
  const tensors = spec.inputs.map((s, i) => {
    const t = Tensor.from(hostInputs[i], s.shape, s.dtype ?? "f32");
    if (!spec.forwardOnly && (s.dtype ?? "f32") === "f32" && s.grad !== false) t.requireGrad();
    return t;
  });
  const refInputs = spec.inputs.map((s, i) => ref(s.shape, hostInputs[i]));
  const expected = spec.ref(...refInputs);
  const out = spec.gpu(...tensors);
  if (out.shape.join() !== expected.shape.join()) {
    throw new Error(`${what}: output shape [${out.shape}], expected [${expected.shape}]`);
  }
  assertClose(await out.data(), expected.data, {
    atol: spec.atol ?? 1e-5,
    rtol: spec.rtol ?? 1e-4,
    what: `${what} forward`,
  });
  if (spec.forwardOnly) return null;

  const w = randomData(out.size, rng);
  out.backward(Tensor.from(w, out.shape));
  const eps = spec.eps ?? 1e-6;
  const atol = spec.gradAtol ?? 1e-4;
  const rtol = spec.gradRtol ?? 1e-3;
  const lossAt = (inputs: Ref[]) => {
    const y = spec.ref(...inputs).data;
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i] * w[i];
    return s;
  };
  const lossMoved = (k: number, i: number, step: number) => {
    const moved = refInputs.map((r) => ({ shape: r.shape, data: r.data.slice() }));
    moved[k].data[i] += step;
    return lossAt(moved);
  };
  const loss = lossAt(refInputs);
  for (let k = 0; k < tensors.length; k++) {
    if (!tensors[k].requiresGrad) continue;
    const grad = tensors[k].grad;
    if (!grad) throw new Error(`${what}: input ${k} received no gradient`);
    const numeric = new Float64Array(hostInputs[k].length);
    for (let i = 0; i < numeric.length; i++) {
      numeric[i] = (lossMoved(k, i, eps) - lossMoved(k, i, -eps)) / (2 * eps);
    }
    const analytic = await grad.data();
    // Smooth at element i: one-sided differences 64× finer agree with each other and with the
    // central one. Across a kink within eps they part by the kink's jump.
    const smooth = (i: number) => {
      const h = eps / 64;
      const right = (lossMoved(k, i, h) - loss) / h;
      const left = (loss - lossMoved(k, i, -h)) / h;
      const tolerance = atol + rtol * Math.abs(numeric[i]);
      return Math.abs(right - left) <= tolerance &&
        Math.abs(numeric[i] - (right + left) / 2) <= tolerance;
    };
    const mismatched = [...numeric.keys()].filter((i) =>
      excess(analytic[i], numeric[i], atol, rtol) > 0
    );
    if (mismatched.length && !mismatched.some(smooth)) {
      for (const t of [...tensors, out]) t.dispose();
      return `${what}: input ${k} element ${
        mismatched[0]
      } lies within ${eps} of a kink of the reference`;
    }
    assertClose(analytic, numeric, { atol, rtol, what: `${what} gradient of input ${k}` });
  }
  for (const t of [...tensors, out]) t.dispose();
  return null;
}

/** Runs `body` under each adapter class's table of `tuning`: the layouts differ between them. */
export async function underEachTable<T>(
  tuning: Tunable<T>,
  body: (table: string) => Promise<void>,
): Promise<void> {
  for (const [name, value] of Object.entries(tuning.table) as [string, T][]) {
    tuning.set(value);
    try {
      await body(name);
    } finally {
      tuning.set(null);
    }
  }
}
