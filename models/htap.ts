// The LOP-120 temporal models (spec labs/TP5.md §3.5). All share one step interface: the step
// input x_t = [content_t, flags_t, flags_{t+1}] (18); the 100 context steps are teacher-forced
// (true content), the 19 later steps are free-running (content_t = the model's own prediction).
//
// - "none": the TAP baseline, GRUCell(18 → U) → Linear(U → 14).
// - "full": H-TAP — the same GRU plus an episodic memory of every past step, key_τ = W_k x_τ + p_τ,
//   value_τ = W_v x_τ (32-d), read by the query q_t = W_q [h_t; x_t] with causal scaled
//   dot-product attention; c_t gates the read-out: ŷ = W_o [h_t; σ(W_g [h_t; c_t]) ⊙ tanh(W_c c_t)].
// - "fifo": the same, attention restricted to the last `window` steps (DP's MA-TAP memory size).
// - "bounded": the course's SimpleAttention scoring, tanh(wᵀ key_τ + b), no query.
//
// Speed: the context is one GRU sequence dispatch, one causal attention dispatch and a handful of
// batched matmuls over all 100 steps (spec §3.6 engine hint); the 19 free-running steps, which
// must interleave cell, memory write, attention and read-out, are ONE fused decode dispatch
// (engine/ops/decode.ts) for "none", "full" and "fifo" ("bounded", and `decoder: "composed"`,
// step through the primitive ops: ~50 dispatches per step).
import { choiceField, numberField, objectField, registerLayer } from "../engine/io/config.ts";
import { Module } from "../engine/nn/module.ts";
import { Linear } from "../engine/nn/linear.ts";
import { GRU } from "../engine/nn/rnn.ts";
import { attention } from "../engine/ops/attention.ts";
import { gruDecode } from "../engine/ops/decode.ts";
import { add, mul } from "../engine/ops/elementwise.ts";
import { matmul } from "../engine/ops/matmul.ts";
import { concat, narrow, stack } from "../engine/ops/shape.ts";
import { type Rng } from "../engine/random.ts";
import { Tensor } from "../engine/tensor.ts";

export type MemoryKind = "none" | "full" | "fifo" | "bounded";

/** The sequence format, given by the data (labs/data/lop120.ts owns the LOP-120 numbers). */
export interface TapSizes {
  /** Frames of a whole sequence: rows of the memory's position table. */
  frames: number;
  /** Teacher-forced steps before the free-running ones. */
  context: number;
  /** Predicted channels per frame. */
  content: number;
  /** Step input width: content_t, flags_t, flags_{t+1}. */
  stepInput: number;
}

export interface TapOptions {
  sizes: TapSizes;
  units: number;
  memory: MemoryKind;
  /** Steps a "fifo" memory keeps (default 10). */
  window?: number;
  /** Key/value size (default 32). */
  keyDim?: number;
  /** How the free-running steps run: one fused dispatch (default) or the primitive ops. */
  decoder?: "fused" | "composed";
  rng: Rng;
}

export interface Rollout {
  /** [B, 119, 14]: predicted content of frames 1 … 119. */
  predictions: Tensor;
  /** With `weights`: attention of context queries 80 … 99 over memory 0 … 99, [B, 20, 100]. */
  contextWeights?: Tensor;
  /** With `weights`: each free-running step's attention over memory 0 … t, [B, t + 1]. */
  horizonWeights?: Tensor[];
}

/** Context queries whose weights a rollout returns (the re-entry query is the last, t = 99). */
export const WEIGHT_ROWS_FROM = 80;

interface Memory {
  query: Linear | null;
  key: Linear;
  value: Linear;
  position: Tensor;
  gate: Linear;
  context: Linear;
  /** "bounded": the course layer's w [dk, 1] ~ N(0, 0.05²) and zero bias (spec §1.2). */
  score: { weight: Tensor; bias: Tensor } | null;
}

export class TapModel extends Module<[Tensor, Tensor], Tensor> {
  readonly gru: GRU;
  readonly out: Linear;
  readonly memory: Memory | null;
  readonly kind: MemoryKind;
  readonly sizes: TapSizes;
  readonly window: number;
  readonly fused: boolean;

