// Every registered layer and model class survives saveModel → loadModel: the same config, the
// same weights and the same outputs on a fresh input. Layers with checkpoint state (Dropout's
// mask counter) resume it through a training checkpoint. A registered class without an example
// here, or an exported Module subclass that never registers, fails the coverage test.
import assert from "node:assert/strict";
import { setup, testRng } from "./helpers.ts";
import { noGrad } from "../engine/autograd.ts";
import { buildModel, codecOf, modelConfig, registeredLayers } from "../engine/io/config.ts";
import {
  loadModel,
  loadModelState,
  loadTrainingCheckpoint,
  modelState,
  saveModel,
  saveTrainingCheckpoint,
} from "../engine/io/checkpoint.ts";
import { decodeSafetensors } from "../engine/io/safetensors.ts";
import { GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh } from "../engine/nn/activation.ts";
import {
  DecoderAttention,
  MultiHeadAttention,
  ScaledDotProductAttention,
  SimpleAttention,
} from "../engine/nn/attention.ts";
import { BatchNorm } from "../engine/nn/batchnorm.ts";
import { Conv2D, Conv2DTranspose, Conv3D } from "../engine/nn/conv.ts";
import { Dropout } from "../engine/nn/dropout.ts";
import { Embedding, PositionEmbedding } from "../engine/nn/embedding.ts";
import { Flatten } from "../engine/nn/flatten.ts";
import { LayerNorm } from "../engine/nn/layernorm.ts";
import { Linear } from "../engine/nn/linear.ts";
import { Add, Concatenate } from "../engine/nn/merge.ts";
import { type AnyModule, Graph, Module } from "../engine/nn/module.ts";
import { AvgPool2D, AvgPool3D, GlobalAvgPool2D, MaxPool2D, MaxPool3D } from "../engine/nn/pool.ts";
import { Bidirectional, GRU, GRUCell, LSTM, LSTMCell } from "../engine/nn/rnn.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { SGD } from "../engine/optim/optimizers.ts";
import { Rng } from "../engine/random.ts";
import { type Shape, sizeOf, Tensor, tidy } from "../engine/tensor.ts";
import { AttentionGru } from "../models/attention_gru.ts";
import { TapModel, type TapOptions, type TapSizes } from "../models/htap.ts";
import { mnistMlp, withSoftmax } from "../models/mlp.ts";
import { classicCnn } from "../models/cnn.ts";
import { conv3dModel } from "../models/conv3d.ts";
import { MiniResNet, ResidualBlock } from "../models/resnet.ts";
import { Seq2Seq } from "../models/seq2seq.ts";
import { ConvBlock, UNet } from "../models/unet.ts";
import { Vgg16 } from "../models/vgg16.ts";

await setup();

// Registration happens on import: load every layer and model module, so that a new file's
// classes show up in the registry (and need an example below).
const LAYER_FOLDERS = ["../engine/nn/", "../models/"];
const layerModules: Record<string, unknown>[] = [];
for (const folder of LAYER_FOLDERS) {
  const dir = new URL(folder, import.meta.url);
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".ts")) {
      layerModules.push(await import(new URL(entry.name, dir).href));
    }
  }
}

// ---- examples -------------------------------------------------------------------------------

interface Example {
  /** A module whose initial weights come from `rng` (they are randomised again before saving). */
  make(rng: Rng): AnyModule;
  /** Fresh arguments for `forward`. */
  inputs(rng: Rng): unknown[];
}

function normal(rng: Rng, shape: Shape): Tensor {
  return Tensor.from(Float32Array.from({ length: sizeOf(shape) }, () => rng.normal()), shape);
}

function ids(rng: Rng, shape: Shape, count: number): Tensor {
  return Tensor.from(
    Int32Array.from({ length: sizeOf(shape) }, () => rng.int(count)),
    shape,
    "i32",
  );
}

const seed = (rng: Rng) => rng.int(1_000_000);

/** Small LOP-120-shaped sequences: step input = content + two frames' flags (4). */
const TAP_SIZES: TapSizes = { frames: 12, context: 8, content: 3, stepInput: 7 };
const tap = (options: Omit<TapOptions, "sizes" | "rng">): Example => ({
  make: (rng) => new TapModel({ ...options, sizes: TAP_SIZES, rng }),
  inputs: (rng) => [normal(rng, [2, 8, 7]), normal(rng, [2, 3, 4])],
});

