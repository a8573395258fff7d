// Model weights, whole models (config + weights) and full training checkpoints as safetensors
// bytes. Tensor names are PyTorch-style dotted paths (`0.weight`, `layers.2.running_mean`);
// everything that is not a tensor (config, counters, RNG state) travels as JSON strings in the
// header's `__metadata__`.
import { type DType, formatShape, Tensor, tidy, withAllocationLimit } from "../tensor.ts";
import { runtime } from "../runtime.ts";
import { Rng, type RngState } from "../random.ts";
import type { AnyModule } from "../nn/module.ts";
import type { Optimizer } from "../optim/optimizers.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type EntryData,
  type EntryDType,
  type TensorEntry,
} from "./safetensors.ts";
import { buildModel, codecOf, type JsonValue, type LayerConfig, modelConfig } from "./config.ts";

/** Tensors by dotted name, on the host. */
export type ModelState = Record<string, TensorEntry>;

const ENTRY_DTYPE = { f32: "F32", i32: "I32", u32: "U32" } as const;

function hostArray(dtype: DType, bytes: ArrayBuffer): EntryData {
  return dtype === "f32"
    ? new Float32Array(bytes)
    : dtype === "i32"
    ? new Int32Array(bytes)
    : new Uint32Array(bytes);
}

/**
 * Reads tensors back in as few round trips as possible: they are copied back to back into one
 * scratch buffer per storage-binding limit's worth and read together (each readback costs a
 * full GPU sync).
 */
async function readTensors(tensors: readonly Tensor[]): Promise<EntryData[]> {
  const rt = runtime();
  const out: EntryData[] = tensors.map((t) => hostArray(t.dtype, new ArrayBuffer(0)));
  let group: number[] = [];
  let groupBytes = 0;
  const flush = async () => {
    if (groupBytes > 0) {
      const scratch = rt.alloc(groupBytes);
      let at = 0;
      for (const i of group) {
        rt.copy(tensors[i].storage, 0, scratch, at, tensors[i].size * 4);
        at += tensors[i].size * 4;
      }
      const bytes = await rt.read(scratch, groupBytes);
      rt.release(scratch);
      at = 0;
      for (const i of group) {
        out[i] = hostArray(tensors[i].dtype, bytes.slice(at, at + tensors[i].size * 4));
        at += tensors[i].size * 4;
      }
    }
    group = [];
    groupBytes = 0;
  };
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    t.assertAlive("modelState");
    if (t.size === 0) continue;
    if (groupBytes + t.size * 4 > rt.ctx.maxBinding) await flush();
    group.push(i);
    groupBytes += t.size * 4;
  }
  await flush();
  return out;
}

async function readNamed(named: [string, Tensor][], prefix = ""): Promise<ModelState> {
  const data = await readTensors(named.map(([, t]) => t));
  const state: ModelState = {};
  named.forEach(([name, t], i) => {
    state[prefix + name] = { dtype: ENTRY_DTYPE[t.dtype], shape: [...t.shape], data: data[i] };
  });
  return state;
}

function namedState(module: AnyModule): [string, Tensor][] {
  return [...module.namedParameters(), ...module.namedBuffers()];
}

/** Parameters and buffers (BatchNorm moving statistics) read back to the host, by name. */
export function modelState(module: AnyModule): Promise<ModelState> {
  return readNamed(namedState(module));
}

function listNames(names: string[]): string {
  return `[${names.join(", ")}]`;
}

/** Throws unless `state` has exactly the module's tensor names with matching shapes and dtypes. */
function checkModelState(where: string, module: AnyModule, state: ModelState): void {
  const own = new Map(namedState(module));
  const missing = [...own.keys()].filter((name) => !Object.hasOwn(state, name));
  const unexpected = Object.keys(state).filter((name) => !own.has(name));
  if (missing.length || unexpected.length) {
    throw new Error(
      `${where}: tensor names differ from the model's; missing ${listNames(missing)}, ` +
        `unexpected ${listNames(unexpected)}`,
    );
  }
  for (const [name, t] of own) {
    const entry = state[name];
    if (entry.shape.join() !== t.shape.join()) {
      throw new Error(
        `${where}: '${name}' has shape ${formatShape(entry.shape)} in the state, ` +
          `the model expects ${formatShape(t.shape)}`,
      );
    }
    const dtype: EntryDType = ENTRY_DTYPE[t.dtype];
    if (entry.dtype !== dtype) {
      throw new Error(
        `${where}: '${name}' is ${entry.dtype} in the state, the model expects ${dtype}`,
      );
    }
    if (entry.data.length !== t.size) {
      throw new Error(
        `${where}: '${name}' has ${entry.data.length} values for shape ${formatShape(t.shape)}`,
      );
    }
  }
}

