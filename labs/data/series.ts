// TP5 Part 2's synthetic forecasting data (spec labs/TP5.md §2.1, seed 001's generator): each
// sample is its own series x(t) = sin(2π f₁ t) + 0.5 sin(2π f₂ t) + 0.01·o·t + ε(t) over integer
// steps t = 0 … inputLen + horizon − 1, with f₁ ~ U(0.01, 0.1), f₂ ~ U(0.05, 0.2), o ~ U(−1, 1),
// ε ~ N(0, 0.1²) i.i.d. and no phase. The first `inputLen` steps are the encoder input, the rest
// the target. Values are O(1) and left unnormalised, as in the lab.
import { Rng } from "../../engine/random.ts";

export interface SeriesOptions {
  /** Number of samples (default 1000). */
  n?: number;
  /** Encoder steps (default 50). */
  inputLen?: number;
  /** Forecast steps (default 20; the handout's 10 is the `horizon: 10` preset). */
  horizon?: number;
  /** Independent series stacked as channels (default 1). */
  features?: number;
  /** Standard deviation of ε (default 0.1). */
  noise?: number;
  seed: number;
}

/** X [n, inputLen, features] and y [n, horizon, features], row-major. */
export interface SeriesData {
  x: Float32Array;
  y: Float32Array;
  n: number;
  inputLen: number;
  horizon: number;
  features: number;
}

/** The spec's sizes: 1000 training samples (last 20 % validate), 1000 independent test ones. */
export const SERIES_DEFAULTS = { n: 1000, testN: 1000, inputLen: 50, horizon: 20 } as const;

function checkCount(what: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`generateSeries: ${what} ${value}, expected an integer ≥ ${min}`);
  }
}

/** Draws `n` samples; the same options and seed always give the same arrays. */
export function generateSeries(options: SeriesOptions): SeriesData {
  const {
    n = SERIES_DEFAULTS.n,
    inputLen = SERIES_DEFAULTS.inputLen,
    horizon = SERIES_DEFAULTS.horizon,
    features = 1,
    noise = 0.1,
    seed,
  } = options;
  checkCount("n", n, 1);
  checkCount("inputLen", inputLen, 1);
  checkCount("horizon", horizon, 1);
  checkCount("features", features, 1);
  if (!(noise >= 0)) throw new Error(`generateSeries: noise ${noise}, expected ≥ 0`);
  const rng = new Rng(seed);
  const length = inputLen + horizon;
  const x = new Float32Array(n * inputLen * features);
  const y = new Float32Array(n * horizon * features);
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < features; f++) {
      const f1 = rng.uniform(0.01, 0.1);
      const f2 = rng.uniform(0.05, 0.2);
      const slope = 0.01 * rng.uniform(-1, 1);
      for (let t = 0; t < length; t++) {
        const value = Math.sin(2 * Math.PI * f1 * t) + 0.5 * Math.sin(2 * Math.PI * f2 * t) +
          slope * t + rng.normal(0, noise);
        if (t < inputLen) x[(i * inputLen + t) * features + f] = value;
        else y[(i * horizon + t - inputLen) * features + f] = value;
      }
    }
  }
  return { x, y, n, inputLen, horizon, features };
}

export interface SeriesSplits {
  /** Training samples; the last 20 % serve as validation (Keras validation_split). */
  train: SeriesData;
  /** Independent test samples drawn with `testSeed`. */
  test: SeriesData;
  trainSeed: number;
  testSeed: number;
}

/** Training and test sets from one base seed, with distinct derived seeds (both logged). */
export function seriesSplits(
  seed: number,
  options: Omit<SeriesOptions, "seed"> & { testN?: number } = {},
): SeriesSplits {
  const { testN = SERIES_DEFAULTS.testN, ...rest } = options;
  const trainSeed = seed * 2 + 1001;
  const testSeed = seed * 2 + 2002;
  return {
    train: generateSeries({ ...rest, seed: trainSeed }),
    test: generateSeries({ ...rest, n: testN, seed: testSeed }),
    trainSeed,
    testSeed,
  };
}

/**
 * Teacher-forcing decoder input [n, horizon, features]: step k holds y_{k−1}, step 0 the start
 * value (0, or the last observed x with `start: "last"`). Never y_k itself (no target leakage).
 */
export function decoderInputs(data: SeriesData, start: "zero" | "last" = "zero"): Float32Array {
  const { n, inputLen, horizon, features } = data;
  const out = new Float32Array(n * horizon * features);
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < features; f++) {
      out[i * horizon * features + f] = start === "last"
        ? data.x[(i * inputLen + inputLen - 1) * features + f]
        : 0;
      for (let k = 1; k < horizon; k++) {
        out[(i * horizon + k) * features + f] = data.y[(i * horizon + k - 1) * features + f];
      }
    }
  }
  return out;
}
