// Attention layers: the course's additive SimpleAttention (TP5 §1.2), Luong/Bahdanau decoder
// attention for seq2seq (TP5 §2.2), and multi-head attention over the fused kernel.
import { formatShape, Tensor } from "../tensor.ts";
import { matmul } from "../ops/matmul.ts";
import { add, mul, tanh } from "../ops/elementwise.ts";
import { softmax } from "../ops/reduce.ts";
import { permute, reshape } from "../ops/shape.ts";
import { attention, type AttentionMask, type AttentionResult } from "../ops/attention.ts";
import { globalRng, type Rng } from "../random.ts";
import { Module } from "./module.ts";
import { Linear } from "./linear.ts";
import { glorotUniform } from "./init.ts";
import { booleanField, choiceField, numberField, registerLayer } from "../io/config.ts";

function checkSizes(layer: string, sizes: [string, number][]): void {
  for (const [what, n] of sizes) {
    if (!Number.isInteger(n) || n < 1) {
      throw new Error(`${layer}: ${what} ${n}, expected an integer ≥ 1`);
    }
  }
}

/** Context vectors and the attention weights that produced them. */
export interface ContextAndWeights {
  context: Tensor;
  weights: Tensor;
}

// ---- SimpleAttention ----------------------------------------------------------------------

export interface SimpleAttentionOptions {
  rng?: Rng;
}

/**
 * The course's additive pooling layer over RNN states h [B, T, d]: e = tanh(h·W + b) with W
 * [d, 1] (Keras "normal": N(0, 0.05)) and one bias per time step b [T, 1] (zeros), α =
 * softmax over time, context = Σ_t α_t h_t. Returns [context [B, d], α [B, T, 1]]. The bias
 * ties the layer to T time steps, as in the course (parameter count d + T).
 */
export class SimpleAttention extends Module<[Tensor], [Tensor, Tensor]> {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(
    readonly timeSteps: number,
    readonly features: number,
    options: SimpleAttentionOptions = {},
  ) {
    super();
    checkSizes("SimpleAttention", [["timeSteps", timeSteps], ["features", features]]);
    this.weight = this.addParameter(
      "weight",
      Tensor.normal([features, 1], 0, 0.05, options.rng ?? globalRng),
    );
    this.bias = this.addParameter("bias", Tensor.zeros([timeSteps, 1]));
  }

  forward(h: Tensor): [Tensor, Tensor] {
    if (h.rank !== 3 || h.shape[1] !== this.timeSteps || h.shape[2] !== this.features) {
      throw new Error(
        `SimpleAttention: input ${formatShape(h.shape)}, expected [B, ${this.timeSteps}, ` +
          `${this.features}] (batch, time steps, features)`,
      );
    }
    const scores = tanh(add(matmul(h, this.weight), this.bias));
    const weights = softmax(scores, 1);
    // Σ_t α_t h_t as one batched product: αᵀ [B, 1, T] · h [B, T, d].
    const context = reshape(matmul(weights, h, { transA: true }), [h.shape[0], this.features]);
    return [context, weights];
  }
}

// ---- ScaledDotProductAttention ------------------------------------------------------------

export interface ScaledDotProductCallOptions {
  /**
   * `"causal"`, `{ window: W }` (see ops/attention.ts `AttentionMask`), or an additive f32
   * tensor broadcastable to [B, Tq, Tk] (0 to keep, −Infinity to mask).
   */
  mask?: AttentionMask;
}

/**
 * The "from scratch" layer of TP5 §1.3, without parameters: softmax(Q·Kᵀ/√d_k + mask)·V for
 * Q [B, Tq, d_k], K [B, Tk, d_k], V [B, Tk, d_v] → output [B, Tq, d_v] and weights [B, Tq, Tk].
 * One head of the fused kernel: masked keys get weight exactly 0, and a fully masked row gives
 * zeros instead of NaN. Gradients flow through the output; the weights are for inspection.
 */
