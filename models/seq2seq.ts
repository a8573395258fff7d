// TP5 Part 2's forecaster (spec labs/TP5.md §2.2, seed 001's topology): a Bidirectional LSTM
// encoder (hidden/2 units per direction, full sequence and final states) → H_enc [B, T, hidden];
// an LSTM(hidden) decoder started from h₀ = [h_fwd; h_bwd], c₀ = [c_fwd; c_bwd]; cross-attention
// of the decoder outputs (queries) over H_enc (keys = values); head Dense(features) on
// [D; C] [B, H, 2·hidden].
//
// Two ways to run the decoder with the same weights:
// - `teacherForced`: the whole decoder input sequence at once (one LSTM node), for training;
// - `autoregressive`: step by step with the decoder's `.step`, feeding back each prediction (or,
//   for checking, given inputs), and returning the exact attention weights each step used.
import { choiceField, numberField, registerLayer } from "../engine/io/config.ts";
import { Bidirectional, LSTM, type RnnState } from "../engine/nn/rnn.ts";
import { DecoderAttention, type DecoderScore } from "../engine/nn/attention.ts";
import { Linear } from "../engine/nn/linear.ts";
import { Module } from "../engine/nn/module.ts";
import { concat, narrow, reshape, stack } from "../engine/ops/shape.ts";
import { globalRng, type Rng } from "../engine/random.ts";
import { formatShape, type Tensor } from "../engine/tensor.ts";

/**
 * `scaled` q·k/√hidden (the course's scaled dot product), `learned-scalar` g·q·k with g = 1 at
 * init (seed 001, Keras `Attention(use_scale=True)`), `none` plain q·k (seed 002), `additive`
 * Bahdanau vᵀ tanh(W_q q + W_k k) with 32 units (JB).
 */
export type Seq2SeqScore = "scaled" | "learned-scalar" | "none" | "additive";

export const SEQ2SEQ_SCORES: readonly Seq2SeqScore[] = [
  "scaled",
  "learned-scalar",
  "none",
  "additive",
];

export interface Seq2SeqOptions {
  /** Encoder steps T (the packed training input is [B, T + horizon, features]). */
  inputLen: number;
  horizon: number;
  /** Channels of the series (default 1). */
  features?: number;
  /** Decoder size; the encoder has hidden/2 per direction (default 64). */
  hiddenDim?: number;
  /** Default `scaled`. */
  score?: Seq2SeqScore;
  rng?: Rng;
}

export interface Forecast {
  /** [B, horizon, features]. */
  prediction: Tensor;
  /** Cross-attention weights [B, horizon, inputLen]; each row sums to 1. */
  weights: Tensor;
}

export interface Encoded {
  /** H_enc [B, T, hidden]. */
  memory: Tensor;
  /** Decoder initial state: h₀ = [h_fwd; h_bwd], c₀ = [c_fwd; c_bwd], each [B, hidden]. */
  state: Required<RnnState>;
}

const ENGINE_SCORE: Record<Seq2SeqScore, DecoderScore> = {
  scaled: "scaled",
  "learned-scalar": "learned-scalar",
  none: "dot",
  additive: "additive",
};

export class Seq2Seq extends Module<[Tensor], Tensor> {
  readonly inputLen: number;
  readonly horizon: number;
  readonly features: number;
  readonly hiddenDim: number;
  readonly score: Seq2SeqScore;
  readonly encoder: Bidirectional;
  readonly decoder: LSTM;
  readonly attention: DecoderAttention;
  readonly head: Linear;

  constructor(options: Seq2SeqOptions) {
    super();
    const { inputLen, horizon, features = 1, hiddenDim = 64, score = "scaled" } = options;
    const rng = options.rng ?? globalRng;
    for (
      const [what, n] of [["inputLen", inputLen], ["horizon", horizon], ["features", features]]
    ) {
      if (!Number.isInteger(n) || (n as number) < 1) {
        throw new Error(`Seq2Seq: ${what} ${n}, expected an integer ≥ 1`);
      }
    }
    if (!Number.isInteger(hiddenDim) || hiddenDim < 2 || hiddenDim % 2 !== 0) {
      throw new Error(`Seq2Seq: hiddenDim ${hiddenDim}, expected an even integer ≥ 2`);
    }
    if (!SEQ2SEQ_SCORES.includes(score)) {
      throw new Error(`Seq2Seq: score '${score}', expected one of ${SEQ2SEQ_SCORES.join(", ")}`);
    }
    this.inputLen = inputLen;
    this.horizon = horizon;
    this.features = features;
    this.hiddenDim = hiddenDim;
    this.score = score;
    this.encoder = this.addModule(
      "encoder",
      new Bidirectional(new LSTM(features, hiddenDim / 2, { returnSequences: true, rng }), {
        rng,
      }),
    );
    this.decoder = this.addModule(
      "decoder",
      new LSTM(features, hiddenDim, { returnSequences: true, rng }),
    );
    this.attention = this.addModule(
      "attention",
      new DecoderAttention(hiddenDim, hiddenDim, { score: ENGINE_SCORE[score], rng }),
    );
    this.head = this.addModule("head", new Linear(2 * hiddenDim, features, { rng }));
  }

