// MLflow's validation rules (mlflow/utils/validation.py): what a key, value, id, name or
// artifact path may be, and the limits of one log-batch call. Same rules and error wording as
// MLflow, so a store written here is one MLflow accepts. Pure functions: every store and the Run
// handle share them.
import type { TerminalStatus } from "./store.ts";
import { pythonFloatRepr } from "./yaml.ts";

export const MAX_KEY_LENGTH = 250;
export const MAX_PARAM_VALUE_LENGTH = 6000;
export const MAX_TAG_VALUE_LENGTH = 5000;
export const MAX_EXPERIMENT_NAME_LENGTH = 500;
// mlflow.utils.validation: MAX_PARAMS_TAGS_PER_BATCH, MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH.
export const MAX_PARAMS_TAGS_PER_BATCH = 100;
export const MAX_METRICS_PER_BATCH = 1000;
export const MAX_ENTITIES_PER_BATCH = 1000;

const RUN_ID_RE = /^[a-zA-Z0-9][\w-]{0,255}$/;
const EXPERIMENT_ID_RE = /^[a-zA-Z0-9][\w-]{0,63}$/;
// Python's `^[/\w.\- ]*$` with Unicode \w (letters, numbers, underscore).
const KEY_RE = /^[/\p{L}\p{N}_. -]*$/u;

/** Python's posixpath.normpath. */
function posixNormpath(p: string): string {
  if (p === "") return ".";
  const leading = p.startsWith("/") ? (p.startsWith("//") && !p.startsWith("///") ? 2 : 1) : 0;
  const parts: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part !== ".." || (!leading && parts.length === 0) || parts.at(-1) === "..") {
      parts.push(part);
    } else if (parts.length > 0) parts.pop();
  }
  return "/".repeat(leading) + parts.join("/") || ".";
}

function pathNotUnique(name: string): boolean {
  const norm = posixNormpath(name);
  return norm !== name || norm === "." || norm.startsWith("..") || norm.startsWith("/");
}

/** Whether `name` can be a run id (and so a run folder name). */
export function isRunId(name: string): boolean {
  return RUN_ID_RE.test(name);
}

export function validateKey(
  kind: "metric" | "parameter" | "tag",
  key: unknown,
): asserts key is string {
  if (typeof key !== "string") {
    throw new Error(`Invalid ${kind} name: expected a string, got ${typeof key}.`);
  }
  if (!KEY_RE.test(key)) {
    throw new Error(
      `Invalid ${kind} name: '${key}'. Names may only contain alphanumerics, underscores (_), ` +
        "dashes (-), periods (.), spaces ( ), and slashes (/).",
    );
  }
  if (pathNotUnique(key)) {
    throw new Error(
      `Invalid ${kind} name: '${key}'. Names may be treated as files in certain cases, and must ` +
        `not resolve to other names when treated as such. This name would resolve to ` +
        `'${posixNormpath(key)}'`,
    );
  }
  validateLength(`${kind[0].toUpperCase()}${kind.slice(1)} name`, MAX_KEY_LENGTH, key);
}

export function validateLength(what: string, limit: number, value: string): void {
  const length = [...value].length;
  if (length > limit) {
    throw new Error(
      `${what} '${value.slice(0, 250)}' had length ${length}, which exceeded length limit of ` +
        `${limit}`,
    );
  }
}

/** A param: valid key, string value of at most 6000 characters. */
export function validateParam(key: unknown, value: string): asserts key is string {
  validateKey("parameter", key);
  validateLength("Param value", MAX_PARAM_VALUE_LENGTH, value);
}

/** A tag: valid key, string value of at most 5000 characters. */
export function validateTag(key: unknown, value: string): asserts key is string {
  validateKey("tag", key);
  validateLength("Tag value", MAX_TAG_VALUE_LENGTH, value);
}

/** A metric: valid key, a number (NaN and ±Infinity included), epoch-ms timestamp, integer step. */
export function validateMetric(
  key: unknown,
  value: unknown,
  step: unknown,
  timestamp: unknown,
): asserts key is string {
  validateKey("metric", key);
  if (typeof value !== "number") {
    throw new Error(
      `Got invalid value ${String(value)} for metric '${key}' (timestamp=${timestamp}). ` +
        "Please specify value as a valid double (64-bit floating point)",
    );
  }
  if (!Number.isSafeInteger(timestamp) || (timestamp as number) < 0) {
    throw new Error(
      `Got invalid timestamp ${timestamp} for metric '${key}' (value=${value}). Timestamp ` +
        "must be a nonnegative integer (epoch milliseconds)",
    );
  }
  if (!Number.isSafeInteger(step)) {
    throw new Error(
      `Got invalid step ${step} for metric '${key}' (value=${value}). Step must be an integer.`,
    );
  }
}