function writeModelState(module: AnyModule, state: ModelState): void {
  const rt = runtime();
  for (const [name, t] of namedState(module)) {
    t.assertAlive("loadModelState");
    if (t.size > 0) rt.upload(t.storage, state[name].data);
  }
}

/**
 * Uploads `state` into the module's existing tensors (in place: optimizers holding them stay
 * valid). Everything is checked before anything is written: names (missing and unexpected are
 * listed), shapes and dtypes.
 */
export function loadModelState(module: AnyModule, state: ModelState): void {
  checkModelState("loadModelState", module, state);
  writeModelState(module, state);
}

// ---- whole models ---------------------------------------------------------------------------

/** Config (in `__metadata__.config`) plus weights: `loadModel` rebuilds the module from it. */
export async function saveModel(
  module: AnyModule,
  metadata: Record<string, string> = {},
): Promise<Uint8Array> {
  const config = JSON.stringify(modelConfig(module));
  const state = await modelState(module);
  return encodeSafetensors(state, { ...metadata, format: "denograd.model", config });
}

function parseJson(where: string, what: string, text: string | undefined): unknown {
  if (text === undefined) throw new Error(`${where}: the file has no '${what}' metadata`);
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${where}: metadata '${what}' is not valid JSON`);
  }
}

export interface LoadOptions {
  /** Load weights holding NaN or ±Infinity (to debug a diverged model); refused otherwise. */
  allowNonFinite?: boolean;
}

/** Throws naming the first tensor that holds NaN or ±Infinity, unless they are allowed. */
function checkFinite(where: string, state: ModelState, options: LoadOptions): void {
  if (options.allowNonFinite) return;
  for (const [name, { data }] of Object.entries(state)) {
    if (!(data instanceof Float32Array)) continue;
    let count = 0;
    let first = -1;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        if (first < 0) first = i;
        count++;
      }
    }
    if (count > 0) {
      throw new Error(
        `${where}: tensor '${name}' holds ${count} non-finite value${count === 1 ? "" : "s"} ` +
          `(${data[first]} at index ${first}); the weights are broken (a diverged training?). ` +
          "Load them anyway with { allowNonFinite: true } to debug",
      );
    }
  }
}

/** Deepest layer nesting a config may have, and most layers in all. */
const MAX_CONFIG_DEPTH = 64;
const MAX_CONFIG_LAYERS = 100_000;

function describeJson(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return `the string ${JSON.stringify(value.slice(0, 40))}`;
  return typeof value === "object" ? "an object" : `${typeof value} ${String(value)}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Checks the shape of a config tree before anything is built (without recursion: the nesting is
 * the file's to choose): every layer an object with a string `class`, an object `config` and a
 * list of `children`, at most MAX_CONFIG_DEPTH deep and MAX_CONFIG_LAYERS in all.
 */
function checkConfigTree(where: string, root: unknown): asserts root is LayerConfig {
  const todo: [unknown, string, number][] = [[root, "model", 1]];
  let layers = 0;
  while (todo.length > 0) {
    const [layer, path, depth] = todo.pop()!;
    if (depth > MAX_CONFIG_DEPTH) {
      throw new Error(
        `${where}: the config nests layers more than ${MAX_CONFIG_DEPTH} deep ` +
          `(${path.slice(0, 60)}…)`,
      );
    }
    if (++layers > MAX_CONFIG_LAYERS) {
      throw new Error(`${where}: the config has more than ${MAX_CONFIG_LAYERS} layers`);
    }
    if (!isObject(layer)) {
      throw new Error(
        `${where}: config ${path} is ${describeJson(layer)}, expected a layer ` +
          "{class, config, children?}",
      );
    }
    if (typeof layer.class !== "string") {
      throw new Error(
        `${where}: config ${path}.class is ${describeJson(layer.class)}, expected a class name`,
      );
    }
    if (layer.config !== undefined && layer.config !== null && !isObject(layer.config)) {
      throw new Error(
        `${where}: config ${path}.config is ${describeJson(layer.config)}, expected an object`,
      );
    }
    if (layer.children === undefined) continue;
    if (!Array.isArray(layer.children)) {
      throw new Error(
        `${where}: config ${path}.children is ${describeJson(layer.children)}, expected a ` +
          "list of layers",
      );
    }
    for (let i = layer.children.length - 1; i >= 0; i--) {
      todo.push([layer.children[i], `${path}.${i}`, depth + 1]);
    }
  }
}

/** Room for a module's own non-state tensors beyond the file's (constants, scratch). */
const BUILD_SLACK_BYTES = 1 << 20;

/**
 * Rebuilds the module saved by `saveModel` with its weights (in training mode, as any new
 * module). The file is untrusted: the config's shape, the tensors' names (no repeats) and
 * values (no NaN or Infinity unless `allowNonFinite`) are checked before anything is built, and
 * the build may allocate no more than the file's tensors hold (every parameter and buffer comes
 * from the file), so a small file cannot make it allocate gigabytes. Then names and shapes must
 * match the built model's exactly.
 */
export function loadModel(bytes: Uint8Array, options: LoadOptions = {}): AnyModule {
  const where = "loadModel";
  const { tensors, metadata } = decodeSafetensors(bytes);
  const config = parseJson(where, "config", metadata.config);
  checkConfigTree(where, config);
  checkFinite(where, tensors, options);
  let stateBytes = 0;
  for (const { data } of Object.values(tensors)) stateBytes += 4 * Math.max(data.length, 1);
  const module = withAllocationLimit(
    2 * stateBytes + BUILD_SLACK_BYTES,
    `${where}: the config asks for more memory than the file's ${stateBytes} bytes of tensors ` +
      "can fill",
    () => buildModel(config),
  );
  try {
    loadModelState(module, tensors);
  } catch (e) {
    module.dispose();
    throw e;
  }
  return module;
}

// ---- training checkpoints -------------------------------------------------------------------

export interface TrainingCheckpoint {
  model: AnyModule;
  optimizer: Optimizer;
  /** Completed epochs. */
  epoch: number;
  /** Completed training steps (batches). */
  step: number;
  /** The generator that drives shuffling (and anything else drawn during training). */
  rng: Rng;
  /** Anything else to resume with (callback state, history), as JSON. */
  extra?: JsonValue;
}

export interface RestoredTraining {
  epoch: number;
  step: number;
  /** A generator in the saved state: continue drawing from this one. */
  rng: Rng;
  extra: JsonValue;
}

const CHECKPOINT_FORMAT = "denograd.checkpoint";
const MODEL_PREFIX = "model.";
const OPTIMIZER_PREFIX = "optimizer.";

/** Every module of the tree with its dotted path ("" for the root). */
function modulesOf(module: AnyModule, path = ""): [string, AnyModule][] {
  const out: [string, AnyModule][] = [[path, module]];
  for (const [name, child] of module.namedChildren()) {
    out.push(...modulesOf(child, path ? `${path}.${name}` : name));
  }
  return out;
}

/** Non-tensor layer state (Dropout mask counters) keyed by module path. */
function layerStates(model: AnyModule): Record<string, JsonValue> {
  const states: Record<string, JsonValue> = {};
  for (const [path, module] of modulesOf(model)) {
    const codec = codecOf(module)?.codec;
    if (codec?.state) states[path] = codec.state(module);
  }
  return states;
}

function isRegisteredTree(module: AnyModule): boolean {
  return modulesOf(module).every(([, m]) => codecOf(m) !== null);
}

/**
 * Weights as `model.<name>`, optimizer slots as `optimizer.<slot>.<index>`, and in the metadata:
 * epoch, step, the RNG state, the optimizer's kind, step counter and learning rate, layer
 * states, `extra`, and the model config when every layer is registered.
 */
export async function saveTrainingCheckpoint(checkpoint: TrainingCheckpoint): Promise<Uint8Array> {
  const { model, optimizer, epoch, step, rng, extra = null } = checkpoint;
  for (const [what, n] of [["epoch", epoch], ["step", step]] as const) {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new Error(`saveTrainingCheckpoint: ${what} = ${n}, expected an integer ≥ 0`);
    }
  }
  const optimizerState = optimizer.state();
  const tensors: ModelState = {
    ...await readNamed(namedState(model), MODEL_PREFIX),
    ...await readNamed(Object.entries(optimizerState.tensors), OPTIMIZER_PREFIX),
  };
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    epoch: String(epoch),
    step: String(step),
    rng: JSON.stringify(rng.state()),
    optimizer: JSON.stringify({
      name: optimizer.name,
      step: optimizerState.step,
      learningRate: optimizer.learningRate,
    }),
    layers: JSON.stringify(layerStates(model)),
    extra: JSON.stringify(extra),
  };
  if (isRegisteredTree(model)) metadata.config = JSON.stringify(modelConfig(model));
  return encodeSafetensors(tensors, metadata);
}

