// Metric histories as the charts get them: downsampled on the server so that a 100k-point
// history never travels whole (min and max of each bucket survive, so spikes stay visible).
import type { MetricPoint, RunRecord } from "../tracking/store.ts";
import type { RunMetrics } from "./islands/MetricCharts.tsx";
import type { Series } from "./islands/series.ts";

/** Points per metric sent to a chart; a 340-pixel chart shows no more. */
export const MAX_CHART_POINTS = 1000;

/**
 * At most `max` points of `points` (max ≥ 4): the first and the last, and of each of
 * (max − 2) / 2 equal index buckets in between, its lowest and its highest value, in order.
 */
export function downsample(points: readonly MetricPoint[], max = MAX_CHART_POINTS): Series {
  const series: Series = { step: [], value: [], time: [], total: points.length };
  const keep = (p: MetricPoint) => {
    series.step.push(p.step);
    series.value.push(p.value);
    series.time.push(p.timestamp);
  };
  if (points.length <= max) {
    points.forEach(keep);
    return series;
  }
  const inner = points.length - 2;
  const buckets = Math.floor((max - 2) / 2);
  keep(points[0]);
  for (let b = 0; b < buckets; b++) {
    const start = 1 + Math.floor((b * inner) / buckets);
    const end = 1 + Math.floor(((b + 1) * inner) / buckets);
    let lo = start, hi = start;
    for (let i = start + 1; i < end; i++) {
      // NaN compares false both ways: a bucket of NaNs keeps its first point.
      if (points[i].value < points[lo].value) lo = i;
      if (points[i].value > points[hi].value) hi = i;
    }
    keep(points[Math.min(lo, hi)]);
    if (hi !== lo) keep(points[Math.max(lo, hi)]);
  }
  keep(points[points.length - 1]);
  return series;
}

/** A run's status and its downsampled metric histories. */
export function runMetrics(run: RunRecord): RunMetrics {
  const series: Record<string, Series> = {};
  for (const [key, points] of Object.entries(run.metrics)) series[key] = downsample(points);
  return { status: run.info.status, series };
}
