// The tracking store interface: what the labs write runs through (tracking/run.ts) and what the
// web UI reads runs from. MLflow's file store (tracking/file_store.ts) is one implementation; a
// second backend implements TrackingStore and is picked by openStore from the URI's scheme.
import { FileStore } from "./file_store.ts";
import { envVar } from "./context.ts";

export type RunStatus = "RUNNING" | "SCHEDULED" | "FINISHED" | "FAILED" | "KILLED";
/** The statuses a run ends with. */
export type TerminalStatus = "FINISHED" | "FAILED" | "KILLED";

export interface Experiment {
  experimentId: string;
  name: string;
  artifactLocation: string;
  /** `active` or `deleted`. */
  lifecycleStage: string;
  creationTime: number | null;
  lastUpdateTime: number | null;
  tags: Record<string, string>;
}

export interface MetricPoint {
  timestamp: number;
  value: number;
  step: number;
}

export interface RunInfo {
  runId: string;
  runName: string;
  experimentId: string;
  userId: string;
  status: RunStatus;
  startTime: number | null;
  endTime: number | null;
  /** `active` or `deleted`. */
  lifecycleStage: string;
  artifactUri: string;
}

/** A run's link to a logged model it produced (MLflow 3 `outputs/<model id>/meta.yaml`). */
export interface RunOutput {
  modelId: string;
  step: number;
}

export interface RunRecord {
  info: RunInfo;
  params: Record<string, string>;
  /** Full history per key, in logging order (MLflow 3 stores may repeat lines; see latestMetrics). */
  metrics: Record<string, MetricPoint[]>;
  tags: Record<string, string>;
  outputs: RunOutput[];
  /** What was missing or malformed (the run is still returned as far as it could be read). */
  warnings: string[];
  /**
   * RUNNING, but the process that writes it (tag `denograd.process`) is gone: killed with
   * SIGKILL or crashed, it will never end on its own (markStaleRun in tracking/run.ts ends it).
   * Absent when the run is not RUNNING or its process cannot be checked from here.
   */
  stale?: boolean;
}

export interface ArtifactInfo {
  /** Relative to the run's artifact root, `/`-separated. */
  path: string;
  isDir: boolean;
  /** Bytes; null for directories. */
  fileSize: number | null;
}

/** What an artifact write accepts: bytes, text, or a (possibly async) producer of byte chunks. */
export type ArtifactData =
  | Uint8Array
  | string
  | Iterable<Uint8Array>
  | AsyncIterable<Uint8Array>;

export interface LoggedModel {
  modelId: string;
  name: string;
  experimentId: string;
  sourceRunId: string | null;
  status: string;
  creationTimestamp: number | null;
  lastUpdatedTimestamp: number | null;
  artifactLocation: string;
  params: Record<string, string>;
  tags: Record<string, string>;
  metrics: Record<string, (MetricPoint & { runId: string | null })[]>;
  warnings: string[];
}

/** What createRun records; the Run helper (tracking/run.ts) fills it from the process. */
export interface CreateRunOptions {
  /** OS user (`user_id`, tag `mlflow.user`). */
  userId: string;
  /** Epoch milliseconds. */
  startTime: number;
  /** Defaults to the `mlflow.runName` tag, else a generated `adjective-animal-123` name. */
  runName?: string;
  tags?: Record<string, string>;
}

/**
 * One MLflow log-batch call: params are immutable (the same value again is accepted, another
 * value is an error), metric points are appended, tags overwrite (`mlflow.runName` renames the
 * run). At most 100 params, 100 tags and 1000 metrics (1000 entries in all); everything is
 * validated before anything is written.
 */
export interface LogBatch {
  params?: { key: string; value: string }[];
  metrics?: ({ key: string } & MetricPoint)[];
  tags?: { key: string; value: string }[];
}

/** Run attributes a search can filter and order on. */
export type RunAttribute = "run_id" | "run_name" | "status" | "start_time" | "end_time" | "user_id";

/**
 * A search field in MLflow's notation: `metrics.<key>` (the latest value), `params.<key>`,
 * `tags.<key>` or `attributes.<name>`.
 */
export type RunField =
  | `metrics.${string}`
  | `params.${string}`
  | `tags.${string}`
  | `attributes.${RunAttribute}`;

/**
 * One clause of a search (clauses are ANDed, like MLflow's filter string). Metrics and the time
 * attributes compare as numbers; params, tags and the other attributes as strings, where LIKE
 * and ILIKE take SQL patterns (`%` any run of characters, `_` one character). A run without the
 * field never matches.
 */
