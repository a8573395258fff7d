// The run lifecycle on top of any TrackingStore: the Run handle the labs log through (params,
// metrics, tags, artifacts, end), startRun/resumeRun, and withRun, which ends the run FINISHED,
// FAILED or — on SIGINT/SIGTERM — KILLED.
import { contextTags } from "./context.ts";
import { currentProcess, parseProcess, PROCESS_TAG, processAlive } from "./process.ts";
import type {
  ArtifactData,
  LogBatch,
  MetricPoint,
  RunInfo,
  RunRecord,
  RunStatus,
  TerminalStatus,
  TrackingStore,
} from "./store.ts";
import {
  MAX_ENTITIES_PER_BATCH,
  MAX_METRICS_PER_BATCH,
  MAX_PARAMS_TAGS_PER_BATCH,
  paramChangedError,
  validateArtifactPath,
  validateMetric,
  validateParam,
  validateTag,
  validateTermination,
  valueToString,
} from "./validation.ts";

export interface StartRunOptions {
  runName?: string;
  tags?: Record<string, string>;
  /** Epoch milliseconds; defaults to now. */
  startTime?: number;
  /** Value of `mlflow.source.name`; defaults to the main module, relative to the cwd. */
  sourceName?: string;
}

/** Log calls waiting for one logBatch; the write starts once earlier writes have landed. */
interface PendingBatch {
  entries: Required<LogBatch>;
  written: Promise<void>;
}

const BATCH_LIMITS = {
  params: MAX_PARAMS_TAGS_PER_BATCH,
  tags: MAX_PARAMS_TAGS_PER_BATCH,
  metrics: MAX_METRICS_PER_BATCH,
};

/**
 * An open run. Logging calls may be awaited or fired and forgotten: writes reach the store in
 * call order, and the params, metrics and tags logged while an earlier write is in flight go
 * out together as one logBatch.
 */
export class Run {
  readonly id: string;
  readonly experimentId: string;
  readonly store: TrackingStore;
  #name: string;
  #status: RunStatus;
  /** Params logged so far: they are immutable, so a changed value is refused before writing. */
  #params: Map<string, string>;
  #queue: Promise<void> = Promise.resolve();
  #open: PendingBatch | null = null;

  constructor(store: TrackingStore, info: RunInfo, params: Record<string, string> = {}) {
    this.store = store;
    this.id = info.runId;
    this.experimentId = info.experimentId;
    this.#name = info.runName;
    this.#status = info.status;
    this.#params = new Map(Object.entries(params));
  }

  get name(): string {
    return this.#name;
  }

  get status(): RunStatus {
    return this.#status;
  }

  /** Queues `task` after every write issued so far; log calls after it start a new batch. */
  #enqueue<T>(task: () => Promise<T>): Promise<T> {
    this.#open = null;
    const result = this.#queue.then(task);
    this.#queue = result.then(() => {}, () => {});
    return result;
  }

  /** Adds one entry to the open batch (opening one if none has room) and waits for its write. */
  #log<K extends keyof Required<LogBatch>>(
    kind: K,
    entry: Required<LogBatch>[K][number],
  ): Promise<void> {
    let batch = this.#open;
    const size = (b: PendingBatch) =>
      b.entries.params.length + b.entries.metrics.length + b.entries.tags.length;
    if (
      batch === null || batch.entries[kind].length >= BATCH_LIMITS[kind] ||
      size(batch) >= MAX_ENTITIES_PER_BATCH
    ) {
      const entries: Required<LogBatch> = { params: [], metrics: [], tags: [] };
      const opened: PendingBatch = {
        entries,
        written: this.#enqueue(() => {
          // From here on the batch is being written: later calls open the next one.
          if (this.#open === opened) this.#open = null;
          return this.store.logBatch(this.id, entries);
        }),
      };
      this.#open = batch = opened;
    }
    (batch.entries[kind] as Required<LogBatch>[K][number][]).push(entry);
    return batch.written;
  }

  /** Logs a param; params are immutable, so a different value for a logged key is an error. */
  async logParam(key: string, value: unknown): Promise<void> {
    const text = valueToString(value);
    validateParam(key, text);
    const previous = this.#params.get(key);
    if (previous !== undefined) {
      if (previous !== text) throw paramChangedError(this.id, key, previous, text);
      return;
    }
    this.#params.set(key, text);
    try {
      await this.#log("params", { key, value: text });
    } catch (error) {
      if (this.#params.get(key) === text) this.#params.delete(key);
      throw error;
    }
  }

  async logParams(params: Record<string, unknown>): Promise<void> {
    await Promise.all(Object.entries(params).map(([key, value]) => this.logParam(key, value)));
  }

  /** Appends `timestamp value step` to the metric's history. */
  async logMetric(key: string, value: number, step = 0, timestamp = Date.now()): Promise<void> {
    validateMetric(key, value, step, timestamp);
    const point: { key: string } & MetricPoint = { key, value, step, timestamp };
    await this.#log("metrics", point);
  }

  /** Logs several metrics at one step with one shared timestamp. */
  async logMetrics(
    metrics: Record<string, number>,
    step = 0,
    timestamp = Date.now(),
  ): Promise<void> {
    await Promise.all(
      Object.entries(metrics).map(([key, value]) => this.logMetric(key, value, step, timestamp)),
    );
  }

  /** Sets a tag (overwrites); `mlflow.runName` also renames the run. */
  async setTag(key: string, value: unknown): Promise<void> {
    const text = valueToString(value);
    validateTag(key, text);
    if (key === "mlflow.runName") this.#name = text;
    await this.#log("tags", { key, value: text });
  }

  /** Writes an artifact file at `relPath` under the run's artifact root. */
  async logArtifact(relPath: string, data: ArtifactData): Promise<void> {
    validateArtifactPath(relPath, "logArtifact");
    await this.#enqueue(() => this.store.writeArtifact(this.id, relPath, data));
  }

  /** JSON artifact as `mlflow.log_dict` writes it: 2-space indent, ASCII-escaped, no newline. */
  async logDict(relPath: string, obj: unknown): Promise<void> {
    validateArtifactPath(relPath, "logDict");
    const json = JSON.stringify(obj, null, 2);
    if (json === undefined) throw new Error(`logDict: cannot serialise ${typeof obj} as JSON`);
    const ascii = json.replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
    await this.logArtifact(relPath, ascii);
  }

  async logText(relPath: string, text: string): Promise<void> {
    validateArtifactPath(relPath, "logText");
    await this.logArtifact(relPath, text);
  }

  /** Resolves when every write issued so far has reached the store. */
  async flush(): Promise<void> {
    await this.#queue;
  }

  /** Ends the run: FINISHED, FAILED or KILLED, with its end time, after pending writes land. */
  async end(status: TerminalStatus = "FINISHED", endTime = Date.now()): Promise<void> {
    validateTermination(status, endTime);
    await this.#enqueue(() => this.store.setTerminated(this.id, status, endTime));
    this.#status = status;
  }
}

