// Model config JSON: enough to rebuild an architecture (weights travel separately). Each layer
// class registers a codec under a stable name — class names are not used as keys at run time
// because bundlers may rename classes. New layers (Conv, GRU, …) call `registerLayer` next to
// their definition.
import type { AnyModule, Module } from "../nn/module.ts";
import { Sequential } from "../nn/sequential.ts";
import { Linear } from "../nn/linear.ts";
import { Dropout } from "../nn/dropout.ts";
import { BatchNorm } from "../nn/batchnorm.ts";
import { Flatten } from "../nn/flatten.ts";
import { GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh } from "../nn/activation.ts";
import { Rng } from "../random.ts";
import type { MatmulActivation } from "../ops/matmul.ts";

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
  build(config: Record<string, JsonValue>, children: AnyModule[]): M;
  /**
   * Non-tensor state a training checkpoint must carry to resume exactly (e.g. Dropout's mask
   * counter); restored by `loadState`.
   */
  state?(module: M): JsonValue;
  loadState?(module: M, state: JsonValue): void;
}

interface Registered {
  name: string;
  codec: LayerCodec<AnyModule>;
}

// deno-lint-ignore no-explicit-any
type LayerClass<M> = abstract new (...args: any[]) => M;

const byName = new Map<string, Registered>();
const byClass = new Map<unknown, Registered>();

/** Makes a layer class serialisable under `name` (unique; re-registering replaces). */
export function registerLayer<M extends AnyModule>(
  name: string,
  layerClass: LayerClass<M>,
  codec: LayerCodec<M>,
): void {
  const entry = { name, codec: codec as unknown as LayerCodec<AnyModule> };
  byName.set(name, entry);
  byClass.set(layerClass, entry);
}

/** The codec of a module's exact class, or null if it was never registered. */
export function codecOf(module: AnyModule): Registered | null {
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
 * Rebuilds a module from `modelConfig`'s output. Weights are freshly initialised from a fixed
 * throwaway generator (the global one is left untouched); load a state to fill them.
 */
export function buildModel(config: LayerConfig, path = "model"): AnyModule {
  if (typeof config !== "object" || config === null || typeof config.class !== "string") {
    throw new Error(`buildModel: ${path} is not a layer config ({class, config, children?})`);
  }
  const entry = byName.get(config.class);
  if (!entry) {
    throw new Error(
      `buildModel: ${path} has unknown layer class '${config.class}'; registered: ` +
        [...byName.keys()].sort().join(", "),
    );
  }
  const children = (config.children ?? []).map((c, i) => buildModel(c, `${path}.${i}`));
  try {
    return entry.codec.build(config.config ?? {}, children);
  } catch (e) {
    throw new Error(`buildModel: ${path} (${config.class}): ${(e as Error).message}`);
  }
}

// ---- the built-in layers --------------------------------------------------------------------

function num(config: Record<string, JsonValue>, key: string, fallback?: number): number {
  const value = config[key] ?? fallback;
  if (typeof value !== "number") throw new Error(`config field '${key}' must be a number`);
  return value;
}

const initRng = () => new Rng(0);

const LINEAR_ACTIVATIONS: readonly (MatmulActivation | null)[] = [
  null,
  "relu",
  "leaky_relu",
  "sigmoid",
  "tanh",
  "gelu",
];

registerLayer("Sequential", Sequential, {
  config: () => ({}),
  children: (m) => m.layers as AnyModule[],
  build: (_config, children) => new Sequential(...(children as Module[])),
});

registerLayer("Linear", Linear, {
  config: (m) => ({
    inFeatures: m.inFeatures,
    outFeatures: m.outFeatures,
    bias: m.bias !== null,
    activation: m.activation ?? null,
  }),
  build: (c) => {
    const activation = (c.activation ?? null) as MatmulActivation | null;
    if (!LINEAR_ACTIVATIONS.includes(activation)) {
      throw new Error(
        `activation ${JSON.stringify(c.activation)}, expected one of ${
          LINEAR_ACTIVATIONS.join(", ")
        }`,
      );
    }
    return new Linear(num(c, "inFeatures"), num(c, "outFeatures"), {
      bias: c.bias !== false,
      activation: activation ?? undefined,
      rng: initRng(),
    });
  },
});

registerLayer("Dropout", Dropout, {
  config: (m) => ({ rate: m.rate, seed: m.seed }),
  build: (c) => new Dropout(num(c, "rate"), { seed: num(c, "seed") }),
  // The mask stream is (seed, offset): both are needed to continue it exactly.
  state: (m) => ({ seed: m.seed, offset: m.offset }),
  loadState: (m, state) => {
    const { seed, offset } = (state ?? {}) as { seed?: unknown; offset?: unknown };
    const valid = (v: unknown, max: number) =>
      typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= max;
    if (!valid(seed, 0xffffffff) || !valid(offset, Number.MAX_SAFE_INTEGER)) {
      throw new Error(
        `Dropout state ${JSON.stringify(state)}, expected {seed: u32, offset: integer ≥ 0}`,
      );
    }
    // `seed` is read-only for users; a checkpoint is the one place that may rewind it.
    (m as { seed: number }).seed = seed as number;
    m.offset = offset as number;
  },
});

registerLayer("BatchNorm", BatchNorm, {
  config: (m) => ({
    numFeatures: m.numFeatures,
    axis: m.axis,
    momentum: m.momentum,
    epsilon: m.epsilon,
  }),
  build: (c) =>
    new BatchNorm(num(c, "numFeatures"), {
      axis: num(c, "axis", -1),
      momentum: num(c, "momentum", 0.99),
      epsilon: num(c, "epsilon", 1e-3),
    }),
});

registerLayer("Flatten", Flatten, { config: () => ({}), build: () => new Flatten() });
registerLayer("ReLU", ReLU, { config: () => ({}), build: () => new ReLU() });
registerLayer("Sigmoid", Sigmoid, { config: () => ({}), build: () => new Sigmoid() });
registerLayer("Tanh", Tanh, { config: () => ({}), build: () => new Tanh() });
registerLayer("GELU", GELU, { config: () => ({}), build: () => new GELU() });
registerLayer("LeakyReLU", LeakyReLU, {
  config: (m) => ({ alpha: m.alpha }),
  build: (c) => new LeakyReLU(num(c, "alpha", 0.3)),
});
registerLayer("Softmax", Softmax, {
  config: (m) => ({ axis: m.axis }),
  build: (c) => new Softmax(num(c, "axis", -1)),
});
