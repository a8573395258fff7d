// MLflow file store (`mlruns/`), read side. Layout, fields and formats follow what MLflow
// 2.8–3.6 writes (shared/MLFLOW-FILESTORE.md, fixtures in tests/fixtures/tracking/mlruns-sample):
//   <root>/<experiment id>/meta.yaml, tags/<key>
//   <root>/<experiment id>/<32-hex run id>/meta.yaml, metrics/<key>, params/<key>, tags/<key>,
//                                           artifacts/…, outputs/<model id>/meta.yaml (3.x)
//   <root>/<experiment id>/models/m-<32 hex>/… (3.x logged models), <root>/.trash/ (deleted)
// The reader takes stores written by MLflow itself as they are, reporting what it skipped
// (`problems`) or found malformed in a run (`warnings`). The write side is tracking/file_store.ts.
import * as path from "node:path";
import {
  isRealDirectory,
  listDirSync,
  listFilesRecursive,
  lstatOrNull,
  lstatOrNullSync,
  pathInside,
  READ_LIMITS,
  readFileBounded,
  readTextBounded,
  readTextBoundedSync,
  TEMP_FILE_PATTERN,
} from "./files.ts";
import { fileUriToPath, pathToFileUri, resolveTrackingRoot } from "./file_uri.ts";
import { parseProcess, PROCESS_TAG, processAlive } from "./process.ts";
import { selectRuns } from "./search.ts";
import type {
  ArtifactInfo,
  Experiment,
  LoggedModel,
  MetricPoint,
  RunOutput,
  RunQuery,
  RunRecord,
  RunStatus,
} from "./store.ts";
import {
  isRunId,
  validateArtifactPath,
  validateExperimentId,
  validateKey,
  validateRunId,
} from "./validation.ts";
import { parseYaml, pythonFloatRepr, type YamlValue } from "./yaml.ts";

// meta.yaml stores the status as MLflow's RunStatus enum integer.
export const STATUS_CODES: Record<RunStatus, number> = {
  RUNNING: 1,
  SCHEDULED: 2,
  FINISHED: 3,
  FAILED: 4,
  KILLED: 5,
};
const STATUS_NAMES = Object.fromEntries(
  Object.entries(STATUS_CODES).map(([name, code]) => [code, name]),
) as Record<number, RunStatus>;
// Logged-model status enum (MLflow 3): 2 = READY.
const MODEL_STATUS_NAMES = ["UNSPECIFIED", "PENDING", "READY", "UPLOAD_FAILED"];

export const TRASH_FOLDER = ".trash";
// Root-level folder of the model registry file store: never an experiment.
const REGISTRY_FOLDER = "models";
/** How many runs a search reads before it lets other tasks (a server's requests) run. */
const RUNS_PER_YIELD = 64;
const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

// Experiment sub-folders that are not runs.
const RESERVED_EXPERIMENT_FOLDERS = new Set(["tags", "datasets", "traces", "models"]);

export type YamlMapping = { [key: string]: YamlValue };

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The files of a folder (`label`/: metrics/, params/, tags/) that can be read safely, by key;
 * null when the folder is absent. A link (to the folder or in it), a special file or an
 * oversized file is skipped with a warning, never read.
 */
function readKeyFiles(
  dir: string,
  label: string,
  maxBytes: number,
  warnings: string[],
): Map<string, string> | null {
  const info = lstatOrNullSync(dir);
  if (info === null) return null;
  const out = new Map<string, string>();
  if (!info.isDirectory) {
    warnings.push(
      `${label}/ is ${info.isSymlink ? "a symbolic link (not followed)" : "not a folder"}`,
    );
    return out;
  }
  const skipped: string[] = [];
  for (const key of listFilesRecursive(dir, "", skipped)) {
    try {
      const text = readTextBoundedSync(path.join(dir, ...key.split("/")), maxBytes);
      if (text !== null) out.set(key, text);
    } catch (error) {
      warnings.push(`${label}/${key} not read: ${messageOf(error)}`);
    }
  }
  for (const why of skipped) warnings.push(`${label}/${why}`);
  return out;
}

/** Reads a flat key → file-content folder (params/, tags/); null when the folder is absent. */
export function readKeyValueDir(
  dir: string,
  label: string,
  warnings: string[],
): Record<string, string> | null {
  const files = readKeyFiles(dir, label, READ_LIMITS.value, warnings);
  return files && Object.fromEntries(files);
}

