// What the three parts of `deno task train tp5` share: options, the units each part trains and
// the summary it builds from their results, and the attention-span metrics of spec §2.6 computed
// from real weights.
import type { ProgressWriter } from "../../engine/train/progress.ts";
import type { TrackingStore } from "../../tracking/store.ts";
import type { LabUnit } from "../registry.ts";
import type { FoundUnit } from "../unit_runs.ts";

export interface Tp5Options {
  /** Base seed: model and data seeds derive from it (each part logs the ones it used). */
  seed: number;
  /** Seeds for Part 3's main pair (spec: 3). */
  seeds: number;
  /** Overrides a part's epoch count (undefined: the spec's). */
  epochs?: number;
  /** Tiny sizes for CI: shapes, Σα = 1, finite and falling loss, files written. */
  quick: boolean;
  /** The plan key every unit run is tagged with (labs/unit_runs.ts). */
  plan: string;
  /** Where Part-3 models keep their per-epoch training checkpoints (`tp5/<unit>.safetensors`). */
  checkpointDir: string;
  /** Continue each Part-3 model from its checkpoint, when it has one. */
  resume: boolean;
  out: ProgressWriter;
}

/** One independent training of a part: what `--unit` runs. */
export interface Tp5Unit extends LabUnit {
  /** Trains the unit in its own run of the part's experiment, logging its result for the summary. */
  train(store: TrackingStore): Promise<void>;
}

export interface Tp5Part {
  part: 1 | 2 | 3;
  experiment: string;
  /** The heading printed before the part's units train. */
  heading(options: Tp5Options): string;
  units(options: Tp5Options): Tp5Unit[];
  /** The part's checks (and its summary run, if it has one) from every unit's logged result. */
  summarize(
    store: TrackingStore,
    options: Tp5Options,
    found: ReadonlyMap<string, FoundUnit<unknown>>,
  ): Promise<PartResult>;
}

/** One line of the final summary: our number next to the students' and the criterion. */
export interface Check {
  name: string;
  /** Our measured value, formatted. */
  value: string;
  /** What the students (or the calibration) got, formatted; "—" when nothing comparable. */
  reference: string;
  /** The criterion in words, e.g. "≤ 0.10". */
  criterion: string;
  pass: boolean;
  /**
   * Reported, not enforced: a criterion stated for hardware this run is not on (spec §3.6 #8
   * budgets a small GPU); printed as "INFO" and left out of the exit status.
   */
  informational?: boolean;
}

export interface PartResult {
  part: 1 | 2 | 3;
  title: string;
  checks: Check[];
  /** MLflow run ids this part wrote. */
  runIds: string[];
  seconds: number;
}

/** Spec §2.6, averaged over query rows. */
export interface SpanMetrics {
  attn_entropy_norm: number;
  attn_effective_span: number;
  attn_span_count: number;
  attn_mean_position: number;
  attn_mean_lag: number;
  attn_max_weight: number;
}

/**
 * Span metrics of `rows` attention rows of `keys` weights each (row-major). `queryTime(r)` is the
 * time index of row r's query (for the lag); `valid(r)` keys the row may attend to (default all,
 * causal rows pass their visible count so entropy is normalised by ln of that count).
 */
export function attentionSpan(
  weights: ArrayLike<number>,
  rows: number,
  keys: number,
  queryTime: (row: number) => number,
  valid: (row: number) => number = () => keys,
): SpanMetrics {
  if (weights.length !== rows * keys) {
    throw new Error(`attentionSpan: ${weights.length} weights, expected ${rows}×${keys}`);
  }
  const sum = {
    entropy: 0,
    entropyNorm: 0,
    count: 0,
    position: 0,
    lag: 0,
    max: 0,
  };
  for (let r = 0; r < rows; r++) {
    const n = valid(r);
    let entropy = 0, position = 0, max = 0, count = 0;
    for (let j = 0; j < n; j++) {
      const a = weights[r * keys + j];
      if (a > 0) entropy -= a * Math.log(a);
      position += j * a;
      if (a > max) max = a;
      if (a > 1 / n) count++;
    }
    sum.entropy += entropy;
    sum.entropyNorm += n > 1 ? entropy / Math.log(n) : 0;
    sum.count += count;
    sum.position += position;
    sum.lag += queryTime(r) - position;
    sum.max += max;
  }
  return {
    attn_entropy_norm: sum.entropyNorm / rows,
    attn_effective_span: Math.exp(sum.entropy / rows),
    attn_span_count: sum.count / rows,
    attn_mean_position: sum.position / rows,
    attn_mean_lag: sum.lag / rows,
    attn_max_weight: sum.max / rows,
  };
}

/** Mean and (population) standard deviation. */
export function meanStd(values: readonly number[]): { mean: number; std: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) };
}

/** A number with `digits` significant digits, as the summary prints it. */
export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)) return x.toExponential(digits - 1);
  return Number(x.toPrecision(digits)).toString();
}