export class ScaledDotProductAttention
  extends Module<[Tensor, Tensor, Tensor, ScaledDotProductCallOptions?], AttentionResult> {
  forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    { mask }: ScaledDotProductCallOptions = {},
  ): AttentionResult {
    const fits = q.rank === 3 && k.rank === 3 && v.rank === 3 && k.shape[0] === q.shape[0] &&
      v.shape[0] === q.shape[0] && k.shape[2] === q.shape[2] && v.shape[1] === k.shape[1];
    if (!fits) {
      throw new Error(
        `ScaledDotProductAttention: q ${formatShape(q.shape)}, k ${formatShape(k.shape)}, ` +
          `v ${formatShape(v.shape)}; expected q [B, Tq, d_k], k [B, Tk, d_k], v [B, Tk, d_v]`,
      );
    }
    const [batch, tq] = q.shape;
    const [tk, dv] = [k.shape[1], v.shape[2]];
    const oneHead = (x: Tensor) => reshape(x, [x.shape[0], 1, x.shape[1], x.shape[2]]);
    let headMask = mask;
    if (mask instanceof Tensor && mask.rank === 3) {
      // [B, Tq, Tk] → [B, 1, Tq, Tk]: the kernel broadcasts masks over [B, H, Tq, Tk].
      headMask = oneHead(mask);
    } else if (mask instanceof Tensor && mask.rank > 3) {
      throw new Error(
        `ScaledDotProductAttention: mask ${formatShape(mask.shape)}; expected a tensor ` +
          `broadcastable to [B, Tq, Tk] = [${batch}, ${tq}, ${tk}]`,
      );
    }
    const { output, weights } = attention(oneHead(q), oneHead(k), oneHead(v), {
      mask: headMask,
      returnWeights: true,
    });
    return {
      output: reshape(output, [batch, tq, dv]),
      weights: reshape(weights, [batch, tq, tk]),
    };
  }
}

// ---- DecoderAttention ---------------------------------------------------------------------

/**
 * - `dot`: q·h (Luong dot; Keras `Attention()`);
 * - `scaled`: q·h/√d (scaled dot-product);
 * - `learned-scalar`: g·q·h with a trainable g initialised to 1 (Keras `Attention(use_scale=True)`);
 * - `general`: q·W·h (Luong general, W [queryDim, valueDim]);
 * - `additive`: vᵀ tanh(W_q q + W_k h) (Bahdanau; W_q [queryDim, units], W_k [valueDim, units]).
 */
export type DecoderScore = "dot" | "scaled" | "learned-scalar" | "general" | "additive";

const DECODER_SCORES: readonly DecoderScore[] = [
  "dot",
  "scaled",
  "learned-scalar",
  "general",
  "additive",
];

export interface DecoderAttentionOptions {
  score?: DecoderScore;
  /** Hidden size of the additive score (default 32). */
  units?: number;
  rng?: Rng;
}

/**
 * Cross-attention of decoder states over encoder outputs (keys = values = the encoder
 * outputs). `forward(query, values, mask?)`: query [B, Tq, queryDim] (all decoder steps) or
 * [B, queryDim] (one step), values [B, Tk, valueDim], an optional additive mask broadcastable
 * to [B, Tq, Tk] → context [B, Tq, valueDim] and weights [B, Tq, Tk] (or [B, valueDim] and
 * [B, Tk] for one step). Built from matmul/softmax, so the weights are differentiable too.
 */
export class DecoderAttention extends Module<[Tensor, Tensor, Tensor?], ContextAndWeights> {
  readonly score: DecoderScore;
  /** Hidden size of the additive score (unused by the others). */
  readonly units: number;
  readonly scale: Tensor | null = null;
  readonly weight: Tensor | null = null;
  readonly queryWeight: Tensor | null = null;
  readonly keyWeight: Tensor | null = null;
  readonly scoreVector: Tensor | null = null;

  constructor(
    readonly queryDim: number,
    readonly valueDim: number,
    options: DecoderAttentionOptions = {},
  ) {
    super();
    const { score = "scaled", units = 32, rng = globalRng } = options;
    checkSizes("DecoderAttention", [["queryDim", queryDim], ["valueDim", valueDim], [
      "units",
      units,
    ]]);
    if (!DECODER_SCORES.includes(score)) {
      throw new Error(
        `DecoderAttention: unknown score '${score}', expected dot, scaled, learned-scalar, ` +
          "general or additive",
      );
    }
    if (
      (score === "dot" || score === "scaled" || score === "learned-scalar") && queryDim !== valueDim
    ) {
      throw new Error(
        `DecoderAttention: the ${score} score needs queryDim = valueDim, got ${queryDim} and ` +
          `${valueDim} (use 'general' or 'additive' for different sizes)`,
      );
    }
    this.score = score;
    this.units = units;
    if (score === "learned-scalar") this.scale = this.addParameter("scale", Tensor.ones([1]));
    if (score === "general") {
      this.weight = this.addParameter(
        "weight",
        glorotUniform([queryDim, valueDim], queryDim, valueDim, rng),
      );
    }
    if (score === "additive") {
      this.queryWeight = this.addParameter(
        "query_weight",
        glorotUniform([queryDim, units], queryDim, units, rng),
      );
      this.keyWeight = this.addParameter(
        "key_weight",
        glorotUniform([valueDim, units], valueDim, units, rng),
      );
      this.scoreVector = this.addParameter(
        "score_vector",
        glorotUniform([units, 1], units, 1, rng),
      );
    }
  }

