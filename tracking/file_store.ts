// MLflow file store (`mlruns/`): the TrackingStore on a local directory, writing what MLflow's
// FileStore writes (meta.yaml fields and key order, metric lines, param/tag files without a
// newline, `.trash/`, experiment 0 "Default"); reading is tracking/file_store_reader.ts. Every
// file is written atomically (tracking/files.ts), so a reader never sees a torn file.
import * as path from "node:path";
import { lstatOrNull, READ_LIMITS, readTextBounded, statOrNull, writeFileAtomic } from "./files.ts";
import {
  asString,
  FileStoreReader,
  formatMetricLine,
  keyFile,
  readYamlMapping,
  STATUS_CODES,
  TRASH_FOLDER,
  type YamlMapping,
} from "./file_store_reader.ts";
import { pathToFileUri } from "./file_uri.ts";
import { generateRunName } from "./names.ts";
import type {
  ArtifactData,
  CreateRunOptions,
  LogBatch,
  RunInfo,
  RunRecord,
  TerminalStatus,
  TrackingStore,
} from "./store.ts";
import {
  paramChangedError,
  validateArtifactPath,
  validateBatch,
  validateExperimentName,
  validateTag,
  validateTermination,
} from "./validation.ts";
import { dumpYaml } from "./yaml.ts";

const DEFAULT_EXPERIMENT_ID = "0";
const DEFAULT_EXPERIMENT_NAME = "Default";
// Legacy SourceType enum of run meta.yaml: LOCAL.
const SOURCE_TYPE_LOCAL = 4;

/** A leftover name lock older than this belongs to a process that died while creating. */
const STALE_LOCK_MS = 30_000;
/** Longest wait for another process's name lock (creating an experiment takes milliseconds). */
const LOCK_WAIT_MS = 60_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The lock file that makes creating the experiment `name` exclusive across processes: a file
 * in the root (MLflow lists only folders there, so it never shows), named by a hash of the name.
 */
async function nameLockFile(root: string, name: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(name));
  const hex = Array.from(
    new Uint8Array(digest).subarray(0, 8),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  return path.join(root, `.experiment-${hex}.lock`);
}

function randomExperimentId(): string {
  // MLflow uses 18-digit random integers without a leading zero.
  const digits = crypto.getRandomValues(new Uint8Array(18));
  return Array.from(digits, (d, i) => String(i === 0 ? 1 + (d % 9) : d % 10)).join("");
}

/** An MLflow file store rooted at a local directory: reader and writer. */
export class FileStore extends FileStoreReader implements TrackingStore {
  #ready = false;
  /** Metric file → the text this store last wrote there (appends rewrite the whole file). */
  #metricText = new Map<string, { text: string; bytes: number }>();
  /** Per run, the tail of its chain of writes: one write to a run at a time. */
  #runWrites = new Map<string, Promise<unknown>>();

  /** Creates the root, experiment 0 "Default" and `.trash/` as MLflow's FileStore does. */
  async #ensureRoot(): Promise<void> {
    if (this.#ready) return;
    const info = await statOrNull(this.root);
    if (info === null) {
      await Deno.mkdir(this.root, { recursive: true });
      await this.#writeExperiment(DEFAULT_EXPERIMENT_NAME, DEFAULT_EXPERIMENT_ID);
    } else if (!info.isDirectory) {
      throw new Error(`Tracking root '${this.root}' exists but is not a directory`);
    }
    await Deno.mkdir(path.join(this.root, TRASH_FOLDER), { recursive: true });
    this.#ready = true;
  }

