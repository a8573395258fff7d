// Metric series as the charts receive them, and the smoothing the charts apply. Shared by the
// server (which downsamples histories into this shape) and the islands (which chart it).

/** One metric's history, columnar; `total` counts the points before downsampling. */
export interface Series {
  step: number[];
  value: number[];
  /** Epoch milliseconds. */
  time: number[];
  total: number;
}

/**
 * TensorBoard's smoothing: an exponential moving average debiased for its start, so the first
 * points are not pulled towards zero. `weight` 0 returns the values unchanged.
 */
export function smooth(values: readonly number[], weight: number): number[] {
  let last = 0;
  let debias = 0;
  return values.map((value) => {
    if (!Number.isFinite(value)) return value;
    last = last * weight + (1 - weight) * value;
    debias = debias * weight + (1 - weight);
    return last / debias;
  });
}

/** Compact numbers for tables: 4 significant digits, integers as they are. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x) && Math.abs(x) < 1e9) return String(x);
  const abs = Math.abs(x);
  return abs !== 0 && (abs < 1e-3 || abs >= 1e6) ? x.toExponential(3) : x.toPrecision(4);
}

export function formatDuration(ms: number | null): string {
  if (ms === null || ms < 0) return "";
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function formatTime(epochMs: number | null): string {
  return epochMs === null ? "" : new Date(epochMs).toISOString().slice(0, 19).replace("T", " ");
}