  forward(query: Tensor, values: Tensor, mask?: Tensor): ContextAndWeights {
    const oneStep = query.rank === 2;
    const q = oneStep ? reshape(query, [query.shape[0], 1, query.shape[1]]) : query;
    const fits = q.rank === 3 && q.shape[2] === this.queryDim && values.rank === 3 &&
      values.shape[0] === q.shape[0] && values.shape[2] === this.valueDim;
    if (!fits) {
      throw new Error(
        `DecoderAttention: query ${formatShape(query.shape)}, values ` +
          `${formatShape(values.shape)}; expected query [B, Tq, ${this.queryDim}] or ` +
          `[B, ${this.queryDim}] and values [B, Tk, ${this.valueDim}]`,
      );
    }
    let scores = this.scores(q, values);
    if (mask) scores = add(scores, mask);
    const weights = softmax(scores, -1);
    const context = matmul(weights, values);
    if (!oneStep) return { context, weights };
    const [batch, , tk] = weights.shape;
    return {
      context: reshape(context, [batch, this.valueDim]),
      weights: reshape(weights, [batch, tk]),
    };
  }

  /** Scores [B, Tq, Tk]. */
  private scores(q: Tensor, values: Tensor): Tensor {
    switch (this.score) {
      case "dot":
        return matmul(q, values, { transB: true });
      case "scaled":
        return mul(matmul(q, values, { transB: true }), 1 / Math.sqrt(this.valueDim));
      case "learned-scalar":
        return mul(matmul(q, values, { transB: true }), this.scale!);
      case "general":
        return matmul(matmul(q, this.weight!), values, { transB: true });
      case "additive": {
        const [batch, tq] = q.shape;
        const tk = values.shape[1];
        const units = this.units;
        // W_q q [B, Tq, 1, U] + W_k h [B, 1, Tk, U] → tanh → ·v → [B, Tq, Tk].
        const pq = reshape(matmul(q, this.queryWeight!), [batch, tq, 1, units]);
        const pk = reshape(matmul(values, this.keyWeight!), [batch, 1, tk, units]);
        const hidden = tanh(add(pq, pk));
        return reshape(matmul(hidden, this.scoreVector!), [batch, tq, tk]);
      }
    }
  }
}

// ---- MultiHeadAttention -------------------------------------------------------------------

export interface MultiHeadAttentionOptions {
  /** Size of each head's queries and keys (default dModel / numHeads). */
  keyDim?: number;
  /** Size of each head's values (default keyDim). */
  valueDim?: number;
  /** Features of the key input (default dModel) and of the value input (default kdim). */
  kdim?: number;
  vdim?: number;
  /** Biases on the four projections (default true, as Keras and PyTorch). */
  bias?: boolean;
  rng?: Rng;
}

export interface MultiHeadCallOptions {
  mask?: AttentionMask;
}

/**
 * Multi-head attention (Keras MultiHeadAttention / PyTorch nn.MultiheadAttention with
 * batch_first): queries, keys and values are projected to numHeads heads, attended with the
 * fused kernel, merged and projected back to dModel. `forward(query [B, Tq, dModel], key =
 * query, value = key, { mask })` → [B, Tq, dModel]; a key/value from another sequence is
 * cross-attention. `forwardWithWeights` also returns the weights [B, numHeads, Tq, Tk].
 */
