// Synthetic tasks of TP5 Part 1 (spec labs/TP5.md §1.5), generated in-process from a seed:
// DP's random-sum regression (seed 001) and JB's 3-class "where is the burst" task.
import { Rng } from "../../engine/random.ts";

export interface SequenceShape {
  samples: number;
  steps: number;
  features: number;
}

export interface SumTask extends SequenceShape {
  /** [samples × steps × features] row-major, N(0, 1). */
  x: Float32Array;
  /** [samples], Σ_t x[:, t, 0] / √steps (unit variance; raw-scale MSE = this MSE × steps). */
  y: Float32Array;
  /** √steps: multiply y (and √MSE) by it to get DP's raw scale. */
  yScale: number;
}

/** Half-open time range [start, end) of a sample's burst. */
export interface Segment {
  start: number;
  end: number;
}

export interface BurstTask extends SequenceShape {
  /** [samples × steps × features]: N(1, 0.2) on the burst, N(0, 0.1) elsewhere. */
  x: Float32Array;
  /** [samples] class ids 0 (first half), 1 (second half), 2 (middle third). */
  labels: Int32Array;
  /** The burst of each sample (for shading figures and in-burst attention mass). */
  segments: Segment[];
}

const DEFAULT_SHAPE: SequenceShape = { samples: 1000, steps: 50, features: 10 };

function checkShape(task: string, shape: SequenceShape): void {
  for (const [what, n] of Object.entries(shape)) {
    if (!Number.isInteger(n) || n < 1) {
      throw new Error(`${task}: ${what} ${n}, expected an integer ≥ 1`);
    }
  }
}

/** DP's task: X ~ N(0, 1), y = Σ_t X[:, t, 0], standardised by √T (spec §1.5 recommendation). */
export function sumTask(seed: number, shape: Partial<SequenceShape> = {}): SumTask {
  const s = { ...DEFAULT_SHAPE, ...shape };
  checkShape("sumTask", s);
  const rng = new Rng(seed);
  const x = new Float32Array(s.samples * s.steps * s.features);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const yScale = Math.sqrt(s.steps);
  const y = new Float32Array(s.samples);
  for (let n = 0; n < s.samples; n++) {
    let sum = 0;
    for (let t = 0; t < s.steps; t++) sum += x[(n * s.steps + t) * s.features];
    y[n] = sum / yScale;
  }
  return { ...s, x, y, yScale };
}

/**
 * The burst segment of class `label` at T steps: first half [0, T/2), second half [T/2, T),
 * middle ⌊T/3⌋ < t < ⌊2T/3⌋ (JB's 16 < t < 33 at T = 50).
 */
export function burstSegment(label: number, steps: number): Segment {
  const half = Math.floor(steps / 2);
  if (label === 0) return { start: 0, end: half };
  if (label === 1) return { start: half, end: steps };
  if (label === 2) return { start: Math.floor(steps / 3) + 1, end: Math.floor((2 * steps) / 3) };
  throw new Error(`burstSegment: class ${label}, expected 0, 1 or 2`);
}

/** JB's task (seed 42 in JB's script): classes drawn uniformly, every feature bursts. */
export function burstTask(seed: number, shape: Partial<SequenceShape> = {}): BurstTask {
  const s = { ...DEFAULT_SHAPE, ...shape };
  checkShape("burstTask", s);
  if (s.steps < 6) throw new Error(`burstTask: steps ${s.steps}, expected ≥ 6 (three segments)`);
  const rng = new Rng(seed);
  const x = new Float32Array(s.samples * s.steps * s.features);
  const labels = new Int32Array(s.samples);
  const segments: Segment[] = [];
  for (let n = 0; n < s.samples; n++) {
    const label = labels[n] = rng.int(3);
    const segment = burstSegment(label, s.steps);
    segments.push(segment);
    for (let t = 0; t < s.steps; t++) {
      const inBurst = t >= segment.start && t < segment.end;
      for (let f = 0; f < s.features; f++) {
        x[(n * s.steps + t) * s.features + f] = inBurst ? rng.normal(1, 0.2) : rng.normal(0, 0.1);
      }
    }
  }
  return { ...s, x, labels, segments };
}
