// An experiment's runs as the runs table shows them: one row per run with its params, its latest
// metric values and its tags, and which param and metric keys become columns.
import { latestMetrics } from "../tracking/search.ts";
import type { RunRecord } from "../tracking/store.ts";
import type { RunRow } from "./islands/RunsTable.tsx";

/** Param columns at most: the params whose values differ between runs come first. */
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

/** Param keys (varying ones first, then by name) and metric keys (by name) shown as columns. */
export function columnKeys(rows: RunRow[]): { paramKeys: string[]; metricKeys: string[] } {
  const values = new Map<string, Set<string>>();
  for (const row of rows) {
    for (const [key, value] of Object.entries(row.params)) {
      values.set(key, (values.get(key) ?? new Set()).add(value));
    }
  }
  const varies = (key: string) => (values.get(key)!.size > 1 ? 0 : 1);
  const paramKeys = [...values.keys()]
    .sort((a, b) => varies(a) - varies(b) || a.localeCompare(b))
    .slice(0, MAX_PARAM_COLUMNS);
  const metricKeys = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].sort()
    .slice(0, MAX_METRIC_COLUMNS);
  return { paramKeys, metricKeys };
}