export interface RunFilter {
  field: RunField;
  op: "=" | "!=" | "<" | "<=" | ">" | ">=" | "LIKE" | "ILIKE";
  value: string | number;
}

export interface RunOrder {
  field: RunField;
  descending?: boolean;
}

export interface RunQuery {
  experimentIds: string[];
  /** Which lifecycle stage to return (MLflow's ViewType); default "active". */
  lifecycle?: "active" | "deleted" | "all";
  /** Only runs with one of these statuses. */
  statuses?: RunStatus[];
  where?: RunFilter[];
  /**
   * Sort keys, most significant first; runs missing a key come last. Ties (and the default)
   * fall back to start time, newest first, then run id.
   */
  orderBy?: RunOrder[];
  maxResults?: number;
}

/**
 * A tracking backend. Every method reports failure by rejecting (never by throwing), with
 * MLflow's messages for invalid input (tracking/validation.ts) and unknown experiments or runs.
 */
export interface TrackingStore {
  /** What the store skipped or could not read, e.g. run folders without meta.yaml. */
  readonly problems: readonly string[];

  /** Experiments, newest first; deleted ones only if asked. */
  listExperiments(options?: { includeDeleted?: boolean }): Promise<Experiment[]>;
  /** The experiment with this id (active or deleted); rejects if there is none. */
  getExperiment(experimentId: string): Promise<Experiment>;
  /** The active experiment with this name, or null. */
  getExperimentByName(name: string): Promise<Experiment | null>;
  /** Creates an experiment and returns its id; rejects if the name is taken. */
  createExperiment(name: string): Promise<string>;
  /** Id of the experiment named `name`, created (like `mlflow.set_experiment`) if absent. */
  getOrCreateExperiment(name: string): Promise<string>;
  setExperimentTag(experimentId: string, key: string, value: string): Promise<void>;

  /** Creates a RUNNING run of an active experiment, with the given tags plus `mlflow.runName`. */
  createRun(experimentId: string, options: CreateRunOptions): Promise<RunInfo>;
  /** Sets an active run back to RUNNING with no end time (for `--resume`); returns the run. */
  reopenRun(runId: string): Promise<RunRecord>;
  logBatch(runId: string, batch: LogBatch): Promise<void>;
  /** Ends a run: its status and end time. */
  setTerminated(runId: string, status: TerminalStatus, endTime: number): Promise<void>;

  /** One run (active or deleted): info, params, full metric histories, tags. */
  getRun(runId: string): Promise<RunRecord>;
  /** Runs of some experiments, filtered and ordered (see RunQuery). */
  searchRuns(query: RunQuery): Promise<RunRecord[]>;
  /** Every logged point of one metric, in logging order; empty if the key was never logged. */
  getMetricHistory(runId: string, key: string): Promise<MetricPoint[]>;

  /** Direct children of `relPath` (default: the root) in the run's artifacts, sorted by path. */
  listArtifacts(runId: string, relPath?: string): Promise<ArtifactInfo[]>;
  /** The bytes of one artifact file. */
  readArtifact(runId: string, relPath: string): Promise<Uint8Array>;
  /** Writes (or replaces) one artifact file; readers see the old or the new file, never half. */
  writeArtifact(runId: string, relPath: string, data: ArtifactData): Promise<void>;

  /** MLflow 3 logged models of an experiment. */
  listLoggedModels(experimentId: string): Promise<LoggedModel[]>;
}

/** Where runs go when neither an URI nor MLFLOW_TRACKING_URI says otherwise. */
export const DEFAULT_TRACKING_URI = "./mlruns";

/**
 * The store at `uri`, else at MLFLOW_TRACKING_URI, else at `./mlruns`. `file:<dir>`,
 * `file:///abs/dir` and plain paths open MLflow's file store; other schemes (sqlite:, http:,
 * databricks:…) are refused with a message naming what works.
 */
export function openStore(uri?: string): TrackingStore {
  const raw = uri ?? envVar("MLFLOW_TRACKING_URI") ?? DEFAULT_TRACKING_URI;
  if (raw.trim() === "") throw new Error("Tracking URI is empty");
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(raw)?.[1];
  // A single letter followed by ':' is a Windows drive, not a scheme.
  if (scheme === undefined || scheme.length === 1 || scheme.toLowerCase() === "file") {
    return new FileStore(raw);
  }
  throw new Error(
    `Tracking URI '${raw}' uses the '${scheme}' scheme, but only MLflow's file store is ` +
      "supported: use file:<dir>, file:///absolute/dir or a plain directory path " +
      "(MLFLOW_TRACKING_URI or openStore(uri))",
  );
}