  constructor(options: TapOptions) {
    super();
    const { units, memory, rng, sizes } = options;
    const { frames, content, stepInput } = sizes;
    const dk = options.keyDim ?? 32;
    this.kind = memory;
    this.sizes = sizes;
    this.window = options.window ?? 10;
    // The fused kernel reads weights, keys and values as vec4: sizes that are multiples of 4.
    this.fused = (options.decoder ?? "fused") === "fused" && memory !== "bounded" &&
      units % 4 === 0 && (memory === "none" || dk % 4 === 0);
    this.gru = this.addModule("gru", new GRU(stepInput, units, { returnSequences: true, rng }));
    if (memory === "none") {
      this.memory = null;
      this.out = this.addModule("out", new Linear(units, content, { rng }));
      return;
    }
    this.memory = {
      query: memory === "bounded"
        ? null
        : this.addModule("query", new Linear(units + stepInput, dk, { rng })),
      key: this.addModule("key", new Linear(stepInput, dk, { rng })),
      value: this.addModule("value", new Linear(stepInput, dk, { rng })),
      position: this.addParameter("position", Tensor.uniform([frames, dk], -0.05, 0.05, rng)),
      gate: this.addModule("gate", new Linear(units + dk, units, { activation: "sigmoid", rng })),
      context: this.addModule("context", new Linear(dk, units, { activation: "tanh", rng })),
      score: memory === "bounded"
        ? {
          weight: this.addParameter("score_weight", Tensor.normal([dk, 1], 0, 0.05, rng)),
          bias: this.addParameter("score_bias", Tensor.zeros([1])),
        }
        : null,
    };
    this.out = this.addModule("out", new Linear(2 * units, content, { rng }));
  }

  /** Predictions only (training). */
  forward(contextInput: Tensor, horizonFlags: Tensor): Tensor {
    return this.rollout(contextInput, horizonFlags).predictions;
  }

  /**
   * contextInput [B, 100, 18] (true content), horizonFlags [B, 19, 4] → predictions of frames
   * 1 … 119, the last 19 generated free-running from the model's own predictions.
   */
  rollout(contextInput: Tensor, horizonFlags: Tensor, { weights = false } = {}): Rollout {
    const batch = contextInput.shape[0];
    const contextSteps = this.sizes.context;
    const { output: hidden, h } = this.gru.run(contextInput);
    const m = this.memory;
    let keys: Tensor | null = null, values: Tensor | null = null, keyBias: Tensor | null = null;
    let contextWeights: Tensor | undefined;
    let context: Tensor;
    if (!m) context = this.out.forward(hidden);
    else {
      keys = add(m.key.forward(contextInput), narrow(m.position, 0, 0, contextSteps));
      // Position rows folded into the key bias once: a generated step's key is one matmul.
      keyBias = add(m.position, m.key.bias!);
      values = m.value.forward(contextInput);
      const read = this.read(m, hidden, contextInput, keys, values, contextSteps, weights);
      if (read.weights) {
        contextWeights = narrow(
          read.weights.reshape([batch, contextSteps, contextSteps]),
          1,
          WEIGHT_ROWS_FROM,
          contextSteps - WEIGHT_ROWS_FROM,
        );
      }
      context = this.readout(m, hidden, read.context);
    }
    const generated: Tensor[] = [];
    const horizonWeights: Tensor[] = [];
    let content = narrow(context, 1, contextSteps - 1, 1).reshape([batch, this.sizes.content]);
    const steps = horizonFlags.shape[1];
    if (this.fused && steps > 0) {
      const decoded = gruDecode({
        h0: h,
        content0: content,
        flags: horizonFlags,
        kernel: this.gru.kernel,
        recurrentKernel: this.gru.recurrentKernel,
        bias: this.gru.bias,
        outWeight: this.out.weight,
        outBias: this.out.bias!,
        memory: m
          ? {
            keys: keys!,
            values: values!,
            queryWeight: m.query!.weight,
            queryBias: m.query!.bias!,
            keyWeight: m.key.weight,
            keyBias: narrow(keyBias!, 0, contextSteps, steps),
            valueWeight: m.value.weight,
            valueBias: m.value.bias!,
            gateWeight: m.gate.weight,
            gateBias: m.gate.bias!,
            contextWeight: m.context.weight,
            contextBias: m.context.bias!,
            window: this.kind === "fifo" ? this.window : 0,
          }
          : undefined,
        returnWeights: weights,
      });
      const predictions = concat([context, decoded.predictions], 1);
      if (!weights || !m) return { predictions };
      for (let s = 0; s < steps; s++) {
        const row = narrow(decoded.weights!, 1, s, 1).reshape([batch, contextSteps + steps]);
        horizonWeights.push(narrow(row, 1, 0, contextSteps + s + 1));
      }
      return { predictions, contextWeights, horizonWeights };
    }
    let state = h;
    for (let s = 0; s < steps; s++) {
      const t = contextSteps + s;
      const x = concat([content, narrow(horizonFlags, 1, s, 1).reshape([batch, 4])], 1);
      state = this.gru.step(x, { h: state }).h;
      if (!m) content = this.out.forward(state);
      else {
        const key = matmul(x, m.key.weight, { bias: narrow(keyBias!, 0, t, 1).reshape([-1]) });
        keys = concat([keys!, key.reshape([batch, 1, -1])], 1);
        values = concat([values!, m.value.forward(x).reshape([batch, 1, -1])], 1);
        const read = this.read(
          m,
          state.reshape([batch, 1, -1]),
          x.reshape([batch, 1, -1]),
          keys,
          values,
          1,
          weights,
        );
        if (read.weights) horizonWeights.push(read.weights.reshape([batch, t + 1]));
        content = this.readout(m, state, read.context.reshape([batch, -1]));
      }
      generated.push(content);
    }
    const predictions = generated.length ? concat([context, stack(generated, 1)], 1) : context;
    return weights && m ? { predictions, contextWeights, horizonWeights } : { predictions };
  }