  async #writeExperiment(name: string, experimentId: string): Promise<void> {
    const dir = path.join(this.root, experimentId);
    await Deno.mkdir(dir, { recursive: true });
    const now = Date.now();
    await writeFileAtomic(
      path.join(dir, "meta.yaml"),
      dumpYaml({
        artifact_location: pathToFileUri(dir),
        creation_time: now,
        experiment_id: experimentId,
        last_update_time: now,
        lifecycle_stage: "active",
        name,
      }),
    );
  }

  /** Runs `task` after every earlier write to the same run has settled. */
  #exclusive<T>(runId: string, task: () => Promise<T>): Promise<T> {
    const result = (this.#runWrites.get(runId) ?? Promise.resolve()).then(task);
    const tail = result.catch(() => {});
    this.#runWrites.set(runId, tail);
    tail.then(() => {
      if (this.#runWrites.get(runId) === tail) this.#runWrites.delete(runId);
    });
    return result;
  }

  /**
   * Runs `task` holding the name lock of experiment `name`: listing the names and creating the
   * experiment are one step for every process sharing the store. A lock left by a process that
   * died mid-creation is taken over once it is STALE_LOCK_MS old.
   */
  async #withNameLock<T>(name: string, task: () => Promise<T>): Promise<T> {
    const lock = await nameLockFile(this.root, name);
    const giveUp = Date.now() + LOCK_WAIT_MS;
    for (let attempt = 0;; attempt++) {
      try {
        const file = await Deno.open(lock, { write: true, createNew: true });
        try {
          const owner = `${Deno.pid} ${Date.now()} ${JSON.stringify(name)}\n`;
          await file.write(new TextEncoder().encode(owner));
        } finally {
          file.close();
        }
        break;
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      }
      const held = await lstatOrNull(lock);
      if (held?.mtime && Date.now() - held.mtime.getTime() > STALE_LOCK_MS) {
        // Only one of the processes that found it stale gets to move it away.
        const moved = `${lock}.${crypto.randomUUID()}.stale`;
        if (await Deno.rename(lock, moved).then(() => true, () => false)) {
          const info = await lstatOrNull(moved);
          if (info?.mtime && Date.now() - info.mtime.getTime() <= STALE_LOCK_MS) {
            // Another process took the stale lock over just before: give its lock back.
            await Deno.link(moved, lock).catch(() => {});
          }
          await Deno.remove(moved).catch(() => {});
        }
        continue;
      }
      if (Date.now() > giveUp) {
        throw new Error(
          `Could not create experiment '${name}': '${lock}' has been locked for over ` +
            `${LOCK_WAIT_MS / 1000} s by another process`,
        );
      }
      await sleep(Math.min(50, 2 + attempt) * (0.5 + Math.random()));
    }
    try {
      return await task();
    } finally {
      await Deno.remove(lock).catch(() => {});
    }
  }

  /** The experiment named `name`, active or deleted, or undefined. */
  async #findByName(name: string) {
    return (await this.listExperiments({ includeDeleted: true })).find((e) => e.name === name);
  }

  /** Creates the experiment under the name lock, once no experiment has the name. */
  async #createExclusive(name: string): Promise<string> {
    let id = name === DEFAULT_EXPERIMENT_NAME ? DEFAULT_EXPERIMENT_ID : randomExperimentId();
    while (await this.experimentLocation(id)) id = randomExperimentId();
    await this.#writeExperiment(name, id);
    return id;
  }

  /**
   * Creates an experiment ("Default" gets id 0 when it is free); the name must be unused. One
   * experiment per name, whatever number of processes try at once.
   */
  async createExperiment(name: string): Promise<string> {
    validateExperimentName(name);
    await this.#ensureRoot();
    return await this.#withNameLock(name, async () => {
      const existing = await this.#findByName(name);
      if (existing) {
        throw new Error(
          existing.lifecycleStage === "active"
            ? `Experiment '${name}' already exists (id ${existing.experimentId})`
            : `Experiment '${name}' already exists in deleted state (id ` +
              `${existing.experimentId}). Restore it, or permanently delete it from ` +
              `'${path.join(this.root, TRASH_FOLDER)}' to create a new one with this name.`,
        );
      }
      return await this.#createExclusive(name);
    });
  }

  /**
   * Id of the experiment named `name`, created (like `mlflow.set_experiment`) if absent: every
   * process that asks at once gets the same one.
   */
  async getOrCreateExperiment(name: string): Promise<string> {
    validateExperimentName(name);
    await this.#ensureRoot();
    // Most calls find it: no lock needed for that.
    let existing = await this.#findByName(name);
    if (!existing) {
      const found = await this.#withNameLock(
        name,
        async () => await this.#findByName(name) ?? await this.#createExclusive(name),
      );
      if (typeof found === "string") return found;
      existing = found;
    }
    if (existing.lifecycleStage !== "active") {
      throw new Error(
        `Cannot use the deleted experiment '${name}' (id ${existing.experimentId}). Restore ` +
          `it, or permanently delete it from '${path.join(this.root, TRASH_FOLDER)}' to ` +
          "create a new one with this name.",
      );
    }
    return existing.experimentId;
  }

  /** Sets an experiment tag (`<experiment>/tags/<key>`). */
  async setExperimentTag(experimentId: string, key: string, value: string): Promise<void> {
    validateTag(key, value);
    const experiment = await this.getExperiment(experimentId);
    if (experiment.lifecycleStage !== "active") {
      throw new Error(`The experiment ${experimentId} must be active to set tags`);
    }
    const location = (await this.experimentLocation(experimentId))!;
    await writeFileAtomic(keyFile(location.dir, "tags", key), value);
  }

  /** Creates a RUNNING run: meta.yaml, empty metrics/ params/ artifacts/, and its tags. */
  async createRun(experimentId: string, options: CreateRunOptions): Promise<RunInfo> {
    await this.#ensureRoot();
    const experiment = await this.getExperiment(experimentId);
    if (experiment.lifecycleStage !== "active") {
      throw new Error(`Could not create run under non-active experiment with ID ${experimentId}.`);
    }
    const tags = { ...options.tags };
    for (const [key, value] of Object.entries(tags)) validateTag(key, value);
    const tagName = tags["mlflow.runName"];
    if (options.runName && tagName && options.runName !== tagName) {
      throw new Error(
        "Both 'runName' and the 'mlflow.runName' tag are specified, but with different values " +
          `(runName='${options.runName}', mlflow.runName='${tagName}').`,
      );
    }
    const runName = options.runName || tagName || generateRunName();
    tags["mlflow.runName"] = runName;
    const { startTime, userId } = options;
    if (!Number.isSafeInteger(startTime) || startTime < 0) {
      throw new Error(`createRun: startTime must be epoch milliseconds, got ${startTime}`);
    }

    const runId = crypto.randomUUID().replaceAll("-", "");
    const location = (await this.experimentLocation(experimentId))!;
    const runDir = path.join(location.dir, runId);
    const artifactUri = pathToFileUri(path.join(runDir, "artifacts"));
    const meta: YamlMapping = {
      artifact_uri: artifactUri,
      deleted_time: null,
      end_time: null,
      entry_point_name: "",
      experiment_id: experimentId,
      lifecycle_stage: "active",
      run_id: runId,
      run_name: runName,
      // Read by MLflow 2.x readers; ignored by 3.x.
      run_uuid: runId,
      source_name: "",
      source_type: SOURCE_TYPE_LOCAL,
      source_version: "",
      start_time: startTime,
      status: STATUS_CODES.RUNNING,
      tags: [],
      user_id: userId,
    };
    await Deno.mkdir(runDir, { recursive: true });
    await writeFileAtomic(path.join(runDir, "meta.yaml"), dumpYaml(meta));
    for (const sub of ["metrics", "params", "artifacts"]) {
      await Deno.mkdir(path.join(runDir, sub), { recursive: true });
    }
    for (const [key, value] of Object.entries(tags)) {
      await writeFileAtomic(keyFile(runDir, "tags", key), value);
    }
    return {
      runId,
      runName,
      experimentId,
      userId,
      status: "RUNNING",
      startTime,
      endTime: null,
      lifecycleStage: "active",
      artifactUri,
    };
  }

  /** The run's folder and meta.yaml, refusing runs that are deleted (MLflow's check_run_is_active). */
  async #activeRun(runId: string): Promise<{ runDir: string; meta: YamlMapping }> {
    const found = await this.locateRun(runId);
    if (!found) throw this.notFound(runId);
    const meta = readYamlMapping(path.join(found.runDir, "meta.yaml"));
    if (meta === null) throw new Error(`Run '${runId}' has no meta.yaml; cannot write to it`);
    if (found.deleted || (asString(meta.lifecycle_stage) ?? "active") !== "active") {
      throw new Error(`Run '${runId}' is deleted; restore it before logging to it`);
    }
    return { runDir: found.runDir, meta };
  }

  /** Rewrites meta.yaml; like MLflow's _overwrite_run_info, without deleted_time. */
  async #writeMeta(runDir: string, meta: YamlMapping): Promise<void> {
    delete meta.deleted_time;
    await writeFileAtomic(path.join(runDir, "meta.yaml"), dumpYaml(meta));
  }

  /** Sets an active run back to RUNNING with no end time (for `--resume`). */
  reopenRun(runId: string): Promise<RunRecord> {
    return this.#exclusive(runId, async () => {
      await this.#ensureRoot();
      const { runDir, meta } = await this.#activeRun(runId);
      meta.status = STATUS_CODES.RUNNING;
      meta.end_time = null;
      await this.#writeMeta(runDir, meta);
      return await this.getRun(runId);
    });
  }

  /** Appends `lines` to a metric file, rewriting it atomically. */
  async #appendMetricLines(file: string, lines: string): Promise<void> {
    let known = this.#metricText.get(file);
    // Re-read unless the file is still what this store wrote (another writer may have appended).
    if (known === undefined || (await lstatOrNull(file))?.size !== known.bytes) {
      let text = (await readTextBounded(file, READ_LIMITS.metric)) ?? "";
      if (text !== "" && !text.endsWith("\n")) text += "\n";
      known = { text, bytes: new TextEncoder().encode(text).length };
    }
    // Metric lines are ASCII: characters are bytes.
    const next = { text: known.text + lines, bytes: known.bytes + lines.length };
    await writeFileAtomic(file, next.text);
    this.#metricText.set(file, next);
  }

  /**
   * MLflow's log-batch: everything validated first (and no param may change value), then the
   * params, the metric lines (one write per key) and the tags; `mlflow.runName` renames the run.
   */
  async logBatch(runId: string, batch: LogBatch): Promise<void> {
    validateBatch(batch);
    await this.#exclusive(runId, async () => {
      const { runDir, meta } = await this.#activeRun(runId);
      const newParams: { key: string; value: string }[] = [];
      for (const { key, value } of batch.params ?? []) {
        const previous = await readTextBounded(keyFile(runDir, "params", key), READ_LIMITS.value);
        if (previous === null) newParams.push({ key, value });
        else if (previous !== value) throw paramChangedError(runId, key, previous, value);
      }
      for (const { key, value } of newParams) {
        await writeFileAtomic(keyFile(runDir, "params", key), value);
      }
      const lines = new Map<string, string>();
      for (const point of batch.metrics ?? []) {
        lines.set(point.key, (lines.get(point.key) ?? "") + formatMetricLine(point));
      }
      for (const [key, text] of lines) {
        await this.#appendMetricLines(keyFile(runDir, "metrics", key), text);
      }
      for (const { key, value } of batch.tags ?? []) {
        if (key === "mlflow.runName" && meta.run_name !== value) {
          meta.run_name = value;
          await this.#writeMeta(runDir, meta);
        }
        await writeFileAtomic(keyFile(runDir, "tags", key), value);
      }
    });
  }

  /** Ends a run: status FINISHED, FAILED or KILLED and its end time in meta.yaml. */
  async setTerminated(runId: string, status: TerminalStatus, endTime: number): Promise<void> {
    validateTermination(status, endTime);
    await this.#exclusive(runId, async () => {
      const { runDir, meta } = await this.#activeRun(runId);
      meta.status = STATUS_CODES[status];
      meta.end_time = endTime;
      await this.#writeMeta(runDir, meta);
    });
  }

  /** Writes one artifact file under the run's artifact root. */
  async writeArtifact(runId: string, relPath: string, data: ArtifactData): Promise<void> {
    validateArtifactPath(relPath, "writeArtifact");
    const root = await this.artifactRoot(runId);
    await writeFileAtomic(path.join(root, ...relPath.split("/")), data);
  }
}
