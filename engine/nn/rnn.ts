// Recurrent layers with Keras semantics: GRU (reset_after=True), LSTM (gate order i, f, c, o,
// unit_forget_bias), their one-step cells for autoregressive decoding, and Bidirectional.
//
// Parameters (names as registered on the Module, Keras shapes):
//   kernel            [in, G·H]   gate blocks along the last axis (GRU z, r, h; LSTM i, f, c, o)
//   recurrent_kernel  [H, G·H]
//   bias              GRU [2, 3H] (row 0 input bias, row 1 recurrent bias); LSTM [4H]
// Keras weights load as they are (layer.get_weights() gives kernel, recurrent_kernel, bias in
// this order and layout). From PyTorch: kernel = weight_ih_l0ᵀ, recurrent_kernel =
// weight_hh_l0ᵀ with the gate blocks reordered (PyTorch GRU r, z, n → z, r, h; LSTM i, f, g, o
// is already i, f, c, o); GRU bias = [bias_ih_l0; bias_hh_l0] reordered likewise; LSTM bias =
// bias_ih_l0 + bias_hh_l0. PyTorch's GRU n gate, tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), is
// Keras's reset_after=True. `toKerasGateOrder` does the reordering.
//
// Stacking: a Sequential of layers with returnSequences true (all but possibly the last).
import { checkAllocation, formatShape, Tensor } from "../tensor.ts";
import { globalRng, type Rng } from "../random.ts";
import { add } from "../ops/elementwise.ts";
import { concat } from "../ops/shape.ts";
import { gruSequence, lstmSequence, type RnnCell } from "../ops/rnn.ts";
import { Module } from "./module.ts";
import { glorotUniform } from "./init.ts";
import {
  booleanField,
  choiceField,
  type JsonValue,
  numberField,
  registerLayer,
} from "../io/config.ts";

/**
 * Keras Orthogonal initializer (gain 1): QR of a normal matrix, with rows or columns orthonormal
 * whichever are fewer. Here Gram–Schmidt on the columns of the tall orientation, which gives the
 * Q of the QR decomposition with R's diagonal made positive (Keras' sign correction).
 */
export function orthogonal(rows: number, cols: number, rng: Rng = globalRng): Tensor {
  // Its float64 work matrix comes first: within a loader's allocation limit (2 × 4 bytes a value).
  checkAllocation([2, rows, cols], "orthogonal");
  const tall = rows >= cols;
  const [n, m] = tall ? [rows, cols] : [cols, rows]; // Q is n × m with n ≥ m
  const q = new Float64Array(n * m);
  for (let i = 0; i < q.length; i++) q[i] = rng.normal();
  for (let c = 0; c < m; c++) {
    // Twice (re-orthogonalisation) keeps the columns orthogonal to f32 precision.
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < c; p++) {
        let d = 0;
        for (let r = 0; r < n; r++) d += q[r * m + c] * q[r * m + p];
        for (let r = 0; r < n; r++) q[r * m + c] -= d * q[r * m + p];
      }
    }
    let norm = 0;
    for (let r = 0; r < n; r++) norm += q[r * m + c] ** 2;
    norm = Math.sqrt(norm);
    for (let r = 0; r < n; r++) q[r * m + c] /= norm;
  }
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * cols + c] = tall ? q[r * m + c] : q[c * m + r];
  }
  return Tensor.from(out, [rows, cols]);
}

/**
 * Reorders PyTorch gate blocks along the last axis into Keras order (GRU r, z, n → z, r, h;
 * LSTM unchanged), on host data of shape [..., G·H]. Transposing weight_ih/weight_hh is the
 * caller's part.
 */
export function toKerasGateOrder(
  cell: RnnCell,
  data: ArrayLike<number>,
  units: number,
): Float32Array {
  const G = cell === "gru" ? 3 : 4;
  const order = cell === "gru" ? [1, 0, 2] : [0, 1, 2, 3];
  const width = G * units;
  const out = new Float32Array(data.length);
  for (let row = 0; row < data.length / width; row++) {
    order.forEach((from, to) => {
      for (let j = 0; j < units; j++) {
        out[row * width + to * units + j] = data[row * width + from * units + j];
      }
    });
  }
  return out;
}

export interface RnnLayerOptions {
  /** Return the output of every step [B, T, H] instead of the last one [B, H] (default false). */
  returnSequences?: boolean;
  /** Process the sequence from the end (Keras go_backwards: the sequence comes back reversed). */
  goBackwards?: boolean;
  /** Generator for the initial weights (default: the global one). */
  rng?: Rng;
}

/** Recurrent state: h, and c for an LSTM. */
export interface RnnState {
  h: Tensor;
  c?: Tensor;
}

/** What `run` returns: the layer output and the final state (Keras return_state=True). */
export interface RnnRun extends RnnState {
  output: Tensor;
}

function checkSize(layer: string, what: string, n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`${layer}: ${what} ${n}, expected an integer ≥ 1`);
  }
}

/** Weights and the sequence/step calls shared by layers and cells. */
abstract class Recurrent<In extends unknown[], Out> extends Module<In, Out> {
  readonly kernel: Tensor;
  readonly recurrentKernel: Tensor;
  readonly bias: Tensor;