  /** Attention of `queries` steps (the last ones of the memory) over keys/values [B, S, dk]. */
  private read(
    m: Memory,
    hidden: Tensor,
    input: Tensor,
    keys: Tensor,
    values: Tensor,
    queries: number,
    returnWeights: boolean,
  ): { context: Tensor; weights?: Tensor } {
    const [batch, steps, dk] = keys.shape;
    const v = values.reshape([batch, 1, steps, dk]);
    const mask = this.kind === "fifo" ? { window: this.window } : "causal" as const;
    let q: Tensor, k: Tensor, scale: number | undefined;
    if (m.score) {
      // Query-free bounded score e_τ = tanh(wᵀ key_τ + b): with q ≡ 1 and a 1-d "key" e_τ the
      // fused kernel computes exactly softmax over the visible e_τ.
      k = matmul(keys, m.score.weight, { bias: m.score.bias, activation: "tanh" })
        .reshape([batch, 1, steps, 1]);
      q = Tensor.ones([batch, 1, queries, 1]);
      scale = 1;
    } else {
      q = m.query!.forward(concat([hidden, input], -1)).reshape([batch, 1, queries, dk]);
      k = keys.reshape([batch, 1, steps, dk]);
    }
    if (returnWeights) {
      const r = attention(q, k, v, { mask, scale, returnWeights: true });
      return { context: r.output.reshape([batch, queries, dk]), weights: r.weights };
    }
    return { context: attention(q, k, v, { mask, scale }).reshape([batch, queries, dk]) };
  }

  /** ŷ = W_o [h; σ(W_g [h; c]) ⊙ tanh(W_c c)]. */
  private readout(m: Memory, hidden: Tensor, context: Tensor): Tensor {
    const gate = m.gate.forward(concat([hidden, context], -1));
    return this.out.forward(concat([hidden, mul(gate, m.context.forward(context))], -1));
  }
}

// Units, key size and decoder are read back from what the constructor built: a "fused" request on
// sizes the kernel cannot take already runs composed, so it is saved as "composed".
registerLayer("TapModel", TapModel, {
  config: (m) => ({
    sizes: { ...m.sizes },
    units: m.gru.units,
    memory: m.kind,
    window: m.window,
    keyDim: m.memory?.key.outFeatures ?? 32,
    decoder: m.fused ? "fused" : "composed",
  }),
  build: (c, _children, rng) => {
    const sizes = objectField(c, "sizes");
    return new TapModel({
      sizes: {
        frames: numberField(sizes, "frames"),
        context: numberField(sizes, "context"),
        content: numberField(sizes, "content"),
        stepInput: numberField(sizes, "stepInput"),
      },
      units: numberField(c, "units"),
      memory: choiceField(c, "memory", ["none", "full", "fifo", "bounded"] as const),
      window: numberField(c, "window", 10),
      keyDim: numberField(c, "keyDim", 32),
      decoder: choiceField(c, "decoder", ["fused", "composed"] as const, "fused"),
      rng,
    });
  },
});