export function asString(value: YamlValue | undefined): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "object") return null;
  return String(value);
}

function asNumber(value: YamlValue | undefined): number | null {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string" && /^-?\d+$/.test(value)) return Number(value);
  return null;
}

export function readYamlMapping(file: string): YamlMapping | null {
  const text = readTextBoundedSync(file, READ_LIMITS.meta);
  if (text === null) return null;
  const doc = parseYaml(text, file);
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    throw new Error(`${file}: expected a YAML mapping`);
  }
  return doc;
}

/** A key's file under a run's metrics/, params/ or tags/ folder (keys may contain `/`). */
export function keyFile(runDir: string, folder: string, key: string): string {
  return path.join(runDir, folder, ...key.split("/"));
}

// ---------------------------------------------------------------------------------------------
// Metric lines: `<timestamp ms> <value> <step>` (logged models add ` <run id>`).

/** Python's float(): also accepts nan, inf, infinity (any case, signed). */
export function parsePythonFloat(text: string): number {
  const t = text.trim();
  const special = /^([+-]?)(nan|inf|infinity)$/i.exec(t);
  if (special) {
    if (special[2].toLowerCase() === "nan") return NaN;
    return special[1] === "-" ? -Infinity : Infinity;
  }
  if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(t)) {
    throw new Error(`could not convert string to float: '${text}'`);
  }
  return Number(t);
}

function parseInteger(text: string): number {
  if (!/^[+-]?\d+$/.test(text)) throw new Error(`invalid integer '${text}'`);
  return Number(text);
}

/** The text MLflow's file store writes for one metric value (Python `str(float)`). */
export function formatMetricLine(point: MetricPoint): string {
  return `${point.timestamp} ${pythonFloatRepr(point.value)} ${point.step}\n`;
}

function parseMetricFile(
  text: string,
  key: string,
  allowRunId: boolean,
  warnings: string[],
): (MetricPoint & { runId?: string })[] {
  const points: (MetricPoint & { runId?: string })[] = [];
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].trim();
    if (line === "") continue;
    const parts = line.split(" ");
    const maxFields = allowRunId ? 4 : 3;
    if (parts.length < 2 || parts.length > maxFields) {
      warnings.push(
        `metrics/${key} line ${n + 1} is malformed: ${parts.length} fields, expected 2 to ` +
          `${maxFields} ('${line}')`,
      );
      continue;
    }
    try {
      const point: MetricPoint & { runId?: string } = {
        timestamp: parseInteger(parts[0]),
        value: parsePythonFloat(parts[1]),
        step: parts.length >= 3 ? parseInteger(parts[2]) : 0,
      };
      if (parts.length === 4) point.runId = parts[3];
      points.push(point);
    } catch (error) {
      warnings.push(`metrics/${key} line ${n + 1} is malformed: ${(error as Error).message}`);
    }
  }
  if (points.length === 0 && !warnings.some((w) => w.startsWith(`metrics/${key} `))) {
    warnings.push(`metrics/${key} is empty (MLflow refuses such a run: "No data found")`);
  }
  return points;
}