const unary = (make: (rng: Rng) => AnyModule, shape: Shape): Example => ({
  make,
  inputs: (rng) => [normal(rng, shape)],
});

/** At least one example per registered class name; several where options change the layers. */
const EXAMPLES: Record<string, Example[]> = {
  Sequential: [
    unary((rng) =>
      new Sequential(
        new Flatten(),
        new Linear(6, 5, { activation: "relu", rng }),
        new BatchNorm(5),
        new Dropout(0.3, { rng }),
        new Linear(5, 3, { bias: false, rng }),
      ), [4, 2, 3]),
    unary(
      (rng) => withSoftmax(mnistMlp({ hidden: 16, batchNorm: true, seed: seed(rng) })),
      [3, 784],
    ),
    unary((rng) => classicCnn({ inputShape: [6, 5, 3], classes: 4, rng }), [2, 6, 5, 3]),
    unary((rng) => conv3dModel({ inputShape: [4, 5, 4, 1], filters: 2, rng }), [2, 4, 5, 4, 1]),
  ],
  Conv2D: [
    unary(
      (rng) =>
        new Conv2D(3, 4, [3, 2], { strides: [2, 1], padding: "same", activation: "relu", rng }),
      [2, 5, 6, 3],
    ),
    unary((rng) => new Conv2D(2, 3, 3, { dilation: 2, useBias: false, rng }), [1, 7, 6, 2]),
  ],
  Conv3D: [unary((rng) => new Conv3D(2, 3, 2, { padding: "same", rng }), [2, 3, 4, 3, 2])],
  Conv2DTranspose: [
    unary((rng) => new Conv2DTranspose(4, 3, 2, { strides: 2, padding: "same", rng }), [
      2,
      3,
      2,
      4,
    ]),
    unary(
      (rng) =>
        new Conv2DTranspose(2, 3, 3, { strides: 2, outputPadding: 1, activation: "tanh", rng }),
      [1, 3, 3, 2],
    ),
  ],
  MaxPool2D: [unary(() => new MaxPool2D([2, 3], { strides: 1 }), [2, 5, 6, 3])],
  AvgPool2D: [unary(() => new AvgPool2D(3, { strides: 2, padding: "same" }), [2, 5, 6, 3])],
  MaxPool3D: [unary(() => new MaxPool3D(), [2, 4, 5, 4, 3])],
  AvgPool3D: [unary(() => new AvgPool3D([1, 2, 2], { padding: "same" }), [1, 3, 5, 4, 2])],
  GlobalAvgPool2D: [unary(() => new GlobalAvgPool2D(), [2, 3, 4, 5])],
  Add: [{
    make: () => new Add(),
    inputs: (rng) => [normal(rng, [2, 3, 4]), normal(rng, [2, 3, 4]), normal(rng, [2, 3, 4])],
  }],
  Concatenate: [{
    make: () => new Concatenate(1),
    inputs: (rng) => [normal(rng, [2, 3, 4]), normal(rng, [2, 1, 4])],
  }],
  ResidualBlock: [
    unary((rng) => new ResidualBlock(3, 3, { rng }), [2, 5, 4, 3]),
    unary((rng) => new ResidualBlock(3, 4, { stride: 2, rng }), [2, 5, 4, 3]),
    unary((rng) => new ResidualBlock(3, 4, { batchNorm: true, rng }), [2, 5, 4, 3]),
  ],
  MiniResNet: [
    unary((rng) => new MiniResNet({ inChannels: 1, classes: 3, rng }), [2, 6, 6, 1]),
    unary((rng) => new MiniResNet({ batchNorm: true, rng }), [1, 4, 4, 3]),
  ],
  ConvBlock: [unary((rng) => new ConvBlock(2, 3, rng), [2, 4, 5, 2])],
  UNet: [
    unary((rng) => new UNet({ baseFilters: 2, rng }), [2, 8, 8, 1]),
    unary((rng) => new UNet({ inChannels: 3, baseFilters: 2, depth: 1, outChannels: 2, rng }), [
      1,
      4,
      6,
      3,
    ]),
  ],
  // The whole base (14.7 M weights): 32×32 is the smallest input that reaches block5_pool.
  Vgg16: [unary((rng) => new Vgg16({ inChannels: 1, rng }), [1, 32, 32, 1])],
  Linear: [unary((rng) => new Linear(5, 4, { activation: "gelu", rng }), [2, 3, 5])],
  Dropout: [unary((rng) => new Dropout(0.4, { rng }), [4, 6])],
  BatchNorm: [
    unary(() => new BatchNorm(3, { axis: 1, momentum: 0.9, epsilon: 1e-2 }), [4, 3, 5]),
  ],
  Flatten: [unary(() => new Flatten(), [2, 3, 4])],
  ReLU: [unary(() => new ReLU(), [3, 4])],
  LeakyReLU: [unary(() => new LeakyReLU(0.1), [3, 4])],
  Sigmoid: [unary(() => new Sigmoid(), [3, 4])],
  Tanh: [unary(() => new Tanh(), [3, 4])],
  GELU: [unary(() => new GELU(), [3, 4])],
  Softmax: [unary(() => new Softmax(0), [3, 4])],
  LayerNorm: [unary(() => new LayerNorm(6, { epsilon: 1e-5 }), [2, 3, 6])],
  Embedding: [{
    make: (rng) => new Embedding(10, 4, { rng }),
    inputs: (rng) => [ids(rng, [3, 5], 10)],
  }],
  PositionEmbedding: [{
    make: (rng) => new PositionEmbedding(8, 4, { rng }),
    inputs: () => [5, 2],
  }],
  GRU: [
    unary((rng) => new GRU(3, 5, { returnSequences: true, goBackwards: true, rng }), [2, 4, 3]),
  ],
  LSTM: [unary((rng) => new LSTM(3, 4, { rng }), [2, 4, 3])],
  GRUCell: [{
    make: (rng) => new GRUCell(3, 4, { rng }),
    inputs: (rng) => [normal(rng, [2, 3]), normal(rng, [2, 4])],
  }],
  LSTMCell: [unary((rng) => new LSTMCell(3, 4, { rng }), [2, 3])],
  Bidirectional: [
    unary(
      (rng) =>
        new Bidirectional(new LSTM(3, 4, { returnSequences: true, rng }), {
          mergeMode: "sum",
          rng,
        }),
      [2, 5, 3],
    ),
    unary((rng) => new Bidirectional(new GRU(3, 4, { rng }), { rng }), [2, 5, 3]),
  ],
  SimpleAttention: [unary((rng) => new SimpleAttention(5, 4, { rng }), [2, 5, 4])],
  ScaledDotProductAttention: [{
    make: () => new ScaledDotProductAttention(),
    inputs: (rng) => [normal(rng, [2, 3, 4]), normal(rng, [2, 5, 4]), normal(rng, [2, 5, 6])],
  }],
  DecoderAttention: [
    {
      make: (rng) => new DecoderAttention(4, 6, { score: "additive", units: 5, rng }),
      inputs: (rng) => [normal(rng, [2, 3, 4]), normal(rng, [2, 5, 6])],
    },
    {
      make: (rng) => new DecoderAttention(4, 4, { score: "learned-scalar", rng }),
      inputs: (rng) => [normal(rng, [2, 4]), normal(rng, [2, 5, 4])],
    },
  ],
  MultiHeadAttention: [{
    make: (rng) =>
      new MultiHeadAttention(8, 2, { keyDim: 3, valueDim: 2, kdim: 6, vdim: 5, bias: false, rng }),
    inputs: (rng) => [normal(rng, [2, 3, 8]), normal(rng, [2, 4, 6]), normal(rng, [2, 4, 5])],
  }],
  AttentionGru: [
    unary(
      (rng) =>
        new AttentionGru({
          steps: 5,
          features: 3,
          units: 4,
          head: { kind: "regression" },
          seed: seed(rng),
        }),
      [2, 5, 3],
    ),
    unary(
      (rng) =>
        new AttentionGru({
          steps: 5,
          features: 3,
          units: 4,
          attention: "scaled",
          head: { kind: "classes", classes: 3 },
          seed: seed(rng),
        }),
      [2, 5, 3],
    ),
  ],
  Seq2Seq: [
    unary(
      (rng) =>
        new Seq2Seq({ inputLen: 5, horizon: 3, features: 2, hiddenDim: 6, score: "additive", rng }),
      [2, 8, 2],
    ),
    unary(
      (rng) => new Seq2Seq({ inputLen: 4, horizon: 2, hiddenDim: 4, score: "learned-scalar", rng }),
      [2, 6, 1],
    ),
  ],
  TapModel: [
    tap({ units: 8, memory: "none" }),
    tap({ units: 8, memory: "full", keyDim: 8 }),
    tap({ units: 8, memory: "fifo", window: 3, keyDim: 8, decoder: "composed" }),
    tap({ units: 6, memory: "bounded" }),
  ],
};

