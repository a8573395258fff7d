// An experiment's runs as the runs table shows them: one row per run with its params, its latest
// metric values and its tags, and which param and metric keys become columns.
import { latestMetrics } from "../tracking/search.ts";
import type { RunRecord } from "../tracking/store.ts";
import type { RunRow } from "./islands/RunsTable.tsx";

/** Columns shown at first (the picker adds the others). */
const MAX_PARAM_COLUMNS = 8;
const MAX_METRIC_COLUMNS = 12;

export function runRow(run: RunRecord): RunRow {
  const { info } = run;
  const end = info.endTime ?? (info.status === "RUNNING" ? Date.now() : null);
  const metrics: Record<string, number> = {};
  for (const [key, point] of Object.entries(latestMetrics(run))) metrics[key] = point.value;
  return {
    runId: info.runId,
    runName: info.runName,
    status: run.stale ? "STALE" : info.status,
    startTime: info.startTime,
    durationMs: info.startTime !== null && end !== null ? end - info.startTime : null,
    params: run.params,
    metrics,
    tags: run.tags,
  };
}

/**
 * Every param key (those whose values differ between runs first, then by name) and metric key
 * (by name), and the columns the table starts with: the first params and metrics.
 */
export function columnKeys(rows: RunRow[]): { paramKeys: string[]; metricKeys: string[] } {
  const values = new Map<string, Set<string>>();
  for (const row of rows) {
    for (const [key, value] of Object.entries(row.params)) {
      values.set(key, (values.get(key) ?? new Set()).add(value));
    }
  }
  const varies = (key: string) => (values.get(key)!.size > 1 ? 0 : 1);
  const paramKeys = [...values.keys()].sort((a, b) => varies(a) - varies(b) || a.localeCompare(b));
  const metricKeys = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].sort();
  return { paramKeys, metricKeys };
}

/** The column ids a runs table shows until the user picks others. */
export function defaultColumns(keys: { paramKeys: string[]; metricKeys: string[] }): string[] {
  return [
    ...keys.paramKeys.slice(0, MAX_PARAM_COLUMNS).map((k) => `params.${k}`),
    ...keys.metricKeys.slice(0, MAX_METRIC_COLUMNS).map((k) => `metrics.${k}`),
  ];
}