  protected constructor(
    readonly cell: RnnCell,
    readonly inputSize: number,
    readonly units: number,
    rng: Rng,
  ) {
    super();
    const name = this.constructor.name;
    checkSize(name, "inputSize", inputSize);
    checkSize(name, "units", units);
    const gh = (cell === "gru" ? 3 : 4) * units;
    this.kernel = this.addParameter("kernel", glorotUniform([inputSize, gh], inputSize, gh, rng));
    this.recurrentKernel = this.addParameter("recurrent_kernel", orthogonal(units, gh, rng));
    const bias = new Float32Array(cell === "gru" ? 2 * gh : gh);
    if (cell === "lstm") bias.fill(1, units, 2 * units); // unit_forget_bias
    this.bias = this.addParameter("bias", Tensor.from(bias, cell === "gru" ? [2, gh] : [gh]));
  }

  protected sequence(
    x: Tensor,
    initial: RnnState | undefined,
    options: { returnSequences: boolean; goBackwards: boolean; outputOrder: "steps" | "time" },
  ): { sequence?: Tensor; h: Tensor; c?: Tensor } {
    if (initial?.c && this.cell === "gru") {
      throw new Error(`${this.constructor.name}: initial state has a cell state c; a GRU has none`);
    }
    const op = this.cell === "gru" ? gruSequence : lstmSequence;
    return op(x, this.kernel, this.recurrentKernel, this.bias, {
      ...options,
      h0: initial?.h,
      c0: initial?.c,
    });
  }

  /** One step: x [B, in] with the state before it → the state after it (same weights). */
  step(x: Tensor, state?: RnnState): RnnState {
    if (x.rank !== 2 || x.shape[1] !== this.inputSize) {
      throw new Error(
        `${this.constructor.name}.step: x has shape ${formatShape(x.shape)}; expected ` +
          `[batch, ${this.inputSize}]`,
      );
    }
    const x3 = x.reshape([x.shape[0], 1, this.inputSize]);
    const { h, c } = this.sequence(x3, state, {
      returnSequences: false,
      goBackwards: false,
      outputOrder: "steps",
    });
    return c ? { h, c } : { h };
  }
}

/** A recurrent layer over whole sequences x [B, T, in]. */
abstract class RecurrentLayer extends Recurrent<[Tensor, RnnState?], Tensor> {
  readonly returnSequences: boolean;
  readonly goBackwards: boolean;
  /** "time" aligns a backwards layer's sequence with the input (what Bidirectional merges). */
  outputOrder: "steps" | "time" = "steps";

  protected constructor(cell: RnnCell, inputSize: number, units: number, options: RnnLayerOptions) {
    super(cell, inputSize, units, options.rng ?? globalRng);
    this.returnSequences = options.returnSequences ?? false;
    this.goBackwards = options.goBackwards ?? false;
  }

  /** The output only: [B, T, H] with returnSequences, else [B, H]. */
  forward(x: Tensor, initial?: RnnState): Tensor {
    return this.run(x, initial).output;
  }

  /** Output and final state (Keras return_state=True). */
  run(x: Tensor, initial?: RnnState): RnnRun {
    const { sequence, h, c } = this.sequence(x, initial, {
      returnSequences: this.returnSequences,
      goBackwards: this.goBackwards,
      outputOrder: this.outputOrder,
    });
    return c ? { output: sequence ?? h, h, c } : { output: sequence ?? h, h };
  }

  /** A layer of the same configuration with fresh weights, processing the other direction. */
  abstract reversed(rng?: Rng): RecurrentLayer;
}

/** Keras GRU(units, reset_after=True): tanh / sigmoid, two bias vectors. */
export class GRU extends RecurrentLayer {
  constructor(inputSize: number, units: number, options: RnnLayerOptions = {}) {
    super("gru", inputSize, units, options);
  }

  reversed(rng?: Rng): GRU {
    return new GRU(this.inputSize, this.units, {
      returnSequences: this.returnSequences,
      goBackwards: !this.goBackwards,
      rng,
    });
  }
}

/** Keras LSTM(units): gate order i, f, c, o, forget-gate bias initialised to 1. */
export class LSTM extends RecurrentLayer {
  constructor(inputSize: number, units: number, options: RnnLayerOptions = {}) {
    super("lstm", inputSize, units, options);
  }

  reversed(rng?: Rng): LSTM {
    return new LSTM(this.inputSize, this.units, {
      returnSequences: this.returnSequences,
      goBackwards: !this.goBackwards,
      rng,
    });
  }
}

/** One GRU step for decoding loops: forward(x [B, in], h [B, H]?) → h' [B, H]. */
export class GRUCell extends Recurrent<[Tensor, Tensor?], Tensor> {
  constructor(inputSize: number, units: number, options: { rng?: Rng } = {}) {
    super("gru", inputSize, units, options.rng ?? globalRng);
  }

  forward(x: Tensor, h?: Tensor): Tensor {
    return this.step(x, h ? { h } : undefined).h;
  }
}