// ---- helpers --------------------------------------------------------------------------------

function modulesOf(module: AnyModule): AnyModule[] {
  return [module, ...module.namedChildren().flatMap(([, child]) => modulesOf(child))];
}

/**
 * New random values in every parameter and buffer (positive buffers: BatchNorm's running
 * variance), so that a rebuild that dropped a weight cannot match by sharing an init.
 */
function randomizeState(module: AnyModule, rng: Rng): void {
  const entries = (named: [string, Tensor][], low: number, high: number) =>
    named.map(([name, t]) => [name, {
      dtype: "F32" as const,
      shape: [...t.shape],
      data: Float32Array.from({ length: t.size }, () => rng.uniform(low, high)),
    }]);
  loadModelState(
    module,
    Object.fromEntries([
      ...entries(module.namedParameters(), -0.5, 0.5),
      ...entries(module.namedBuffers(), 0.5, 1.5),
    ]),
  );
}

function tensorsIn(value: unknown): Tensor[] {
  if (value instanceof Tensor) return [value];
  if (Array.isArray(value)) return value.flatMap(tensorsIn);
  if (typeof value === "object" && value !== null) return Object.values(value).flatMap(tensorsIn);
  return [];
}

/** Every output tensor of one forward pass (no tape), as shapes and host values. */
async function outputs(module: AnyModule, inputs: unknown[]): Promise<[Shape, number[]][]> {
  const results = noGrad(() => tidy(() => tensorsIn(module.forward(...inputs))));
  const read = await Promise.all(
    results.map(async (t): Promise<[Shape, number[]]> => [t.shape, Array.from(await t.data())]),
  );
  const given = new Set(tensorsIn(inputs));
  for (const t of results) if (!given.has(t)) t.dispose(); // identity layers return their input
  return read;
}