function nonNegativeInteger(where: string, what: string, value: unknown): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
    throw new Error(`${where}: ${what} = ${JSON.stringify(value)}, expected an integer ≥ 0`);
  }
  return n;
}

/**
 * Restores a `saveTrainingCheckpoint` file into an existing model and optimizer (same
 * architecture, same optimizer kind and options). Everything is validated before anything is
 * written (NaN or Infinity in any tensor too, unless `allowNonFinite`); returns the counters, a
 * generator in the saved state and `extra`.
 */
export function loadTrainingCheckpoint(
  bytes: Uint8Array,
  { model, optimizer, allowNonFinite }: { model: AnyModule; optimizer: Optimizer } & LoadOptions,
): RestoredTraining {
  const where = "loadTrainingCheckpoint";
  const { tensors, metadata } = decodeSafetensors(bytes);
  checkFinite(where, tensors, { allowNonFinite });
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new Error(
      `${where}: metadata format is ${JSON.stringify(metadata.format)}, expected ` +
        `"${CHECKPOINT_FORMAT}" (a file from saveTrainingCheckpoint)`,
    );
  }
  const epoch = nonNegativeInteger(where, "epoch", metadata.epoch);
  const step = nonNegativeInteger(where, "step", metadata.step);

  const rngState = parseJson(where, "rng", metadata.rng);
  if (
    !Array.isArray(rngState) || rngState.length !== 4 ||
    !rngState.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32)
  ) {
    throw new Error(`${where}: rng state ${metadata.rng}, expected four 32-bit unsigned words`);
  }

  const saved = parseJson(where, "optimizer", metadata.optimizer) as {
    name?: unknown;
    step?: unknown;
    learningRate?: unknown;
  } | null;
  if (saved?.name !== optimizer.name) {
    throw new Error(
      `${where}: the checkpoint holds ${JSON.stringify(saved?.name)} optimizer state, ` +
        `the optimizer is ${optimizer.name}`,
    );
  }
  const optimizerStep = nonNegativeInteger(where, "optimizer step", saved.step);
  const learningRate = saved.learningRate;
  if (typeof learningRate !== "number" || !(learningRate >= 0)) {
    throw new Error(`${where}: optimizer learningRate ${JSON.stringify(learningRate)}`);
  }

  const modelEntries: ModelState = {};
  const optimizerEntries: ModelState = {};
  for (const [name, entry] of Object.entries(tensors)) {
    if (name.startsWith(MODEL_PREFIX)) modelEntries[name.slice(MODEL_PREFIX.length)] = entry;
    else if (name.startsWith(OPTIMIZER_PREFIX)) {
      optimizerEntries[name.slice(OPTIMIZER_PREFIX.length)] = entry;
    } else {
      throw new Error(`${where}: tensor '${name}' is neither model.* nor optimizer.*`);
    }
  }
  checkModelState(where, model, modelEntries);
  checkOptimizerState(where, optimizer, optimizerEntries);

  const layers = parseJson(where, "layers", metadata.layers);
  if (typeof layers !== "object" || layers === null || Array.isArray(layers)) {
    throw new Error(`${where}: metadata 'layers' is not an object`);
  }
  const stateful = modulesOf(model).filter(([, m]) => codecOf(m)?.codec.loadState);
  const layerPaths = new Set(stateful.map(([path]) => path));
  const missing = [...layerPaths].filter((p) => !Object.hasOwn(layers, p));
  const unexpected = Object.keys(layers).filter((p) => !layerPaths.has(p));
  if (missing.length || unexpected.length) {
    throw new Error(
      `${where}: layer states differ from the model's; missing ${listNames(missing)}, ` +
        `unexpected ${listNames(unexpected)}`,
    );
  }
  const extra = parseJson(where, "extra", metadata.extra) as JsonValue;

  // Everything checked: write.
  for (const [path, module] of stateful) {
    try {
      codecOf(module)!.codec.loadState!(module, (layers as Record<string, JsonValue>)[path]);
    } catch (e) {
      throw new Error(`${where}: layer '${path}': ${(e as Error).message}`);
    }
  }
  writeModelState(model, modelEntries);
  tidy(() => {
    const stateTensors: Record<string, Tensor> = {};
    for (const [name, entry] of Object.entries(optimizerEntries)) {
      stateTensors[name] = Tensor.from(entry.data, entry.shape, "f32");
    }
    optimizer.loadState({ step: optimizerStep, tensors: stateTensors });
  });
  optimizer.learningRate = learningRate;
  return { epoch, step, rng: new Rng(rngState as RngState), extra };
}

function checkOptimizerState(where: string, optimizer: Optimizer, state: ModelState): void {
  const own = optimizer.state().tensors;
  const missing = Object.keys(own).filter((name) => !Object.hasOwn(state, name));
  const unexpected = Object.keys(state).filter((name) => !Object.hasOwn(own, name));
  if (missing.length || unexpected.length) {
    throw new Error(
      `${where}: optimizer state names differ from the ${optimizer.name} optimizer's; missing ` +
        `${listNames(missing)}, unexpected ${listNames(unexpected)}`,
    );
  }
  for (const [name, t] of Object.entries(own)) {
    const entry = state[name];
    if (entry.shape.join() !== t.shape.join() || entry.dtype !== "F32") {
      throw new Error(
        `${where}: optimizer state '${name}' is ${entry.dtype} ${formatShape(entry.shape)}, ` +
          `expected F32 ${formatShape(t.shape)}`,
      );
    }
  }
}
