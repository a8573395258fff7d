// TP5 Part 1 model (spec labs/TP5.md §1.4): Input (B, T, F) → GRU(units, return_sequences) →
// attention pooling over the T hidden states → head. Attention is the course's SimpleAttention
// (§1.2, faithful) or scaled dot-product attention (§1.3) with a query from the last state.
import { choiceField, numberField, objectField, registerLayer } from "../engine/io/config.ts";
import { ScaledDotProductAttention, SimpleAttention } from "../engine/nn/attention.ts";
import { Dropout } from "../engine/nn/dropout.ts";
import { Linear } from "../engine/nn/linear.ts";
import { Module } from "../engine/nn/module.ts";
import { GRU } from "../engine/nn/rnn.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { reshape } from "../engine/ops/shape.ts";
import { Rng } from "../engine/random.ts";
import { formatShape, type Tensor } from "../engine/tensor.ts";

export type Part1Attention = "simple" | "scaled";

/** `regression`: Dense(1) (DP's sum task); `classes`: Dense(64, relu) → Dropout(0.3) → Dense(3). */
export type Part1Head = { kind: "regression" } | { kind: "classes"; classes: number };

export interface AttentionGruOptions {
  steps: number;
  features: number;
  head: Part1Head;
  attention?: Part1Attention;
  /** GRU units (default 64, spec §1.4). */
  units?: number;
  /** Seeds every initial weight and the dropout masks (default 0). */
  seed?: number;
}

export interface AttendedOutput {
  /** Regression values [B, 1] or class logits [B, classes]. */
  output: Tensor;
  /** Attention weights over time [B, T], each row summing to 1. */
  weights: Tensor;
  /** The pooled context Σ_t α_t h_t [B, units]. */
  context: Tensor;
}

export class AttentionGru extends Module {
  readonly gru: GRU;
  readonly simple: SimpleAttention | null = null;
  readonly scaled: ScaledDotProductAttention | null = null;
  /** Scaled variant: query = W_q h_T (learned projection of the last GRU state). */
  readonly query: Linear | null = null;
  readonly head: Sequential;
  /** What `head` was built for. */
  readonly headKind: Part1Head;
  readonly attentionKind: Part1Attention;
  readonly steps: number;
  readonly features: number;
  readonly units: number;
  /** Seeds the weights and the Dropout mask key: a rebuilt model draws the same key. */
  readonly seed: number;

  constructor(options: AttentionGruOptions) {
    super();
    const { steps, features, head, attention = "simple", units = 64, seed = 0 } = options;
    this.steps = steps;
    this.features = features;
    this.units = units;
    this.seed = seed;
    this.headKind = head;
    this.attentionKind = attention;
    const rng = new Rng(seed);
    this.gru = this.addModule("gru", new GRU(features, units, { returnSequences: true, rng }));
    if (attention === "simple") {
      this.simple = this.addModule("attention", new SimpleAttention(steps, units, { rng }));
    } else if (attention === "scaled") {
      // Pooling needs one query: the last hidden state h_T summarises the sequence, and a learned
      // projection lets the model choose which states to match (keys = values = all h_t).
      this.query = this.addModule("query", new Linear(units, units, { bias: false, rng }));
      this.scaled = this.addModule("attention", new ScaledDotProductAttention());
    } else {
      throw new Error(`AttentionGru: unknown attention '${attention}', expected simple or scaled`);
    }
    const layers = head.kind === "regression" ? [new Linear(units, 1, { rng })] : [
      new Linear(units, 64, { activation: "relu", rng }),
      new Dropout(0.3, { rng }),
      new Linear(64, head.classes, { rng }),
    ];
    this.head = this.addModule("head", new Sequential(...layers));
  }

  forward(x: Tensor): Tensor {
    return this.attend(x).output;
  }

  /** The output and the attention weights of the same forward pass. */
  attend(x: Tensor): AttendedOutput {
    if (x.rank !== 3 || x.shape[1] !== this.steps || x.shape[2] !== this.features) {
      throw new Error(
        `AttentionGru: input ${formatShape(x.shape)}, expected [B, ${this.steps}, ` +
          `${this.features}] (batch, time steps, features)`,
      );
    }
    const batch = x.shape[0];
    const { output: states, h } = this.gru.run(x);
    let context: Tensor;
    let weights: Tensor;
    if (this.simple) {
      [context, weights] = this.simple.forward(states);
    } else {
      const q = reshape(this.query!.forward(h), [batch, 1, this.units]);
      const pooled = this.scaled!.forward(q, states, states);
      context = pooled.output;
      weights = pooled.weights;
    }
    context = reshape(context, [batch, this.units]);
    return {
      output: this.head.forward(context),
      weights: reshape(weights, [batch, this.steps]),
      context,
    };
  }
}

registerLayer("AttentionGru", AttentionGru, {
  config: (m) => ({
    steps: m.steps,
    features: m.features,
    head: { ...m.headKind },
    attention: m.attentionKind,
    units: m.units,
    seed: m.seed,
  }),
  build: (c) => {
    const head = objectField(c, "head");
    const kind = choiceField(head, "kind", ["regression", "classes"] as const);
    return new AttentionGru({
      steps: numberField(c, "steps"),
      features: numberField(c, "features"),
      head: kind === "regression" ? { kind } : { kind, classes: numberField(head, "classes") },
      attention: choiceField(c, "attention", ["simple", "scaled"] as const, "simple"),
      units: numberField(c, "units", 64),
      seed: numberField(c, "seed", 0),
    });
  },
});