function disposeInputs(inputs: unknown[]): void {
  for (const t of tensorsIn(inputs)) t.dispose();
}

const examples = () =>
  Object.entries(EXAMPLES).flatMap(([name, list]) =>
    list.map((example, i) => ({ label: `${name} #${i}`, name, example }))
  );

// ---- tests ----------------------------------------------------------------------------------

Deno.test("every layer and model class is registered and has a round-trip example", () => {
  const registered = registeredLayers();
  const classes = new Set<unknown>(registered.map((r) => r.layerClass));
  for (const exports of layerModules) {
    for (const [exported, value] of Object.entries(exports)) {
      // Graph is the abstract base of wired models: never built itself.
      if (typeof value === "function" && value.prototype instanceof Module && value !== Graph) {
        assert.ok(
          classes.has(value),
          `${exported} is a Module but never calls registerLayer`,
        );
      }
    }
  }
  const names = registered.map((r) => r.name);
  assert.deepEqual(
    names.filter((name) => !EXAMPLES[name]?.length),
    [],
    "registered classes without an example in EXAMPLES",
  );
  assert.deepEqual(
    Object.keys(EXAMPLES).filter((name) => !names.includes(name)),
    [],
    "examples of classes that are not registered",
  );
  const rng = new Rng(0);
  for (const { label, name, example } of examples()) {
    const module = example.make(rng);
    assert.equal(modelConfig(module).class, name, `${label} builds another class`);
    module.dispose();
  }
});

