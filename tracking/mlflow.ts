// MLflow file store (`mlruns/`) writer and reader. Layout, fields and formats follow what MLflow
// 2.8–3.6 writes (shared/MLFLOW-FILESTORE.md, fixtures in tests/fixtures/tracking/mlruns-sample):
//   <root>/<experiment id>/meta.yaml, tags/<key>
//   <root>/<experiment id>/<32-hex run id>/meta.yaml, metrics/<key>, params/<key>, tags/<key>,
//                                           artifacts/…, outputs/<model id>/meta.yaml (3.x)
//   <root>/<experiment id>/models/m-<32 hex>/… (3.x logged models), <root>/.trash/ (deleted)
// Every file is written atomically (tracking/files.ts), so a reader never sees a torn file.
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { TEMP_FILE_PATTERN, writeFileAtomic } from "./files.ts";
import { generateRunName } from "./names.ts";
import { dumpYaml, parseYaml, pythonFloatRepr, type YamlValue } from "./yaml.ts";

export type RunStatus = "RUNNING" | "SCHEDULED" | "FINISHED" | "FAILED" | "KILLED";

// meta.yaml stores the status as MLflow's RunStatus enum integer.
const STATUS_CODES: Record<RunStatus, number> = {
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
const SOURCE_TYPE_LOCAL = 4;

const DEFAULT_EXPERIMENT_ID = "0";
const DEFAULT_EXPERIMENT_NAME = "Default";
const TRASH_FOLDER = ".trash";
// Root-level folder of the model registry file store: never an experiment.
const REGISTRY_FOLDER = "models";
// Experiment sub-folders that are not runs.
const RESERVED_EXPERIMENT_FOLDERS = new Set(["tags", "datasets", "traces", "models"]);

const MAX_KEY_LENGTH = 250;
const MAX_PARAM_VALUE_LENGTH = 6000;
const MAX_TAG_VALUE_LENGTH = 5000;
const MAX_EXPERIMENT_NAME_LENGTH = 500;
const RUN_ID_RE = /^[a-zA-Z0-9][\w-]{0,255}$/;
const EXPERIMENT_ID_RE = /^[a-zA-Z0-9][\w-]{0,63}$/;
// Python's `^[/\w.\- ]*$` with Unicode \w (letters, numbers, underscore).
const KEY_RE = /^[/\p{L}\p{N}_. -]*$/u;

export interface Experiment {
  experimentId: string;
  name: string;
  artifactLocation: string;
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
  /** Full history per key, in file order (MLflow 3 stores may repeat lines; see latestMetrics). */
  metrics: Record<string, MetricPoint[]>;
  tags: Record<string, string>;
  outputs: RunOutput[];
  /** What was missing or malformed (the run is still returned as far as it could be read). */
  warnings: string[];
}

export interface ArtifactInfo {
  /** Relative to the run's artifact root, `/`-separated. */
  path: string;
  isDir: boolean;
  /** Bytes; null for directories. */
  fileSize: number | null;
}

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

export interface StartRunOptions {
  runName?: string;
  tags?: Record<string, string>;
  /** Epoch milliseconds; defaults to now. */
  startTime?: number;
  /** Value of `mlflow.source.name`; defaults to the main module, relative to the cwd. */
  sourceName?: string;
}

// ---------------------------------------------------------------------------------------------
// Validation (same rules and wording as mlflow/utils/validation.py)

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

function validateKey(kind: "metric" | "parameter" | "tag", key: unknown): asserts key is string {
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

function validateLength(what: string, limit: number, value: string): void {
  const length = [...value].length;
  if (length > limit) {
    throw new Error(
      `${what} '${value.slice(0, 250)}' had length ${length}, which exceeded length limit of ` +
        `${limit}`,
    );
  }
}

function validateRunId(runId: string): void {
  if (typeof runId !== "string" || !RUN_ID_RE.test(runId)) {
    throw new Error(`Invalid run ID: '${runId}'`);
  }
}

function validateExperimentId(experimentId: string): void {
  if (typeof experimentId !== "string" || !EXPERIMENT_ID_RE.test(experimentId)) {
    throw new Error(`Invalid experiment ID: '${experimentId}'`);
  }
}

function validateExperimentName(name: unknown): asserts name is string {
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
function validateArtifactPath(relPath: string, what: string): void {
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
function valueToString(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "True" : "False";
  if (typeof value === "number") {
    return Number.isInteger(value) ? String(value) : pythonFloatRepr(value);
  }
  if (typeof value === "bigint") return value.toString();
  return JSON.stringify(value);
}

// ---------------------------------------------------------------------------------------------
// URIs and paths

/** Python's urllib.parse.quote(safe="/"): everything but A-Za-z0-9_.-~ and `/` is %-encoded. */
function quotePath(p: string): string {
  return p.split("/").map((segment) =>
    encodeURIComponent(segment).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    )
  ).join("/");
}

/** `file://` URI of an absolute path, as pathlib's `as_uri()` writes it (MLflow does). */
export function pathToFileUri(absPath: string): string {
  const p = absPath.replaceAll("\\", "/");
  const drive = /^[A-Za-z]:/.exec(p);
  if (drive) return `file:///${drive[0]}${quotePath(p.slice(2))}`;
  return `file://${quotePath(p)}`;
}

/** Local path of a `file:` URI (`file:///abs`, `file://localhost/abs`, `file:rel`, `file:/abs`). */
export function fileUriToPath(uri: string): string {
  if (!/^file:/i.test(uri)) throw new Error(`Not a file URI: '${uri}'`);
  let rest = uri.slice(5);
  if (rest.startsWith("//")) {
    const slash = rest.indexOf("/", 2);
    const host = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
    if (host !== "" && host.toLowerCase() !== "localhost") {
      throw new Error(`File URI '${uri}' names a remote host '${host}'; only local paths work`);
    }
    rest = slash < 0 ? "/" : rest.slice(slash);
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    throw new Error(`File URI '${uri}' has a malformed %-escape`);
  }
  // file:///C:/x → C:/x
  return /^\/[A-Za-z]:/.test(decoded) ? decoded.slice(1) : decoded;
}

function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The tracking root directory from `uri`, else MLFLOW_TRACKING_URI, else `./mlruns`. Accepts
 * `file:<dir>`, `file:///abs`, and plain paths; any other scheme is an error.
 */
export function resolveTrackingRoot(uri?: string): string {
  const raw = uri ?? envVar("MLFLOW_TRACKING_URI") ?? "./mlruns";
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(raw);
  // A single letter followed by ':' is a Windows drive, not a scheme.
  if (scheme && scheme[1].length > 1) {
    if (scheme[1].toLowerCase() !== "file") {
      throw new Error(
        `Tracking URI '${raw}' uses the '${scheme[1]}' scheme, but only MLflow's file store is ` +
          "supported: use file:<dir>, file:///absolute/dir or a plain directory path " +
          "(MLFLOW_TRACKING_URI or MlflowStore(root))",
      );
    }
    return path.resolve(fileUriToPath(raw));
  }
  if (raw.trim() === "") throw new Error("Tracking URI is empty");
  return path.resolve(raw);
}

async function statOrNull(p: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(p);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

async function readTextOrNull(p: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(p);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

async function listDir(dir: string): Promise<Deno.DirEntry[]> {
  const entries: Deno.DirEntry[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) entries.push(entry);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Files under `dir`, as `/`-separated relative paths (keys may contain `/`), sorted. */
async function listFilesRecursive(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await listDir(dir)) {
    if (TEMP_FILE_PATTERN.test(entry.name)) continue;
    const rel = prefix + entry.name;
    if (entry.isDirectory) {
      out.push(...await listFilesRecursive(path.join(dir, entry.name), rel + "/"));
    } else out.push(rel);
  }
  return out;
}

/** Reads a flat key → file-content folder (params/, tags/); null when the folder is absent. */
async function readKeyValueDir(dir: string): Promise<Record<string, string> | null> {
  if (!(await statOrNull(dir))?.isDirectory) return null;
  const out: Record<string, string> = {};
  for (const key of await listFilesRecursive(dir)) {
    out[key] = await Deno.readTextFile(path.join(dir, ...key.split("/")));
  }
  return out;
}

function asString(value: YamlValue | undefined): string | null {
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

async function readYamlMapping(
  file: string,
): Promise<{ [key: string]: YamlValue } | null> {
  const text = await readTextOrNull(file);
  if (text === null) return null;
  const doc = parseYaml(text, file);
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    throw new Error(`${file}: expected a YAML mapping`);
  }
  return doc;
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

async function readMetricsDir(
  dir: string,
  allowRunId: boolean,
  warnings: string[],
): Promise<Record<string, (MetricPoint & { runId?: string })[]> | null> {
  if (!(await statOrNull(dir))?.isDirectory) return null;
  const out: Record<string, (MetricPoint & { runId?: string })[]> = {};
  for (const key of await listFilesRecursive(dir)) {
    const text = await Deno.readTextFile(path.join(dir, ...key.split("/")));
    const points = parseMetricFile(text, key, allowRunId, warnings);
    if (points.length > 0) out[key] = points;
  }
  return out;
}

/**
 * The value MLflow shows for each metric: the entry with the largest (step, timestamp, value),
 * which also makes the duplicated lines of MLflow 3 stores harmless.
 */
export function latestMetrics(run: RunRecord): Record<string, MetricPoint> {
  const out: Record<string, MetricPoint> = {};
  for (const [key, history] of Object.entries(run.metrics)) {
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

// ---------------------------------------------------------------------------------------------
// Run context (standard tags)

/** getpass.getuser(): the login environment variables, then the password database. */
function currentUser(): string {
  const fromEnv = envVar("LOGNAME") ?? envVar("USER") ?? envVar("LNAME") ?? envVar("USERNAME");
  if (fromEnv) return fromEnv;
  try {
    return os.userInfo().username || "unknown";
  } catch {
    return "unknown";
  }
}

function mainModulePath(): string | null {
  try {
    return Deno.mainModule.startsWith("file:") ? fileURLToPath(Deno.mainModule) : null;
  } catch {
    return null;
  }
}

async function gitCommit(dir: string): Promise<string | null> {
  try {
    const { success, stdout } = await new Deno.Command("git", {
      args: ["rev-parse", "HEAD"],
      cwd: dir,
      stdout: "piped",
      stderr: "null",
    }).output();
    const sha = new TextDecoder().decode(stdout).trim();
    return success && /^[0-9a-f]{40,64}$/.test(sha) ? sha : null;
  } catch {
    return null; // no git binary, or no permission to run it
  }
}

async function contextTags(sourceName?: string): Promise<Record<string, string>> {
  const main = mainModulePath();
  let name = sourceName;
  if (name === undefined) {
    if (main === null) name = Deno.mainModule;
    else {
      const rel = path.relative(Deno.cwd(), main);
      name = rel.startsWith("..") || path.isAbsolute(rel) ? main : rel;
    }
  }
  const tags: Record<string, string> = {
    "mlflow.user": currentUser(),
    "mlflow.source.name": name,
    "mlflow.source.type": "LOCAL",
  };
  const commit = await gitCommit(main === null ? Deno.cwd() : path.dirname(main));
  if (commit !== null) tags["mlflow.source.git.commit"] = commit;
  return tags;
}

function randomExperimentId(): string {
  // MLflow uses 18-digit random integers without a leading zero.
  const digits = crypto.getRandomValues(new Uint8Array(18));
  return Array.from(digits, (d, i) => String(i === 0 ? 1 + (d % 9) : d % 10)).join("");
}

// ---------------------------------------------------------------------------------------------
// Store

interface ExperimentLocation {
  dir: string;
  deleted: boolean;
}

/** An MLflow file store rooted at a local directory: writer and reader. */
export class MlflowStore {
  /** Absolute path of the tracking root. */
  readonly root: string;
  /** What the reader skipped or could not read, e.g. run folders without meta.yaml. */
  readonly problems: string[] = [];
  #ready = false;

  constructor(root?: string) {
    this.root = resolveTrackingRoot(root);
  }

  #problem(message: string): void {
    if (!this.problems.includes(message)) this.problems.push(message);
  }

  /** Creates the root, experiment 0 "Default" and `.trash/` as MLflow's FileStore does. */
  async #ensureRoot(): Promise<void> {
    if (this.#ready) return;
    const info = await statOrNull(this.root);
    if (info === null) {
      await Deno.mkdir(this.root, { recursive: true });
      await this.#createExperiment(DEFAULT_EXPERIMENT_NAME, DEFAULT_EXPERIMENT_ID);
    } else if (!info.isDirectory) {
      throw new Error(`Tracking root '${this.root}' exists but is not a directory`);
    }
    await Deno.mkdir(path.join(this.root, TRASH_FOLDER), { recursive: true });
    this.#ready = true;
  }

  async #createExperiment(name: string, experimentId: string): Promise<void> {
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

  async #experimentLocation(experimentId: string): Promise<ExperimentLocation | null> {
    validateExperimentId(experimentId);
    for (const deleted of [false, true]) {
      const dir = deleted
        ? path.join(this.root, TRASH_FOLDER, experimentId)
        : path.join(this.root, experimentId);
      if ((await statOrNull(dir))?.isDirectory) return { dir, deleted };
    }
    return null;
  }

  async #readExperiment(experimentId: string, dir: string): Promise<Experiment | null> {
    let meta;
    try {
      meta = await readYamlMapping(path.join(dir, "meta.yaml"));
    } catch (error) {
      this.#problem(`Malformed experiment '${experimentId}': ${(error as Error).message}`);
      return null;
    }
    if (meta === null) {
      this.#problem(
        `Experiment folder '${dir}' has no meta.yaml (skipped; MLflow >= 3.7 keeps experiment ` +
          "metadata in mlflow.db and only artifacts under mlruns/)",
      );
      return null;
    }
    const missing = ["experiment_id", "name", "artifact_location"].filter((k) =>
      asString(meta[k]) === null
    );
    if (missing.length > 0) {
      this.#problem(
        `Malformed experiment '${experimentId}': meta.yaml lacks ${missing.join(", ")}`,
      );
      return null;
    }
    const recordedId = asString(meta.experiment_id)!;
    if (recordedId !== experimentId) {
      this.#problem(
        `Experiment ID mismatch for exp ${experimentId}: recorded as '${recordedId}' in ` +
          "meta.yaml; experiment ignored",
      );
      return null;
    }
    return {
      experimentId,
      name: asString(meta.name)!,
      artifactLocation: asString(meta.artifact_location)!,
      lifecycleStage: asString(meta.lifecycle_stage) ?? "active",
      creationTime: asNumber(meta.creation_time),
      lastUpdateTime: asNumber(meta.last_update_time),
      tags: (await readKeyValueDir(path.join(dir, "tags"))) ?? {},
    };
  }

  /** Experiments, newest first (MLflow's order); deleted ones (in .trash) only if asked. */
  async listExperiments(options: { includeDeleted?: boolean } = {}): Promise<Experiment[]> {
    const found: Experiment[] = [];
    const parents: [string, boolean][] = [[this.root, false]];
    if (options.includeDeleted) parents.push([path.join(this.root, TRASH_FOLDER), true]);
    for (const [parent, inTrash] of parents) {
      for (const entry of await listDir(parent)) {
        if (!entry.isDirectory || entry.name.startsWith(".")) continue;
        if (!inTrash && entry.name === REGISTRY_FOLDER) continue;
        const experiment = await this.#readExperiment(entry.name, path.join(parent, entry.name));
        if (experiment && (options.includeDeleted || experiment.lifecycleStage === "active")) {
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
    const location = await this.#experimentLocation(experimentId);
    const experiment = location && await this.#readExperiment(experimentId, location.dir);
    if (!experiment) {
      throw new Error(`Could not find experiment with ID ${experimentId} in '${this.root}'`);
    }
    return experiment;
  }

  /** The active experiment with this name, or null. */
  async getExperimentByName(name: string): Promise<Experiment | null> {
    return (await this.listExperiments()).find((e) => e.name === name) ?? null;
  }

  /** Id of the experiment named `name`, created (like `mlflow.set_experiment`) if absent. */
  async getOrCreateExperiment(name: string): Promise<string> {
    validateExperimentName(name);
    await this.#ensureRoot();
    const existing = (await this.listExperiments({ includeDeleted: true }))
      .find((e) => e.name === name);
    if (existing) {
      if (existing.lifecycleStage !== "active") {
        throw new Error(
          `Cannot use the deleted experiment '${name}' (id ${existing.experimentId}). Restore ` +
            `it, or permanently delete it from '${path.join(this.root, TRASH_FOLDER)}' to ` +
            "create a new one with this name.",
        );
      }
      return existing.experimentId;
    }
    let id = name === DEFAULT_EXPERIMENT_NAME ? DEFAULT_EXPERIMENT_ID : randomExperimentId();
    while (await this.#experimentLocation(id)) id = randomExperimentId();
    await this.#createExperiment(name, id);
    return id;
  }

  /** Sets an experiment tag (`<experiment>/tags/<key>`). */
  async setExperimentTag(experimentId: string, key: string, value: unknown): Promise<void> {
    validateKey("tag", key);
    const text = valueToString(value);
    validateLength("Tag value", MAX_TAG_VALUE_LENGTH, text);
    const experiment = await this.getExperiment(experimentId);
    if (experiment.lifecycleStage !== "active") {
      throw new Error(`The experiment ${experimentId} must be active to set tags`);
    }
    const location = (await this.#experimentLocation(experimentId))!;
    await writeFileAtomic(path.join(location.dir, "tags", ...key.split("/")), text);
  }

  /** Creates a RUNNING run with the standard `mlflow.*` tags. */
  async startRun(experimentId: string, options: StartRunOptions = {}): Promise<Run> {
    await this.#ensureRoot();
    const experiment = await this.getExperiment(experimentId);
    if (experiment.lifecycleStage !== "active") {
      throw new Error(`Could not create run under non-active experiment with ID ${experimentId}.`);
    }
    const userTags = { ...options.tags };
    for (const [key, value] of Object.entries(userTags)) {
      validateKey("tag", key);
      userTags[key] = valueToString(value);
      validateLength("Tag value", MAX_TAG_VALUE_LENGTH, userTags[key]);
    }
    const tagName = userTags["mlflow.runName"];
    if (options.runName && tagName && options.runName !== tagName) {
      throw new Error(
        "Both 'runName' and the 'mlflow.runName' tag are specified, but with different values " +
          `(runName='${options.runName}', mlflow.runName='${tagName}').`,
      );
    }
    const runName = options.runName || tagName || generateRunName();
    const startTime = options.startTime ?? Date.now();
    if (!Number.isSafeInteger(startTime) || startTime < 0) {
      throw new Error(`startRun: startTime must be epoch milliseconds, got ${startTime}`);
    }
    const context = await contextTags(options.sourceName);
    const tags = { ...context, ...userTags, "mlflow.runName": runName };

    const runId = crypto.randomUUID().replaceAll("-", "");
    const location = (await this.#experimentLocation(experimentId))!;
    const runDir = path.join(location.dir, runId);
    const meta: { [key: string]: YamlValue } = {
      artifact_uri: pathToFileUri(path.join(runDir, "artifacts")),
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
      user_id: context["mlflow.user"],
    };
    await Deno.mkdir(runDir, { recursive: true });
    await writeFileAtomic(path.join(runDir, "meta.yaml"), dumpYaml(meta));
    for (const sub of ["metrics", "params", "artifacts"]) {
      await Deno.mkdir(path.join(runDir, sub), { recursive: true });
    }
    const run = new Run(runDir, meta, new Map(), new Map());
    for (const [key, value] of Object.entries(tags)) await run.setTag(key, value);
    return run;
  }

  /** Reopens an existing run for logging (status back to RUNNING), e.g. for `--resume`. */
  async resumeRun(runId: string): Promise<Run> {
    await this.#ensureRoot();
    const found = await this.#findRun(runId);
    if (!found) throw new Error(`Run '${runId}' not found in '${this.root}'`);
    const meta = await readYamlMapping(path.join(found.runDir, "meta.yaml"));
    if (meta === null) throw new Error(`Run '${runId}' has no meta.yaml; cannot resume it`);
    if (found.deleted || (asString(meta.lifecycle_stage) ?? "active") !== "active") {
      throw new Error(`Run '${runId}' is deleted; restore it before resuming`);
    }
    const params = new Map(
      Object.entries((await readKeyValueDir(path.join(found.runDir, "params"))) ?? {}),
    );
    const metricText = new Map<string, string>();
    const metricsDir = path.join(found.runDir, "metrics");
    for (const key of await listFilesRecursive(metricsDir)) {
      const text = await Deno.readTextFile(path.join(metricsDir, ...key.split("/")));
      metricText.set(key, text === "" || text.endsWith("\n") ? text : text + "\n");
    }
    const run = new Run(found.runDir, meta, params, metricText);
    await run.setStatus("RUNNING", null);
    return run;
  }

  async #findRun(
    runId: string,
  ): Promise<{ experimentId: string; runDir: string; deleted: boolean } | null> {
    validateRunId(runId);
    const parents: [string, boolean][] = [
      [this.root, false],
      [path.join(this.root, TRASH_FOLDER), true],
    ];
    for (const [parent, deleted] of parents) {
      for (const entry of await listDir(parent)) {
        if (!entry.isDirectory || entry.name.startsWith(".")) continue;
        const runDir = path.join(parent, entry.name, runId);
        if ((await statOrNull(runDir))?.isDirectory) {
          return { experimentId: entry.name, runDir, deleted };
        }
      }
    }
    return null;
  }

  /** Reads a run's meta.yaml, params, metrics, tags and outputs, noting what is missing. */
  async #readRun(experimentId: string, runDir: string): Promise<RunRecord | null> {
    const dirName = path.basename(runDir);
    let meta;
    try {
      meta = await readYamlMapping(path.join(runDir, "meta.yaml"));
    } catch (error) {
      this.#problem(`Malformed run '${dirName}': ${(error as Error).message}`);
      return null;
    }
    if (meta === null) {
      this.#problem(
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

    const params = await readKeyValueDir(path.join(runDir, "params"));
    if (params === null) warnings.push("params/ folder is missing");
    const tags = await readKeyValueDir(path.join(runDir, "tags"));
    if (tags === null) warnings.push("tags/ folder is missing");
    const metrics = await readMetricsDir(path.join(runDir, "metrics"), false, warnings);
    if (metrics === null) warnings.push("metrics/ folder is missing");

    const outputs: RunOutput[] = [];
    for (const entry of await listDir(path.join(runDir, "outputs"))) {
      if (!entry.isDirectory) continue;
      try {
        const output = await readYamlMapping(path.join(runDir, "outputs", entry.name, "meta.yaml"));
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
    };
  }

  /** Full records of an experiment's runs, newest first; deleted runs only if asked. */
  async listRuns(
    experimentId: string,
    options: { includeDeleted?: boolean } = {},
  ): Promise<RunRecord[]> {
    const location = await this.#experimentLocation(experimentId);
    if (!location) {
      throw new Error(`Could not find experiment with ID ${experimentId} in '${this.root}'`);
    }
    const runs: RunRecord[] = [];
    for (const entry of await listDir(location.dir)) {
      if (!entry.isDirectory || RESERVED_EXPERIMENT_FOLDERS.has(entry.name)) continue;
      if (!RUN_ID_RE.test(entry.name)) continue;
      const run = await this.#readRun(experimentId, path.join(location.dir, entry.name));
      if (run && (options.includeDeleted || run.info.lifecycleStage === "active")) runs.push(run);
    }
    return runs.sort((a, b) =>
      (b.info.startTime ?? 0) - (a.info.startTime ?? 0) ||
      (a.info.runId < b.info.runId ? -1 : a.info.runId > b.info.runId ? 1 : 0)
    );
  }

  /** One run (active or deleted), wherever it is in the store. */
  async getRun(runId: string): Promise<RunRecord> {
    const found = await this.#findRun(runId);
    if (!found) throw new Error(`Run '${runId}' not found in '${this.root}'`);
    const run = await this.#readRun(found.experimentId, found.runDir);
    if (!run) {
      throw new Error(`Run '${runId}' cannot be read: ${this.problems.at(-1) ?? "unknown error"}`);
    }
    return run;
  }

  /**
   * The folder holding a run's artifacts. The store-relative `<run>/artifacts` wins when the run
   * uses the standard layout, so stores copied from another machine still resolve.
   */
  async #artifactRoot(runId: string): Promise<string> {
    const found = await this.#findRun(runId);
    if (!found) throw new Error(`Run '${runId}' not found in '${this.root}'`);
    const local = path.join(found.runDir, "artifacts");
    const meta = await readYamlMapping(path.join(found.runDir, "meta.yaml")).catch(() => null);
    const uri = asString(meta?.artifact_uri);
    if (uri === null || uri.endsWith(`/${runId}/artifacts`) || !/^file:/i.test(uri)) return local;
    return fileUriToPath(uri);
  }

  /** Direct children of `relPath` in the run's artifacts (like MlflowClient.list_artifacts). */
  async listArtifacts(runId: string, relPath = ""): Promise<ArtifactInfo[]> {
    if (relPath !== "") validateArtifactPath(relPath, "listArtifacts");
    const root = await this.#artifactRoot(runId);
    const dir = relPath === "" ? root : path.join(root, ...relPath.split("/"));
    if (!(await statOrNull(dir))?.isDirectory) return [];
    const out: ArtifactInfo[] = [];
    for (const entry of await listDir(dir)) {
      if (TEMP_FILE_PATTERN.test(entry.name)) continue;
      const rel = relPath === "" ? entry.name : `${relPath}/${entry.name}`;
      const isDir = entry.isDirectory;
      const size = isDir ? null : (await Deno.stat(path.join(dir, entry.name))).size;
      out.push({ path: rel, isDir, fileSize: size });
    }
    return out;
  }

  /** The bytes of one artifact file. */
  async readArtifact(runId: string, relPath: string): Promise<Uint8Array> {
    validateArtifactPath(relPath, "readArtifact");
    return await Deno.readFile(path.join(await this.#artifactRoot(runId), ...relPath.split("/")));
  }

  /** MLflow 3 logged models of an experiment (`<experiment>/models/m-…/`). */
  async listLoggedModels(experimentId: string): Promise<LoggedModel[]> {
    const location = await this.#experimentLocation(experimentId);
    if (!location) {
      throw new Error(`Could not find experiment with ID ${experimentId} in '${this.root}'`);
    }
    const models: LoggedModel[] = [];
    const modelsDir = path.join(location.dir, "models");
    for (const entry of await listDir(modelsDir)) {
      if (!entry.isDirectory) continue;
      const dir = path.join(modelsDir, entry.name);
      let meta;
      try {
        meta = await readYamlMapping(path.join(dir, "meta.yaml"));
      } catch (error) {
        this.#problem(`Malformed logged model '${entry.name}': ${(error as Error).message}`);
        continue;
      }
      if (meta === null) {
        this.#problem(`Logged model folder '${dir}' has no meta.yaml (skipped)`);
        continue;
      }
      const warnings: string[] = [];
      const metrics: LoggedModel["metrics"] = {};
      const raw = await readMetricsDir(path.join(dir, "metrics"), true, warnings);
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
        params: (await readKeyValueDir(path.join(dir, "params"))) ?? {},
        tags: (await readKeyValueDir(path.join(dir, "tags"))) ?? {},
        metrics,
        warnings,
      });
    }
    return models;
  }
}

// ---------------------------------------------------------------------------------------------
// Run (writer)

/**
 * An open run. Logging calls may be awaited or fired and forgotten: writes are applied in call
 * order, and repeated metric appends to one key that queue up are coalesced into one write.
 */
export class Run {
  readonly id: string;
  readonly experimentId: string;
  /** Absolute path of the run folder. */
  readonly dir: string;
  /** Absolute path of the artifact folder (`<run>/artifacts`). */
  readonly artifactDir: string;
  #meta: { [key: string]: YamlValue };
  #params: Map<string, string>;
  #metricText: Map<string, string>;
  #pendingMetric = new Map<string, Promise<void>>();
  #queue: Promise<void> = Promise.resolve();

  constructor(
    dir: string,
    meta: { [key: string]: YamlValue },
    params: Map<string, string>,
    metricText: Map<string, string>,
  ) {
    this.dir = dir;
    this.id = path.basename(dir);
    this.experimentId = String(meta.experiment_id);
    this.artifactDir = path.join(dir, "artifacts");
    this.#meta = meta;
    this.#params = params;
    this.#metricText = metricText;
  }

  get name(): string {
    return String(this.#meta.run_name ?? "");
  }

  get status(): RunStatus {
    return STATUS_NAMES[Number(this.#meta.status)] ?? "RUNNING";
  }

  #enqueue(task: () => Promise<void>): Promise<void> {
    const result = this.#queue.then(task);
    this.#queue = result.catch(() => {});
    return result;
  }

  #writeMeta(): Promise<void> {
    const text = dumpYaml(this.#meta);
    return this.#enqueue(() => writeFileAtomic(path.join(this.dir, "meta.yaml"), text));
  }

  /** Logs a param; params are immutable, so a different value for a logged key is an error. */
  async logParam(key: string, value: unknown): Promise<void> {
    validateKey("parameter", key);
    const text = valueToString(value);
    validateLength("Param value", MAX_PARAM_VALUE_LENGTH, text);
    const previous = this.#params.get(key);
    if (previous !== undefined) {
      if (previous !== text) {
        throw new Error(
          `Changing param values is not allowed. Param with key='${key}' was already logged ` +
            `with value='${previous}' for run ID='${this.id}'. Attempted logging new value ` +
            `'${text}'.`,
        );
      }
      return;
    }
    this.#params.set(key, text);
    await this.#enqueue(() =>
      writeFileAtomic(path.join(this.dir, "params", ...key.split("/")), text)
    );
  }

  async logParams(params: Record<string, unknown>): Promise<void> {
    await Promise.all(Object.entries(params).map(([key, value]) => this.logParam(key, value)));
  }

  /** Appends `timestamp value step` to metrics/<key> (values written like Python's str(float)). */
  async logMetric(key: string, value: number, step = 0, timestamp = Date.now()): Promise<void> {
    validateKey("metric", key);
    if (typeof value !== "number") {
      throw new Error(
        `Got invalid value ${String(value)} for metric '${key}' (timestamp=${timestamp}). ` +
          "Please specify value as a valid double (64-bit floating point)",
      );
    }
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
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
    this.#metricText.set(
      key,
      (this.#metricText.get(key) ?? "") + formatMetricLine({ timestamp, value, step }),
    );
    const pending = this.#pendingMetric.get(key);
    if (pending) return await pending;
    const file = path.join(this.dir, "metrics", ...key.split("/"));
    const write = this.#enqueue(() => {
      // Everything appended until now rides along with this write.
      this.#pendingMetric.delete(key);
      return writeFileAtomic(file, this.#metricText.get(key)!);
    });
    this.#pendingMetric.set(key, write);
    await write;
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

  /** Sets a tag (overwrites); `mlflow.runName` also renames the run in meta.yaml. */
  async setTag(key: string, value: unknown): Promise<void> {
    validateKey("tag", key);
    const text = valueToString(value);
    validateLength("Tag value", MAX_TAG_VALUE_LENGTH, text);
    const write = this.#enqueue(() =>
      writeFileAtomic(path.join(this.dir, "tags", ...key.split("/")), text)
    );
    if (key === "mlflow.runName" && this.#meta.run_name !== text) {
      this.#meta.run_name = text;
      await Promise.all([write, this.#writeMeta()]);
    } else await write;
  }

  /** Writes an artifact file at `relPath` under the run's artifact folder. */
  async logArtifact(
    relPath: string,
    data: Uint8Array | string | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  ): Promise<void> {
    validateArtifactPath(relPath, "logArtifact");
    await this.#enqueue(() =>
      writeFileAtomic(path.join(this.artifactDir, ...relPath.split("/")), data)
    );
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

  /** Resolves when every write issued so far has reached the disk. */
  async flush(): Promise<void> {
    await this.#queue;
  }

  /** @internal Rewrites status and end time in meta.yaml. */
  async setStatus(status: RunStatus, endTime: number | null): Promise<void> {
    this.#meta.status = STATUS_CODES[status];
    this.#meta.end_time = endTime;
    // MLflow writes deleted_time: null at creation and drops it when it rewrites the meta.
    delete this.#meta.deleted_time;
    await this.#writeMeta();
  }

  /** Ends the run: FINISHED, FAILED or KILLED, with end_time, after pending writes land. */
  async end(status: "FINISHED" | "FAILED" | "KILLED" = "FINISHED", endTime = Date.now()) {
    if (!["FINISHED", "FAILED", "KILLED"].includes(status)) {
      throw new Error(`end: status must be FINISHED, FAILED or KILLED, got '${status}'`);
    }
    await this.flush();
    await this.setStatus(status, endTime);
  }
}

/**
 * Runs `fn` inside a new run of experiment `experimentName` (created if absent): FINISHED when
 * it resolves, FAILED when it throws (the error is rethrown), KILLED on SIGINT/SIGTERM — then the
 * process exits with 128 + signal number, as it would have without the listener.
 */
export async function withRun<T>(
  store: MlflowStore,
  experimentName: string,
  options: StartRunOptions,
  fn: (run: Run) => Promise<T>,
): Promise<T> {
  const experimentId = await store.getOrCreateExperiment(experimentName);
  const run = await store.startRun(experimentId, options);
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
