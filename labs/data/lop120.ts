// LOP-120 ("latent object permanence", spec labs/TP5.md §3.4): synthetic latent videos of 120
// frames × 16 channels standing in for a frozen frame encoder's output. A target object is seen
// early, leaves the view for 80–96 frames while a lure passes and the background moves, then
// comes back for the whole 20-frame horizon: predicting its appearance needs a memory that
// reaches 80+ frames back. Everything is drawn from seeded generators; nothing is downloaded.
import { Rng } from "../../engine/random.ts";
import type { TapSizes } from "../../models/htap.ts";

export const FRAMES = 120;
export const CHANNELS = 16;
/** Context = frames 0–99; horizon = frames 100–119. */
export const CONTEXT = 100;
export const HORIZON = FRAMES - CONTEXT;
export const APPEARANCE = 8;
export const BACKGROUND = 6;
/** Channels 0–13 are predicted; 14 (visibility) and 15 (identity) are the known script. */
export const CONTENT = APPEARANCE + BACKGROUND;
export const PROTOTYPES = 16;
/** Step input: content_t (14), flags_t (2), flags_{t+1} (2). */
export const STEP_INPUT = CONTENT + 4;
export const CODEBOOK_SEED = 1234;
/** The sequence format as the LOP-120 models take it. */
export const LOP120_SIZES: TapSizes = {
  frames: FRAMES,
  context: CONTEXT,
  content: CONTENT,
  stepInput: STEP_INPUT,
};

export interface Lop120Options {
  n: number;
  seed: number;
  /** Fixed gap (frames out of view before re-entry) instead of the ≤ 20-frame sighting window. */
  gap?: number;
  /** A lure object between sighting and re-entry (default true; dropped where it cannot fit). */
  lure?: boolean;
  /** Background frequency range in cycles per frame (default [0.02, 0.05]). */
  bgFreq?: [number, number];
  /** Background noise std (default 0.02). */
  bgNoise?: number;
}

/** A visible interval [start, start + length). */
export interface Span {
  start: number;
  length: number;
}

export interface Lop120 {
  n: number;
  /** [n, 120, 16] frames. */
  frames: Float32Array;
  /** Target prototype index per sequence. */
  target: Int32Array;
  sighting: Span[];
  lure: (Span | null)[];
  /** Context step inputs [n, 100, 18] for steps t = 0 … 99 (true content). */
  contextInput: Float32Array;
  /** Flags of the free-running steps [n, 19, 4]: flags_t, flags_{t+1} for t = 100 … 118. */
  horizonFlags: Float32Array;
  /** Targets [n, 119, 14]: content of frames 1 … 119. */
  targets: Float32Array;
}

/** The 16 appearance prototypes P_k ∈ ℝ⁸ (row-major [16, 8]), fixed by CODEBOOK_SEED. */
export function codebook(): Float32Array {
  const rng = new Rng(CODEBOOK_SEED);
  return Float32Array.from({ length: PROTOTYPES * APPEARANCE }, () => rng.normal());
}

/** Nearest prototype (Euclidean) of an 8-vector. */
export function nearestPrototype(book: Float32Array, a: ArrayLike<number>, offset = 0): number {
  let best = 0, bestD = Infinity;
  for (let k = 0; k < PROTOTYPES; k++) {
    let d = 0;
    for (let c = 0; c < APPEARANCE; c++) d += (a[offset + c] - book[k * APPEARANCE + c]) ** 2;
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

function randInt(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

export function generateLop120(options: Lop120Options): Lop120 {
  const { n, seed, gap, lure: withLure = true, bgFreq = [0.02, 0.05], bgNoise = 0.02 } = options;
  if (!Number.isInteger(n) || n < 1) throw new Error(`generateLop120: n ${n}, expected ≥ 1`);
  if (gap !== undefined && !(Number.isInteger(gap) && gap >= 1 && gap <= CONTEXT - 8)) {
    throw new Error(`generateLop120: gap ${gap}, expected an integer in [1, ${CONTEXT - 8}]`);
  }
  const book = codebook();
  const rng = new Rng(seed);
  const frames = new Float32Array(n * FRAMES * CHANNELS);
  const target = new Int32Array(n);
  const sighting: Span[] = [];
  const lures: (Span | null)[] = [];
  const show = (base: number, span: Span, appearance: number[], identity: number) => {
    for (let t = span.start; t < span.start + span.length; t++) {
      const f = base + t * CHANNELS;
      for (let c = 0; c < APPEARANCE; c++) frames[f + c] = appearance[c] + rng.normal(0, 0.05);
      frames[f + 14] = 1;
      frames[f + 15] = identity;
    }
  };
  for (let i = 0; i < n; i++) {
    const base = i * FRAMES * CHANNELS;
    const k = rng.int(PROTOTYPES);
    target[i] = k;
    const jitter = (p: number) =>
      Array.from({ length: APPEARANCE }, (_, c) => book[p * APPEARANCE + c] + 0.1 * rng.normal());
    const a = jitter(k);
    const length = randInt(rng, 4, 8);
    const start = gap === undefined ? randInt(rng, 0, 20 - length) : CONTEXT - gap - length;
    const seen: Span = { start, length };
    sighting.push(seen);
    let lureSpan: Span | null = null;
    if (withLure) {
      const lureLength = randInt(rng, 4, 8);
      const lo = seen.start + seen.length + 5, hi = CONTEXT - lureLength - 6;
      if (lo <= hi) {
        let other = rng.int(PROTOTYPES - 1);
        if (other >= k) other++;
        lureSpan = { start: randInt(rng, lo, hi), length: lureLength };
        show(base, lureSpan, jitter(other), -1);
      }
    }
    lures.push(lureSpan);
    show(base, seen, a, 1);
    show(base, { start: CONTEXT, length: HORIZON }, a, 1);
    for (let j = 0; j < BACKGROUND; j++) {
      const f = rng.uniform(bgFreq[0], bgFreq[1]);
      const phase = rng.uniform(0, 2 * Math.PI);
      for (let t = 0; t < FRAMES; t++) {
        frames[base + t * CHANNELS + APPEARANCE + j] = Math.sin(2 * Math.PI * f * t + phase) +
          rng.normal(0, bgNoise);
      }
    }
  }
  return { n, frames, target, sighting, lure: lures, ...stepArrays(frames, n) };
}

/** The model-facing arrays: teacher-forced context inputs, horizon flags, targets. */
function stepArrays(frames: Float32Array, n: number) {
  const contextInput = new Float32Array(n * CONTEXT * STEP_INPUT);
  const horizonFlags = new Float32Array(n * (HORIZON - 1) * 4);
  const targets = new Float32Array(n * (FRAMES - 1) * CONTENT);
  for (let i = 0; i < n; i++) {
    const frame = (t: number) => i * FRAMES * CHANNELS + t * CHANNELS;
    for (let t = 0; t < FRAMES - 1; t++) {
      const now = frame(t), next = frame(t + 1);
      const flags = [frames[now + 14], frames[now + 15], frames[next + 14], frames[next + 15]];
      if (t < CONTEXT) {
        const o = (i * CONTEXT + t) * STEP_INPUT;
        contextInput.set(frames.subarray(now, now + CONTENT), o);
        contextInput.set(flags, o + CONTENT);
      } else {
        horizonFlags.set(flags, (i * (HORIZON - 1) + t - CONTEXT) * 4);
      }
      targets.set(frames.subarray(next, next + CONTENT), (i * (FRAMES - 1) + t) * CONTENT);
    }
  }
  return { contextInput, horizonFlags, targets };
}
