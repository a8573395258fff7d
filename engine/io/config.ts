// Model config JSON: enough to rebuild an architecture (weights travel separately). Each layer
// class registers a codec under a stable name next to its definition — class names are not used
// as keys at run time because bundlers may rename classes. Registration happens when the
// layer's module is evaluated, so this file imports no layer: rebuilding a saved model needs the
// modules that define its classes imported first.
import type { AnyModule } from "../nn/module.ts";
import { Rng } from "../random.ts";

export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** One layer: its registered class name, its constructor arguments, its children in order. */
export interface LayerConfig {
  class: string;
  config: Record<string, JsonValue>;
  children?: LayerConfig[];
}

export interface LayerCodec<M extends AnyModule> {
  /** Constructor arguments as JSON. */
  config(module: M): Record<string, JsonValue>;
  /** Children to serialise (containers only), in the order `build` receives them. */
  children?(module: M): AnyModule[];
  /**
   * A new module from `config`; `rng` draws its initial weights (a throwaway generator: a
   * loaded state overwrites them, and the global generator stays untouched).
   */
  build(config: Record<string, JsonValue>, children: AnyModule[], rng: Rng): M;
  /**
   * Non-tensor state a training checkpoint must carry to resume exactly (e.g. Dropout's mask
   * counter); restored by `loadState`.
   */
  state?(module: M): JsonValue;
  loadState?(module: M, state: JsonValue): void;
}

// deno-lint-ignore no-explicit-any
export type LayerClass<M extends AnyModule = AnyModule> = abstract new (...args: any[]) => M;

export interface RegisteredLayer {
  name: string;
  layerClass: LayerClass;
  codec: LayerCodec<AnyModule>;
}

const byName = new Map<string, RegisteredLayer>();
const byClass = new Map<unknown, RegisteredLayer>();

/**
 * Makes a layer class serialisable under `name`. A name belongs to one class (re-registering the
 * same class replaces its codec); call it in the file that defines the class.
 */
export function registerLayer<M extends AnyModule>(
  name: string,
  layerClass: LayerClass<M>,
  codec: LayerCodec<M>,
): void {
  const taken = byName.get(name);
  if (taken && taken.layerClass !== layerClass) {
    throw new Error(`registerLayer: '${name}' is already registered to another class`);
  }
  const entry = { name, layerClass, codec: codec as unknown as LayerCodec<AnyModule> };
  byName.set(name, entry);
  byClass.set(layerClass, entry);
}

/** Every registered layer, sorted by name. */
export function registeredLayers(): RegisteredLayer[] {
  return [...byName.values()].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** The registration of a module's exact class, or null if it was never registered. */
export function codecOf(module: AnyModule): RegisteredLayer | null {
  return byClass.get(module.constructor) ?? null;
}

/** The architecture of `module` as JSON (every layer in the tree must be registered). */
export function modelConfig(module: AnyModule): LayerConfig {
  const entry = codecOf(module);
  if (!entry) {
    throw new Error(
      `modelConfig: layer class ${module.constructor.name} is not registered; ` +
        `call registerLayer(name, ${module.constructor.name}, codec) where it is defined`,
    );
  }
  const layer: LayerConfig = { class: entry.name, config: entry.codec.config(module) };
  if (entry.codec.children) layer.children = entry.codec.children(module).map(modelConfig);
  return layer;
}

/**
 * Rebuilds a module from `modelConfig`'s output. Every class in it must be registered, i.e. the
 * module defining it imported. Weights are freshly initialised from a fixed throwaway generator
 * (the global one is left untouched); load a state to fill them.
 */
export function buildModel(config: LayerConfig, path = "model"): AnyModule {
  if (typeof config !== "object" || config === null || typeof config.class !== "string") {
    throw new Error(`buildModel: ${path} is not a layer config ({class, config, children?})`);
  }
  const entry = byName.get(config.class);
  if (!entry) {
    throw new Error(
      `buildModel: ${path} has unknown layer class '${config.class}'; registered: ` +
        `${registeredLayers().map((r) => r.name).join(", ")}. A class registers when the ` +
        `module that defines it (in engine/nn/ or models/) is imported: import it before loading`,
    );
  }
  const children = (config.children ?? []).map((c, i) => buildModel(c, `${path}.${i}`));
  try {
    return entry.codec.build(config.config ?? {}, children, new Rng(0));
  } catch (e) {
    throw new Error(`buildModel: ${path} (${config.class}): ${(e as Error).message}`);
  }
}

// ---- reading config fields (for codecs' `build`) -------------------------------------------

type Fields = Record<string, JsonValue>;

/** `config[key]` as a number, `fallback` when absent. */
export function numberField(config: Fields, key: string, fallback?: number): number {
  const value = config[key] ?? fallback;
  if (typeof value !== "number") {
    throw new Error(`config field '${key}' is ${JSON.stringify(value)}, expected a number`);
  }
  return value;
}

/** `config[key]` as a list of numbers (a window size, strides…), `fallback` when absent. */
export function numberListField(config: Fields, key: string, fallback?: number[]): number[] {
  const value = config[key] ?? fallback;
  if (!Array.isArray(value) || !value.every((v) => typeof v === "number")) {
    throw new Error(
      `config field '${key}' is ${JSON.stringify(value)}, expected a list of numbers`,
    );
  }
  return value as number[];
}

/** `config[key]` as a boolean, `fallback` when absent. */
export function booleanField(config: Fields, key: string, fallback?: boolean): boolean {
  const value = config[key] ?? fallback;
  if (typeof value !== "boolean") {
    throw new Error(`config field '${key}' is ${JSON.stringify(value)}, expected a boolean`);
  }
  return value;
}

/** `config[key]`, which must be one of `choices` (`fallback` when absent or null). */
export function choiceField<T extends JsonValue>(
  config: Fields,
  key: string,
  choices: readonly T[],
  fallback?: T,
): T {
  const value = config[key] ?? fallback ?? null;
  if (!choices.includes(value as T)) {
    throw new Error(
      `${key} ${JSON.stringify(value)}, expected one of ` +
        choices.map((c) => JSON.stringify(c)).join(", "),
    );
  }
  return value as T;
}

/** `config[key]` as a JSON object (a nested options record). */
export function objectField(config: Fields, key: string): Fields {
  const value = config[key];
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`config field '${key}' is ${JSON.stringify(value)}, expected an object`);
  }
  return value;
}