Deno.test("saveModel → loadModel rebuilds every registered class: config, weights, outputs", async () => {
  const { rng, seed } = testRng();
  for (const { label, example } of examples()) {
    const where = `${label} (seed ${seed})`;
    const original = example.make(rng);
    randomizeState(original, rng);
    original.eval();
    const bytes = await saveModel(original);
    const loaded = loadModel(bytes);
    loaded.eval();
    assert.deepEqual(modelConfig(loaded), modelConfig(original), `${where}: config`);
    assert.deepEqual(
      JSON.parse(decodeSafetensors(bytes).metadata.config),
      modelConfig(original),
      `${where}: saved config`,
    );
    assert.deepEqual(await modelState(loaded), await modelState(original), `${where}: weights`);
    const inputs = example.inputs(rng);
    assert.deepEqual(
      await outputs(loaded, inputs),
      await outputs(original, inputs),
      `${where}: outputs`,
    );
    disposeInputs(inputs);
    original.dispose();
    loaded.dispose();
  }
});

Deno.test("a training checkpoint carries layer state: a rebuilt model resumes Dropout's masks", async () => {
  const stateful = (m: AnyModule) => modulesOf(m).filter((c) => codecOf(c)?.codec.state);
  const { rng, seed } = testRng();
  const covered = new Set<string>();
  for (const { label, example } of examples()) {
    const original = example.make(rng);
    if (stateful(original).length === 0 || original.parameters().length === 0) {
      original.dispose(); // an optimizer needs parameters: a wrapping example covers the layer
      continue;
    }
    const where = `${label} (seed ${seed})`;
    randomizeState(original, rng);
    for (let step = 0; step < 2; step++) { // moves the Dropout counters on
      const inputs = example.inputs(rng);
      await outputs(original, inputs);
      disposeInputs(inputs);
    }
    const optimizer = new SGD(original.parameters());
    const bytes = await saveTrainingCheckpoint({
      model: original,
      optimizer,
      epoch: 0,
      step: 2,
      rng: new Rng(1),
    });
    const resumed = buildModel(JSON.parse(decodeSafetensors(bytes).metadata.config));
    const layerStates = (m: AnyModule) => stateful(m).map((c) => codecOf(c)!.codec.state!(c));
    assert.notDeepEqual(layerStates(resumed), layerStates(original), `${where}: fresh state`);
    const resumedOptimizer = new SGD(resumed.parameters());
    loadTrainingCheckpoint(bytes, { model: resumed, optimizer: resumedOptimizer });
    assert.deepEqual(layerStates(resumed), layerStates(original), `${where}: layer states`);
    const inputs = example.inputs(rng);
    assert.deepEqual(
      await outputs(resumed, inputs),
      await outputs(original, inputs),
      `${where}: training-mode outputs`,
    );
    for (const m of stateful(original)) covered.add(codecOf(m)!.name);
    disposeInputs(inputs);
    for (const t of [optimizer, resumedOptimizer, original, resumed]) t.dispose();
  }
  assert.deepEqual(
    registeredLayers().filter((r) => r.codec.state && !covered.has(r.name)).map((r) => r.name),
    [],
    "stateful layers that no checkpoint example covers",
  );
});

Deno.test("loading a class whose module was never imported names the registered ones", () => {
  assert.throws(
    () => buildModel({ class: "Conv9d", config: {} }),
    /unknown layer class 'Conv9d'; registered: .*Linear.*TapModel.*A class registers when the module that defines it \(in engine\/nn\/ or models\/\) is imported/,
  );
});

Deno.test("the predict API's module registers every layer of the MNIST models it serves", async () => {
  const served = withSoftmax(mnistMlp({ hidden: 4, batchNorm: true }));
  const needed = [...new Set(modulesOf(served).map((m) => codecOf(m)!.name))].sort();
  served.dispose();
  // A fresh process that imports only what the server imports.
  const code = `
    import ${JSON.stringify(new URL("../web/predict.ts", import.meta.url).href)};
    import { registeredLayers } from ${
    JSON.stringify(new URL("../engine/io/config.ts", import.meta.url).href)
  };
    console.log(JSON.stringify(registeredLayers().map((r) => r.name)));`;
  const run = await new Deno.Command(Deno.execPath(), { args: ["eval", code] }).output();
  assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
  const registered: string[] = JSON.parse(new TextDecoder().decode(run.stdout));
  assert.deepEqual(needed.filter((name) => !registered.includes(name)), []);
});
