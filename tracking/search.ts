// What a run search means, shared by every TrackingStore so backends agree: MLflow's "latest"
// metric value, filter clauses, ordering (missing values last) and the default order.
import type {
  MetricPoint,
  RunField,
  RunFilter,
  RunOrder,
  RunQuery,
  RunRecord,
  RunStatus,
} from "./store.ts";

/**
 * The value MLflow shows for each metric: the entry with the largest (step, timestamp, value),
 * which also makes the duplicated lines of MLflow 3 stores harmless.
 */
export function latestMetrics(run: RunRecord): Record<string, MetricPoint> {
  const out: Record<string, MetricPoint> = {};
  for (const [key, history] of Object.entries(run.metrics)) {
    if (history.length === 0) continue;
    let best = history[0];
    for (const p of history) {
      if (
        p.step > best.step || (p.step === best.step && p.timestamp > best.timestamp) ||
        (p.step === best.step && p.timestamp === best.timestamp && p.value > best.value)
      ) best = p;
    }
    out[key] = best;
  }
  return out;
}

type FieldValue = string | number | null;

/** The run's value of `field`: a number for metrics and times, else a string; null if absent. */
export function fieldValue(
  run: RunRecord,
  field: RunField,
  latest = latestMetrics(run),
): FieldValue {
  const dot = field.indexOf(".");
  const kind = field.slice(0, dot);
  const key = field.slice(dot + 1);
  switch (kind) {
    case "metrics":
      return latest[key]?.value ?? null;
    case "params":
      return run.params[key] ?? null;
    case "tags":
      return run.tags[key] ?? null;
    case "attributes":
      return attributeValue(run, key);
  }
  throw invalidField(field);
}

function invalidField(field: string): Error {
  return new Error(
    `Invalid search field '${field}': expected metrics.<key>, params.<key>, tags.<key> or ` +
      "attributes.(run_id|run_name|status|start_time|end_time|user_id)",
  );
}

function attributeValue(run: RunRecord, key: string): FieldValue {
  const info = run.info;
  switch (key) {
    case "run_id":
      return info.runId;
    case "run_name":
      return info.runName;
    case "status":
      return info.status;
    case "user_id":
      return info.userId;
    case "start_time":
      return info.startTime;
    case "end_time":
      return info.endTime;
  }
  throw invalidField(`attributes.${key}`);
}

/** SQL LIKE: `%` any run of characters, `_` exactly one. */
function likePattern(pattern: string, caseInsensitive: boolean): RegExp {
  const body = [...pattern].map((c) =>
    c === "%" ? "[\\s\\S]*" : c === "_" ? "[\\s\\S]" : c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")
  ).join("");
  return new RegExp(`^${body}$`, caseInsensitive ? "iu" : "u");
}

function matches(actual: FieldValue, filter: RunFilter): boolean {
  if (actual === null) return false;
  const { op, value } = filter;
  if (op === "LIKE" || op === "ILIKE") {
    return likePattern(String(value), op === "ILIKE").test(String(actual));
  }
  // Numbers compare as numbers (a string filter value on a metric is parsed), strings as strings.
  const a = actual;
  const b = typeof actual === "number" ? Number(value) : String(value);
  switch (op) {
    case "=":
      return a === b;
    case "!=":
      return a !== b;
    case "<":
      return a < b;
    case "<=":
      return a <= b;
    case ">":
      return a > b;
    case ">=":
      return a >= b;
  }
  throw new Error(`Invalid search operator '${op}'`);
}

/** Runs whose value of `field` is missing (or NaN) sort after every other, either direction. */
function compareBy(a: FieldValue, b: FieldValue, descending: boolean): number {
  const aMissing = a === null || Number.isNaN(a);
  const bMissing = b === null || Number.isNaN(b);
  if (aMissing || bMissing) return Number(aMissing) - Number(bMissing);
  const order = a! < b! ? -1 : a! > b! ? 1 : 0;
  return descending ? -order : order;
}

/** MLflow's default: start time newest first, then run id. */
function compareDefault(a: RunRecord, b: RunRecord): number {
  return (b.info.startTime ?? 0) - (a.info.startTime ?? 0) ||
    (a.info.runId < b.info.runId ? -1 : a.info.runId > b.info.runId ? 1 : 0);
}

/**
 * The runs of `runs` that `query` selects, in its order: lifecycle, statuses and every `where`
 * clause must hold. `experimentIds` is the store's business (it picks which runs to pass in).
 */
export function selectRuns(runs: readonly RunRecord[], query: RunQuery): RunRecord[] {
  const lifecycle = query.lifecycle ?? "active";
  const statuses = query.statuses && new Set<RunStatus>(query.statuses);
  const where = query.where ?? [];
  const orderBy: readonly RunOrder[] = query.orderBy ?? [];
  const rows = runs.map((run) => ({ run, latest: latestMetrics(run) })).filter(({ run, latest }) =>
    (lifecycle === "all" || run.info.lifecycleStage === lifecycle) &&
    (!statuses || statuses.has(run.info.status)) &&
    where.every((filter) => matches(fieldValue(run, filter.field, latest), filter))
  );
  const keyed = rows.map(({ run, latest }) => ({
    run,
    keys: orderBy.map((o) => fieldValue(run, o.field, latest)),
  }));
  keyed.sort((x, y) => {
    for (let i = 0; i < orderBy.length; i++) {
      const c = compareBy(x.keys[i], y.keys[i], orderBy[i].descending ?? false);
      if (c !== 0) return c;
    }
    return compareDefault(x.run, y.run);
  });
  const selected = keyed.map((k) => k.run);
  return query.maxResults === undefined ? selected : selected.slice(0, query.maxResults);
}