export class MultiHeadAttention
  extends Module<[Tensor, Tensor?, Tensor?, MultiHeadCallOptions?], Tensor> {
  readonly keyDim: number;
  readonly valueDim: number;
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly output: Linear;

  constructor(
    readonly dModel: number,
    readonly numHeads: number,
    options: MultiHeadAttentionOptions = {},
  ) {
    super();
    checkSizes("MultiHeadAttention", [["dModel", dModel], ["numHeads", numHeads]]);
    if (options.keyDim === undefined && dModel % numHeads !== 0) {
      throw new Error(
        `MultiHeadAttention: dModel ${dModel} is not divisible by numHeads ${numHeads}; ` +
          "pass keyDim",
      );
    }
    this.keyDim = options.keyDim ?? dModel / numHeads;
    this.valueDim = options.valueDim ?? this.keyDim;
    const kdim = options.kdim ?? dModel;
    const vdim = options.vdim ?? kdim;
    checkSizes("MultiHeadAttention", [["keyDim", this.keyDim], ["valueDim", this.valueDim], [
      "kdim",
      kdim,
    ], ["vdim", vdim]]);
    const linear = { bias: options.bias ?? true, rng: options.rng };
    this.query = this.addModule("query", new Linear(dModel, numHeads * this.keyDim, linear));
    this.key = this.addModule("key", new Linear(kdim, numHeads * this.keyDim, linear));
    this.value = this.addModule("value", new Linear(vdim, numHeads * this.valueDim, linear));
    this.output = this.addModule("output", new Linear(numHeads * this.valueDim, dModel, linear));
  }

  forward(query: Tensor, key?: Tensor, value?: Tensor, options: MultiHeadCallOptions = {}): Tensor {
    return this.run(query, key, value, options, false) as Tensor;
  }

  forwardWithWeights(
    query: Tensor,
    key?: Tensor,
    value?: Tensor,
    options: MultiHeadCallOptions = {},
  ): AttentionResult {
    return this.run(query, key, value, options, true) as AttentionResult;
  }

  private run(
    query: Tensor,
    key: Tensor | undefined,
    value: Tensor | undefined,
    { mask }: MultiHeadCallOptions,
    withWeights: boolean,
  ): Tensor | AttentionResult {
    const k = key ?? query;
    const v = value ?? k;
    const fits = query.rank === 3 && k.rank === 3 && v.rank === 3 &&
      k.shape[0] === query.shape[0] && v.shape[0] === query.shape[0] && v.shape[1] === k.shape[1];
    if (!fits) {
      throw new Error(
        `MultiHeadAttention: query ${formatShape(query.shape)}, key ${formatShape(k.shape)}, ` +
          `value ${formatShape(v.shape)}; expected [B, Tq, ${this.dModel}], [B, Tk, kdim] and ` +
          "[B, Tk, vdim]",
      );
    }
    const [batch, tq] = query.shape;
    const tk = k.shape[1];
    // [B, T, H·d] → [B, H, T, d]
    const heads = (x: Tensor, t: number, d: number) =>
      permute(reshape(x, [batch, t, this.numHeads, d]), [0, 2, 1, 3]);
    const qh = heads(this.query.forward(query), tq, this.keyDim);
    const kh = heads(this.key.forward(k), tk, this.keyDim);
    const vh = heads(this.value.forward(v), tk, this.valueDim);
    const result = withWeights
      ? attention(qh, kh, vh, { mask, returnWeights: true })
      : { output: attention(qh, kh, vh, { mask }), weights: null };
    const merged = reshape(
      permute(result.output, [0, 2, 1, 3]),
      [batch, tq, this.numHeads * this.valueDim],
    );
    const output = this.output.forward(merged);
    return result.weights ? { output, weights: result.weights } : output;
  }
}

// ---- configs ------------------------------------------------------------------------------

registerLayer("SimpleAttention", SimpleAttention, {
  config: (m) => ({ timeSteps: m.timeSteps, features: m.features }),
  build: (c, _children, rng) =>
    new SimpleAttention(numberField(c, "timeSteps"), numberField(c, "features"), { rng }),
});

registerLayer("ScaledDotProductAttention", ScaledDotProductAttention, {
  config: () => ({}),
  build: () => new ScaledDotProductAttention(),
});

registerLayer("DecoderAttention", DecoderAttention, {
  config: (m) => ({
    queryDim: m.queryDim,
    valueDim: m.valueDim,
    score: m.score,
    units: m.units,
  }),
  build: (c, _children, rng) =>
    new DecoderAttention(numberField(c, "queryDim"), numberField(c, "valueDim"), {
      score: choiceField(c, "score", DECODER_SCORES, "scaled"),
      units: numberField(c, "units", 32),
      rng,
    }),
});

// The four projections are built by the constructor: their sizes are the config.
registerLayer("MultiHeadAttention", MultiHeadAttention, {
  config: (m) => ({
    dModel: m.dModel,
    numHeads: m.numHeads,
    keyDim: m.keyDim,
    valueDim: m.valueDim,
    kdim: m.key.inFeatures,
    vdim: m.value.inFeatures,
    bias: m.query.bias !== null,
  }),
  build: (c, _children, rng) => {
    const dModel = numberField(c, "dModel");
    return new MultiHeadAttention(dModel, numberField(c, "numHeads"), {
      keyDim: numberField(c, "keyDim"),
      valueDim: numberField(c, "valueDim"),
      kdim: numberField(c, "kdim", dModel),
      vdim: numberField(c, "vdim", dModel),
      bias: booleanField(c, "bias", true),
      rng,
    });
  },
});