/** What one log-batch call carries (MLflow's LogBatch: params, metrics and tags). */
export interface BatchEntries {
  params?: readonly { key: string; value: string }[];
  metrics?: readonly { key: string; value: number; timestamp: number; step: number }[];
  tags?: readonly { key: string; value: string }[];
}

/**
 * MLflow's checks of a log-batch request, all done before anything is written: every entry
 * valid, at most 1000 metrics, 100 params and 100 tags (1000 entries in all), no param key twice.
 */
export function validateBatch(batch: BatchEntries): void {
  const params = batch.params ?? [];
  const metrics = batch.metrics ?? [];
  const tags = batch.tags ?? [];
  for (const p of params) validateParam(p.key, p.value);
  for (const m of metrics) validateMetric(m.key, m.value, m.step, m.timestamp);
  for (const t of tags) validateTag(t.key, t.value);
  const total = params.length + metrics.length + tags.length;
  if (
    metrics.length > MAX_METRICS_PER_BATCH || params.length > MAX_PARAMS_TAGS_PER_BATCH ||
    tags.length > MAX_PARAMS_TAGS_PER_BATCH || total > MAX_ENTITIES_PER_BATCH
  ) {
    throw new Error(
      `A batch logging request can contain at most ${MAX_METRICS_PER_BATCH} metrics, ` +
        `${MAX_PARAMS_TAGS_PER_BATCH} params and ${MAX_PARAMS_TAGS_PER_BATCH} tags ` +
        `(${MAX_ENTITIES_PER_BATCH} in all); got ${metrics.length} metrics, ${params.length} ` +
        `params and ${tags.length} tags`,
    );
  }
  const seen = new Set<string>();
  const duplicates = new Set<string>();
  for (const p of params) (seen.has(p.key) ? duplicates : seen).add(p.key);
  if (duplicates.size > 0) {
    throw new Error(
      `Duplicate parameter keys have been submitted: [${[...duplicates].join(", ")}]. Please ` +
        "ensure the request contains only one param value per param key.",
    );
  }
}

/** The error MLflow raises when a logged param would change value (params are immutable). */
export function paramChangedError(
  runId: string,
  key: string,
  previous: string,
  value: string,
): Error {
  return new Error(
    `Changing param values is not allowed. Param with key='${key}' was already logged ` +
      `with value='${previous}' for run ID='${runId}'. Attempted logging new value ` +
      `'${value}'.`,
  );
}

/** How a run may end: FINISHED, FAILED or KILLED, at an epoch-ms end time. */
export function validateTermination(status: TerminalStatus, endTime: number): void {
  if (!["FINISHED", "FAILED", "KILLED"].includes(status)) {
    throw new Error(`Run status must be FINISHED, FAILED or KILLED to end a run, got '${status}'`);
  }
  if (!Number.isSafeInteger(endTime) || endTime < 0) {
    throw new Error(`Run end time must be epoch milliseconds, got ${endTime}`);
  }
}

export function validateRunId(runId: string): void {
  if (typeof runId !== "string" || !RUN_ID_RE.test(runId)) {
    throw new Error(`Invalid run ID: '${runId}'`);
  }
}

export function validateExperimentId(experimentId: string): void {
  if (typeof experimentId !== "string" || !EXPERIMENT_ID_RE.test(experimentId)) {
    throw new Error(`Invalid experiment ID: '${experimentId}'`);
  }
}

export function validateExperimentName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name === "") {
    throw new Error(`Invalid experiment name: '${String(name)}'. Expected a non-empty string.`);
  }
  if ([...name].length > MAX_EXPERIMENT_NAME_LENGTH) {
    throw new Error(
      `Experiment name exceeds the maximum length of ${MAX_EXPERIMENT_NAME_LENGTH} characters`,
    );
  }
}

/** Artifact paths are relative, `/`-separated and may not climb out of the artifact root. */
export function validateArtifactPath(relPath: string, what: string): void {
  if (
    typeof relPath !== "string" || pathNotUnique(relPath) || relPath.includes("\\") ||
    relPath.includes("\0") || /^[A-Za-z]:/.test(relPath)
  ) {
    throw new Error(
      `${what}: invalid artifact path '${relPath}', expected a normalised relative path without ` +
        "'..' (e.g. 'plots/loss.png')",
    );
  }
}

/** Python's `str(value)` for what MLflow stores as a param or tag. */
export function valueToString(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "True" : "False";
  if (typeof value === "number") {
    return Number.isInteger(value) ? String(value) : pythonFloatRepr(value);
  }
  if (typeof value === "bigint") return value.toString();
  return JSON.stringify(value);
}