  /** The learned attention scale g (learned-scalar score only). */
  get scale(): Tensor | null {
    return this.attention.scale;
  }

  /**
   * Training entry (what fit() calls): `packed` [B, inputLen + horizon, features] is the encoder
   * input followed by the teacher-forcing decoder input → predictions [B, horizon, features].
   */
  forward(packed: Tensor): Tensor {
    const length = this.inputLen + this.horizon;
    if (packed.rank !== 3 || packed.shape[1] !== length || packed.shape[2] !== this.features) {
      throw new Error(
        `Seq2Seq: packed input ${formatShape(packed.shape)}, expected [B, ${length}, ` +
          `${this.features}] (encoder input then decoder input along time)`,
      );
    }
    const x = narrow(packed, 1, 0, this.inputLen);
    const decoderInput = narrow(packed, 1, this.inputLen, this.horizon);
    return this.teacherForced(x, decoderInput).prediction;
  }

  /** x [B, T, features] → H_enc and the decoder's initial state. */
  encode(x: Tensor): Encoded {
    if (x.rank !== 3 || x.shape[1] !== this.inputLen || x.shape[2] !== this.features) {
      throw new Error(
        `Seq2Seq.encode: x ${formatShape(x.shape)}, expected [B, ${this.inputLen}, ` +
          `${this.features}]`,
      );
    }
    const { output, forward, backward } = this.encoder.run(x);
    return {
      memory: output,
      state: {
        h: concat([forward.h, backward.h], -1),
        c: concat([forward.c!, backward.c!], -1),
      },
    };
  }

  /** All decoder steps at once from the given decoder inputs [B, horizon, features]. */
  teacherForced(x: Tensor, decoderInput: Tensor): Forecast {
    const batch = x.shape[0];
    if (
      decoderInput.rank !== 3 || decoderInput.shape[0] !== batch ||
      decoderInput.shape[1] !== this.horizon || decoderInput.shape[2] !== this.features
    ) {
      throw new Error(
        `Seq2Seq.teacherForced: decoder input ${formatShape(decoderInput.shape)}, expected ` +
          `[${batch}, ${this.horizon}, ${this.features}]`,
      );
    }
    const { memory, state } = this.encode(x);
    const decoded = this.decoder.run(decoderInput, state).output;
    const { context, weights } = this.attention.forward(decoded, memory);
    return { prediction: this.head.forward(concat([decoded, context], -1)), weights };
  }

  /** Free-running decoding: step 0 reads `start` [B, features], step k > 0 the prediction k − 1. */
  autoregressive(x: Tensor, start: Tensor): Forecast {
    const batch = x.shape[0];
    if (start.rank !== 2 || start.shape[0] !== batch || start.shape[1] !== this.features) {
      throw new Error(
        `Seq2Seq.autoregressive: start ${formatShape(start.shape)}, expected ` +
          `[${batch}, ${this.features}]`,
      );
    }
    return this.decode(x, start, (_, predictions) => predictions.at(-1)!);
  }

  /**
   * The step-by-step decoder of `autoregressive`, fed the given decoder inputs [B, horizon,
   * features] instead of its own predictions: reproduces `teacherForced` (a consistency check).
   */
  stepwise(x: Tensor, decoderInput: Tensor): Forecast {
    const batch = x.shape[0];
    if (decoderInput.shape.join() !== [batch, this.horizon, this.features].join()) {
      throw new Error(
        `Seq2Seq.stepwise: decoder input ${formatShape(decoderInput.shape)}, expected ` +
          `[${batch}, ${this.horizon}, ${this.features}]`,
      );
    }
    const at = (k: number) => reshape(narrow(decoderInput, 1, k, 1), [batch, this.features]);
    return this.decode(x, at(0), at);
  }

  /** Decoder steps with `.step` (same weights as the whole-sequence LSTM). */
  private decode(
    x: Tensor,
    start: Tensor,
    next: (k: number, predictions: readonly Tensor[]) => Tensor,
  ): Forecast {
    const { memory, state: initial } = this.encode(x);
    let state: RnnState = initial;
    const predictions: Tensor[] = [];
    const weights: Tensor[] = [];
    for (let k = 0; k < this.horizon; k++) {
      state = this.decoder.step(k === 0 ? start : next(k, predictions), state);
      const attended = this.attention.forward(state.h, memory);
      predictions.push(this.head.forward(concat([state.h, attended.context], -1)));
      weights.push(attended.weights);
    }
    return { prediction: stack(predictions, 1), weights: stack(weights, 1) };
  }
}

registerLayer("Seq2Seq", Seq2Seq, {
  config: (m) => ({
    inputLen: m.inputLen,
    horizon: m.horizon,
    features: m.features,
    hiddenDim: m.hiddenDim,
    score: m.score,
  }),
  build: (c, _children, rng) =>
    new Seq2Seq({
      inputLen: numberField(c, "inputLen"),
      horizon: numberField(c, "horizon"),
      features: numberField(c, "features", 1),
      hiddenDim: numberField(c, "hiddenDim", 64),
      score: choiceField(c, "score", SEQ2SEQ_SCORES, "scaled"),
      rng,
    }),
});