/** One LSTM step for decoding loops: forward(x [B, in], {h, c}?) → {h', c'}. */
export class LSTMCell extends Recurrent<[Tensor, RnnState?], Required<RnnState>> {
  constructor(inputSize: number, units: number, options: { rng?: Rng } = {}) {
    super("lstm", inputSize, units, options.rng ?? globalRng);
  }

  forward(x: Tensor, state?: RnnState): Required<RnnState> {
    const { h, c } = this.step(x, state);
    return { h, c: c! };
  }
}

export interface BidirectionalOptions {
  /** How the two directions combine (default "concat", as Keras). */
  mergeMode?: "concat" | "sum";
  /** Generator for the backward layer's weights. */
  rng?: Rng;
}

export interface BidirectionalRun {
  output: Tensor;
  forward: RnnState;
  backward: RnnState;
}

/**
 * Keras Bidirectional: `layer` runs forward, a copy with fresh weights runs backwards over the
 * same input (read in reverse by the kernel, no copy) with its outputs aligned to input time;
 * the two are concatenated on the feature axis or summed.
 */
export class Bidirectional extends Module<[Tensor, { forward?: RnnState; backward?: RnnState }?]> {
  readonly forwardLayer: RecurrentLayer;
  readonly backwardLayer: RecurrentLayer;
  readonly mergeMode: "concat" | "sum";

  constructor(layer: GRU | LSTM, options: BidirectionalOptions = {}) {
    super();
    if (!(layer instanceof GRU || layer instanceof LSTM)) {
      throw new Error(
        `Bidirectional: wraps a GRU or an LSTM, got ${(layer as object).constructor.name}`,
      );
    }
    const mergeMode = options.mergeMode ?? "concat";
    if (mergeMode !== "concat" && mergeMode !== "sum") {
      throw new Error(`Bidirectional: mergeMode '${mergeMode}', expected 'concat' or 'sum'`);
    }
    this.mergeMode = mergeMode;
    this.forwardLayer = this.addModule("forward_layer", layer);
    this.backwardLayer = this.addModule("backward_layer", layer.reversed(options.rng));
    this.backwardLayer.outputOrder = "time";
  }

  forward(x: Tensor, initial?: { forward?: RnnState; backward?: RnnState }): Tensor {
    return this.run(x, initial).output;
  }

  /** Merged output and each direction's final state (Keras return_state). */
  run(x: Tensor, initial: { forward?: RnnState; backward?: RnnState } = {}): BidirectionalRun {
    const f = this.forwardLayer.run(x, initial.forward);
    const b = this.backwardLayer.run(x, initial.backward);
    const output = this.mergeMode === "sum"
      ? add(f.output, b.output)
      : concat([f.output, b.output], -1);
    const state = ({ h, c }: RnnRun): RnnState => c ? { h, c } : { h };
    return { output, forward: state(f), backward: state(b) };
  }
}

// ---- configs ------------------------------------------------------------------------------

const OUTPUT_ORDERS = ["steps", "time"] as const;

function layerConfig(m: RecurrentLayer): Record<string, JsonValue> {
  return {
    inputSize: m.inputSize,
    units: m.units,
    returnSequences: m.returnSequences,
    goBackwards: m.goBackwards,
    outputOrder: m.outputOrder,
  };
}

function buildLayer<L extends RecurrentLayer>(
  Layer: new (inputSize: number, units: number, options: RnnLayerOptions) => L,
  c: Record<string, JsonValue>,
  rng: Rng,
): L {
  const layer = new Layer(numberField(c, "inputSize"), numberField(c, "units"), {
    returnSequences: booleanField(c, "returnSequences", false),
    goBackwards: booleanField(c, "goBackwards", false),
    rng,
  });
  layer.outputOrder = choiceField(c, "outputOrder", OUTPUT_ORDERS, "steps");
  return layer;
}

registerLayer("GRU", GRU, {
  config: layerConfig,
  build: (c, _children, rng) => buildLayer(GRU, c, rng),
});
registerLayer("LSTM", LSTM, {
  config: layerConfig,
  build: (c, _children, rng) => buildLayer(LSTM, c, rng),
});
registerLayer("GRUCell", GRUCell, {
  config: (m) => ({ inputSize: m.inputSize, units: m.units }),
  build: (c, _children, rng) =>
    new GRUCell(numberField(c, "inputSize"), numberField(c, "units"), { rng }),
});
registerLayer("LSTMCell", LSTMCell, {
  config: (m) => ({ inputSize: m.inputSize, units: m.units }),
  build: (c, _children, rng) =>
    new LSTMCell(numberField(c, "inputSize"), numberField(c, "units"), { rng }),
});
// The backward layer is derived from the forward one (`reversed`), so only the latter is a child.
registerLayer("Bidirectional", Bidirectional, {
  config: (m) => ({ mergeMode: m.mergeMode }),
  children: (m) => [m.forwardLayer],
  build: (c, [layer], rng) =>
    new Bidirectional(layer as GRU | LSTM, {
      mergeMode: choiceField(c, "mergeMode", ["concat", "sum"] as const, "concat"),
      rng,
    }),
});