/** Creates a RUNNING run with the standard `mlflow.*` tags of this process. */
export async function startRun(
  store: TrackingStore,
  experimentId: string,
  options: StartRunOptions = {},
): Promise<Run> {
  const userTags: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.tags ?? {})) {
    const text = valueToString(value);
    validateTag(key, text);
    userTags[key] = text;
  }
  const context = await contextTags(options.sourceName);
  const info = await store.createRun(experimentId, {
    userId: context["mlflow.user"],
    startTime: options.startTime ?? Date.now(),
    runName: options.runName,
    tags: { ...context, [PROCESS_TAG]: currentProcess(), ...userTags },
  });
  return new Run(store, info);
}

/** Reopens an existing run for logging (status back to RUNNING), e.g. for `--resume`. */
export async function resumeRun(store: TrackingStore, runId: string): Promise<Run> {
  const record = await store.reopenRun(runId);
  const run = new Run(store, record.info, record.params);
  await run.setTag(PROCESS_TAG, currentProcess());
  return run;
}

/** The last time a run is known to have been alive: its latest metric point, else its start. */
function lastSeen(run: RunRecord): number {
  let last = run.info.startTime ?? 0;
  for (const points of Object.values(run.metrics)) {
    for (const p of points) last = Math.max(last, p.timestamp);
  }
  return last;
}

/**
 * Ends a stale run (RUNNING, its process gone: see RunRecord.stale) as KILLED, at the time of
 * its last logged point. Resolves with whether it did.
 */
export async function markStaleRun(store: TrackingStore, runId: string): Promise<boolean> {
  const run = await store.getRun(runId);
  if (!run.stale) return false;
  await store.setTerminated(runId, "KILLED", lastSeen(run));
  return true;
}

/**
 * Marks the run that `--resume` continues from: tagged `denograd.resumed_by_run` with the new
 * run, and KILLED (at its last logged point) if it was left RUNNING by a killed process. Refuses
 * when that process is still alive: two trainings would share one checkpoint.
 */
export async function markResumed(
  store: TrackingStore,
  predecessorId: string,
  successor: Run,
): Promise<void> {
  const run = await store.getRun(predecessorId);
  if (run.info.lifecycleStage !== "active") return;
  if (run.info.status === "RUNNING") {
    const writer = run.tags[PROCESS_TAG];
    if (writer !== undefined && processAlive(writer) === true) {
      throw new Error(
        `--resume: run ${predecessorId} is still running (pid ${parseProcess(writer)!.pid}); ` +
          "stop it before resuming its checkpoint",
      );
    }
    // Its process is gone, or cannot be checked from here: the checkpoint moves on without it.
    await store.setTerminated(predecessorId, "KILLED", lastSeen(run));
  }
  await store.logBatch(predecessorId, {
    tags: [{ key: "denograd.resumed_by_run", value: successor.id }],
  });
}

/**
 * Runs `fn` inside a new run of experiment `experimentName` (created if absent): FINISHED when
 * it resolves, FAILED when it throws (the error is rethrown), KILLED on SIGINT/SIGTERM — then the
 * process exits with 128 + signal number, as it would have without the listener.
 */
export async function withRun<T>(
  store: TrackingStore,
  experimentName: string,
  options: StartRunOptions,
  fn: (run: Run) => Promise<T>,
): Promise<T> {
  const experimentId = await store.getOrCreateExperiment(experimentName);
  const run = await startRun(store, experimentId, options);
  let interrupted = false;
  const listeners: [Deno.Signal, () => void][] = [];
  const removeListeners = () => {
    for (const [signal, listener] of listeners.splice(0)) {
      Deno.removeSignalListener(signal, listener);
    }
  };
  const signals: [Deno.Signal, number][] = Deno.build.os === "windows"
    ? [["SIGINT", 2]]
    : [["SIGINT", 2], ["SIGTERM", 15]];
  for (const [signal, number] of signals) {
    const listener = () => {
      if (interrupted) return;
      interrupted = true;
      removeListeners();
      run.end("KILLED").finally(() => Deno.exit(128 + number));
    };
    try {
      Deno.addSignalListener(signal, listener);
      listeners.push([signal, listener]);
    } catch {
      // Signal not supported on this platform.
    }
  }
  let result: T;
  try {
    result = await fn(run);
  } catch (error) {
    removeListeners();
    if (!interrupted) await run.end("FAILED");
    throw error;
  }
  removeListeners();
  if (!interrupted) await run.end("FINISHED");
  return result;
}