function readMetricsDir(
  dir: string,
  allowRunId: boolean,
  warnings: string[],
): Record<string, (MetricPoint & { runId?: string })[]> | null {
  const files = readKeyFiles(dir, "metrics", READ_LIMITS.metric, warnings);
  if (files === null) return null;
  const out: Record<string, (MetricPoint & { runId?: string })[]> = {};
  for (const [key, text] of files) {
    const points = parseMetricFile(text, key, allowRunId, warnings);
    if (points.length > 0) out[key] = points;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Store

export interface ExperimentLocation {
  dir: string;
  deleted: boolean;
}

export interface RunLocation {
  experimentId: string;
  runDir: string;
  /** Whether the run's experiment is in `.trash/`. */
  deleted: boolean;
}

/** The read side of an MLflow file store rooted at a local directory. */
export class FileStoreReader {
  /** Absolute path of the tracking root. */
  readonly root: string;
  /** What the reader skipped or could not read, e.g. run folders without meta.yaml. */
  readonly problems: string[] = [];
  #runLocations = new Map<string, RunLocation>();

  /** `root`: a directory path, `file:<dir>` or `file:///abs/dir`. */
  constructor(root: string) {
    this.root = resolveTrackingRoot(root);
  }

  protected problem(message: string): void {
    if (!this.problems.includes(message)) this.problems.push(message);
  }

  protected notFound(runId: string): Error {
    return new Error(`Run '${runId}' not found in '${this.root}'`);
  }

  protected async experimentLocation(experimentId: string): Promise<ExperimentLocation | null> {
    validateExperimentId(experimentId);
    for (const deleted of [false, true]) {
      const dir = deleted
        ? path.join(this.root, TRASH_FOLDER, experimentId)
        : path.join(this.root, experimentId);
      if (await isRealDirectory(dir)) return { dir, deleted };
    }
    return null;
  }

  #readExperiment(experimentId: string, dir: string): Experiment | null {
    let meta;
    try {
      meta = readYamlMapping(path.join(dir, "meta.yaml"));
    } catch (error) {
      this.problem(`Malformed experiment '${experimentId}': ${(error as Error).message}`);
      return null;
    }
    if (meta === null) {
      this.problem(
        `Experiment folder '${dir}' has no meta.yaml (skipped; MLflow >= 3.7 keeps experiment ` +
          "metadata in mlflow.db and only artifacts under mlruns/)",
      );
      return null;
    }
    const missing = ["experiment_id", "name", "artifact_location"].filter((k) =>
      asString(meta[k]) === null
    );
    if (missing.length > 0) {
      this.problem(
        `Malformed experiment '${experimentId}': meta.yaml lacks ${missing.join(", ")}`,
      );
      return null;
    }
    const recordedId = asString(meta.experiment_id)!;
    if (recordedId !== experimentId) {
      this.problem(
        `Experiment ID mismatch for exp ${experimentId}: recorded as '${recordedId}' in ` +
          "meta.yaml; experiment ignored",
      );
      return null;
    }
    const warnings: string[] = [];
    const tags = (readKeyValueDir(path.join(dir, "tags"), "tags", warnings)) ?? {};
    for (const warning of warnings) this.problem(`Experiment '${experimentId}': ${warning}`);
    return {
      experimentId,
      name: asString(meta.name)!,
      artifactLocation: asString(meta.artifact_location)!,
      lifecycleStage: asString(meta.lifecycle_stage) ?? "active",
      creationTime: asNumber(meta.creation_time),
      lastUpdateTime: asNumber(meta.last_update_time),
      tags,
    };
  }

  /** Experiments, newest first (MLflow's order); deleted ones (in .trash) only if asked. */
  listExperiments(options: { includeDeleted?: boolean } = {}): Promise<Experiment[]> {
    // Read without awaiting; a failure still rejects, as the interface promises.
    return Promise.resolve().then(() => this.#experiments(options.includeDeleted ?? false));
  }

  #experiments(includeDeleted: boolean): Experiment[] {
    const found: Experiment[] = [];
    const parents: [string, boolean][] = [[this.root, false]];
    if (includeDeleted) parents.push([path.join(this.root, TRASH_FOLDER), true]);
    for (const [parent, inTrash] of parents) {
      for (const entry of listDirSync(parent)) {
        if (!entry.isDirectory || entry.name.startsWith(".")) continue;
        if (!inTrash && entry.name === REGISTRY_FOLDER) continue;
        const experiment = this.#readExperiment(entry.name, path.join(parent, entry.name));
        if (experiment && (includeDeleted || experiment.lifecycleStage === "active")) {
          found.push(experiment);
        }
      }
    }
    return found.sort((a, b) =>
      (b.creationTime ?? 0) - (a.creationTime ?? 0) ||
      (a.experimentId < b.experimentId ? -1 : a.experimentId > b.experimentId ? 1 : 0)
    );
  }

  /** The experiment with this id (active or deleted); throws if there is none. */
  async getExperiment(experimentId: string): Promise<Experiment> {
    const location = await this.experimentLocation(experimentId);
    const experiment = location && this.#readExperiment(experimentId, location.dir);
    if (!experiment) {
      throw new Error(`Could not find experiment with ID ${experimentId} in '${this.root}'`);
    }
    return experiment;
  }

  /** The active experiment with this name, or null. */
  async getExperimentByName(name: string): Promise<Experiment | null> {
    return (await this.listExperiments()).find((e) => e.name === name) ?? null;
  }

  /** Where a run's folder is (in the root or in `.trash/`); null if it is nowhere. */
  protected async locateRun(runId: string): Promise<RunLocation | null> {
    validateRunId(runId);
    const known = this.#runLocations.get(runId);
    if (known && await isRealDirectory(known.runDir)) return known;
    const parents: [string, boolean][] = [
      [this.root, false],
      [path.join(this.root, TRASH_FOLDER), true],
    ];
    for (const [parent, deleted] of parents) {
      for (const entry of listDirSync(parent)) {
        if (!entry.isDirectory || entry.name.startsWith(".")) continue;
        const runDir = path.join(parent, entry.name, runId);
        if (await isRealDirectory(runDir)) {
          const location = { experimentId: entry.name, runDir, deleted };
          this.#runLocations.set(runId, location);
          return location;
        }
      }
    }
    return null;
  }

  /** Absolute path of a run's folder (file-store specific: for tools and tests). */
  async runDir(runId: string): Promise<string> {
    const found = await this.locateRun(runId);
    if (!found) throw this.notFound(runId);
    return found.runDir;
  }

  /** Reads a run's meta.yaml, params, metrics, tags and outputs, noting what is missing. */
  protected readRun(experimentId: string, runDir: string): RunRecord | null {
    const dirName = path.basename(runDir);
    let meta;
    try {
      meta = readYamlMapping(path.join(runDir, "meta.yaml"));
    } catch (error) {
      this.problem(`Malformed run '${dirName}': ${(error as Error).message}`);
      return null;
    }
    if (meta === null) {
      this.problem(
        `Run folder '${runDir}' has no meta.yaml (skipped; MLflow >= 3.7 keeps run metadata ` +
          "in mlflow.db and only artifacts under mlruns/)",
      );
      return null;
    }
    const warnings: string[] = [];
    let runId = asString(meta.run_id) ?? asString(meta.run_uuid);
    if (runId === null) {
      warnings.push("meta.yaml lacks run_id and run_uuid; using the folder name");
      runId = dirName;
    }
    const recordedExperiment = asString(meta.experiment_id);
    if (recordedExperiment === null) warnings.push("meta.yaml lacks experiment_id");
    else if (recordedExperiment !== experimentId) {
      warnings.push(
        `meta.yaml records experiment_id '${recordedExperiment}' but the run is in experiment ` +
          `folder '${experimentId}' (MLflow treats the run as invalid)`,
      );
    }
    let status: RunStatus = "RUNNING";
    const statusCode = asNumber(meta.status);
    if (meta.status === undefined) warnings.push("meta.yaml lacks status (read as RUNNING)");
    else if (statusCode !== null && STATUS_NAMES[statusCode]) status = STATUS_NAMES[statusCode];
    else if (typeof meta.status === "string" && meta.status in STATUS_CODES) {
      status = meta.status as RunStatus;
    } else warnings.push(`meta.yaml has unknown status '${String(meta.status)}'`);
    const startTime = asNumber(meta.start_time);
    if (startTime === null) warnings.push("meta.yaml lacks start_time");
    const userId = asString(meta.user_id);
    if (userId === null) warnings.push("meta.yaml lacks user_id");
    const artifactUri = asString(meta.artifact_uri);
    if (artifactUri === null) warnings.push("meta.yaml lacks artifact_uri");

    const params = readKeyValueDir(path.join(runDir, "params"), "params", warnings);
    if (params === null) warnings.push("params/ folder is missing");
    const tags = readKeyValueDir(path.join(runDir, "tags"), "tags", warnings);
    if (tags === null) warnings.push("tags/ folder is missing");
    const metrics = readMetricsDir(path.join(runDir, "metrics"), false, warnings);
    if (metrics === null) warnings.push("metrics/ folder is missing");

    const outputs: RunOutput[] = [];
    for (const entry of listDirSync(path.join(runDir, "outputs"))) {
      if (!entry.isDirectory) continue;
      try {
        const output = readYamlMapping(path.join(runDir, "outputs", entry.name, "meta.yaml"));
        if (output === null) warnings.push(`outputs/${entry.name}/meta.yaml is missing`);
        else {
          outputs.push({
            modelId: asString(output.destination_id) ?? entry.name,
            step: asNumber(output.step) ?? 0,
          });
        }
      } catch (error) {
        warnings.push(`outputs/${entry.name}/meta.yaml: ${(error as Error).message}`);
      }
    }

    const runName = asString(meta.run_name) || tags?.["mlflow.runName"] || "";
    const writer = tags?.[PROCESS_TAG];
    const stale = status === "RUNNING" && writer !== undefined && processAlive(writer) === false;
    if (stale) {
      const id = parseProcess(writer!)!;
      warnings.push(
        `RUNNING, but its process (pid ${id.pid} on ${id.host}) is gone: killed or crashed, ` +
          "it will not end on its own",
      );
    }
    return {
      info: {
        runId,
        runName,
        experimentId: recordedExperiment ?? experimentId,
        userId: userId ?? "",
        status,
        startTime,
        endTime: asNumber(meta.end_time),
        lifecycleStage: asString(meta.lifecycle_stage) ?? "active",
        artifactUri: artifactUri ?? pathToFileUri(path.join(runDir, "artifacts")),
      },
      params: params ?? {},
      metrics: metrics ?? {},
      tags: tags ?? {},
      outputs,
      warnings,
      ...(stale ? { stale } : {}),
    };
  }

  /** Runs of the query's experiments (active or in `.trash/`), filtered and ordered. */
  async searchRuns(query: RunQuery): Promise<RunRecord[]> {
    const runs: RunRecord[] = [];
    for (const experimentId of query.experimentIds) {
      const location = await this.experimentLocation(experimentId);
      if (!location) {
        throw new Error(`Could not find experiment with ID ${experimentId} in '${this.root}'`);
      }
      for (const entry of listDirSync(location.dir)) {
        if (!entry.isDirectory || RESERVED_EXPERIMENT_FOLDERS.has(entry.name)) continue;
        if (!isRunId(entry.name)) continue;
        // Runs are read without awaiting (cheaper by far); a server still answers in between.
        if (runs.length % RUNS_PER_YIELD === RUNS_PER_YIELD - 1) await nextTask();
        // One unreadable run is reported and skipped; it does not hide the others.
        const runDir = path.join(location.dir, entry.name);
        try {
          const run = this.readRun(experimentId, runDir);
          if (run) runs.push(run);
        } catch (error) {
          this.problem(`Run folder '${runDir}' could not be read (skipped): ${messageOf(error)}`);
        }
      }
    }
    return selectRuns(runs, query);
  }

  /** One run (active or deleted), wherever it is in the store. */
  async getRun(runId: string): Promise<RunRecord> {
    const found = await this.locateRun(runId);
    if (!found) throw this.notFound(runId);
    const run = this.readRun(found.experimentId, found.runDir);
    if (!run) {
      throw new Error(`Run '${runId}' cannot be read: ${this.problems.at(-1) ?? "unknown error"}`);
    }
    return run;
  }

  /** Every point logged for `key`, in file order; empty if the run has no such metric. */
  async getMetricHistory(runId: string, key: string): Promise<MetricPoint[]> {
    validateKey("metric", key);
    const found = await this.locateRun(runId);
    if (!found) throw this.notFound(runId);
    const file = await pathInside(found.runDir, ["metrics", ...key.split("/")]);
    const text = file === null ? null : await readTextBounded(file, READ_LIMITS.metric);
    return text === null ? [] : parseMetricFile(text, key, false, []);
  }

  /**
   * The folder holding a run's artifacts. The store-relative `<run>/artifacts` wins when the run
   * uses the standard layout, so stores copied from another machine still resolve; an
   * `artifact_uri` elsewhere is used only inside the store (the reader's files are the store's).
   */
  protected async artifactRoot(runId: string): Promise<string> {
    const found = await this.locateRun(runId);
    if (!found) throw this.notFound(runId);
    const local = path.join(found.runDir, "artifacts");
    let meta = null;
    try {
      meta = readYamlMapping(path.join(found.runDir, "meta.yaml"));
    } catch {
      // A malformed meta.yaml leaves the standard layout's folder.
    }
    const uri = asString(meta?.artifact_uri);
    if (uri === null || uri.endsWith(`/${runId}/artifacts`) || !/^file:/i.test(uri)) return local;
    const elsewhere = fileUriToPath(uri);
    const rel = path.relative(this.root, elsewhere);
    if (rel.startsWith("..") || path.isAbsolute(rel)) {
      throw new Error(
        `Run '${runId}' keeps its artifacts outside the store ('${uri}'); they are not read`,
      );
    }
    return elsewhere;
  }

  /** A folder or file under the run's artifact root, refusing links on the way; null if absent. */
  async #artifactPath(runId: string, relPath: string): Promise<string | null> {
    const root = await this.artifactRoot(runId);
    const info = await lstatOrNull(root);
    if (info?.isSymlink) {
      throw new Error(`Run '${runId}': its artifacts folder is a symbolic link (not followed)`);
    }
    if (info === null) return null;
    return relPath === "" ? root : await pathInside(root, relPath.split("/"));
  }

  /**
   * Direct children of `relPath` in the run's artifacts (like MlflowClient.list_artifacts);
   * links and special files are left out (reported in `problems`).
   */
  async listArtifacts(runId: string, relPath = ""): Promise<ArtifactInfo[]> {
    if (relPath !== "") validateArtifactPath(relPath, "listArtifacts");
    const dir = await this.#artifactPath(runId, relPath);
    if (dir === null || !(await isRealDirectory(dir))) return [];
    const out: ArtifactInfo[] = [];
    for (const entry of listDirSync(dir)) {
      if (TEMP_FILE_PATTERN.test(entry.name)) continue;
      const rel = relPath === "" ? entry.name : `${relPath}/${entry.name}`;
      const info = await lstatOrNull(path.join(dir, entry.name));
      if (info === null) continue;
      if (!info.isDirectory && !info.isFile) {
        this.problem(`Run '${runId}': artifact '${rel}' is a link or special file (not listed)`);
        continue;
      }
      out.push({ path: rel, isDir: info.isDirectory, fileSize: info.isFile ? info.size : null });
    }
    return out;
  }

  /** The bytes of one artifact file (a regular file: links are not followed). */
  async readArtifact(runId: string, relPath: string): Promise<Uint8Array> {
    validateArtifactPath(relPath, "readArtifact");
    const file = await this.#artifactPath(runId, relPath);
    const bytes = file === null ? null : await readFileBounded(file, READ_LIMITS.artifact);
    if (bytes === null) {
      throw new Deno.errors.NotFound(`Run '${runId}' has no artifact '${relPath}'`);
    }
    return bytes;
  }

  /** MLflow 3 logged models of an experiment (`<experiment>/models/m-…/`). */
  async listLoggedModels(experimentId: string): Promise<LoggedModel[]> {
    const location = await this.experimentLocation(experimentId);
    if (!location) {
      throw new Error(`Could not find experiment with ID ${experimentId} in '${this.root}'`);
    }
    const models: LoggedModel[] = [];
    const modelsDir = path.join(location.dir, "models");
    for (const entry of listDirSync(modelsDir)) {
      if (!entry.isDirectory) continue;
      const dir = path.join(modelsDir, entry.name);
      let meta;
      try {
        meta = readYamlMapping(path.join(dir, "meta.yaml"));
      } catch (error) {
        this.problem(`Malformed logged model '${entry.name}': ${(error as Error).message}`);
        continue;
      }
      if (meta === null) {
        this.problem(`Logged model folder '${dir}' has no meta.yaml (skipped)`);
        continue;
      }
      const warnings: string[] = [];
      const metrics: LoggedModel["metrics"] = {};
      const raw = readMetricsDir(path.join(dir, "metrics"), true, warnings);
      for (const [key, points] of Object.entries(raw ?? {})) {
        metrics[key] = points.map(({ runId, ...p }) => ({ ...p, runId: runId ?? null }));
      }
      const statusCode = asNumber(meta.status);
      models.push({
        modelId: asString(meta.model_id) ?? entry.name,
        name: asString(meta.name) ?? "",
        experimentId: asString(meta.experiment_id) ?? experimentId,
        sourceRunId: asString(meta.source_run_id),
        status: statusCode !== null && MODEL_STATUS_NAMES[statusCode]
          ? MODEL_STATUS_NAMES[statusCode]
          : String(meta.status),
        creationTimestamp: asNumber(meta.creation_timestamp),
        lastUpdatedTimestamp: asNumber(meta.last_updated_timestamp),
        artifactLocation: asString(meta.artifact_location) ??
          pathToFileUri(path.join(dir, "artifacts")),
        params: (readKeyValueDir(path.join(dir, "params"), "params", warnings)) ?? {},
        tags: (readKeyValueDir(path.join(dir, "tags"), "tags", warnings)) ?? {},
        metrics,
        warnings,
      });
    }
    return models;
  }
}
