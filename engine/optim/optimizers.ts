// Optimizers with Keras 3 update rules, each step one fused GPU dispatch per parameter. The
// step-dependent scalars (learning rate, bias corrections) are computed on the host from the step
// counter and travel in the dispatch's uniform block: a step never reads anything back.
import { formatShape, Tensor } from "../tensor.ts";
import { type KernelSpec, runtime } from "../runtime.ts";
import { grid1d, wgsl } from "../shaders/common.ts";
import { type UpdateFields, type UpdateKernel, updateKernel } from "../shaders/optim.ts";
import { add, mul } from "../ops/elementwise.ts";
import { sum } from "../ops/reduce.ts";

/** What a checkpoint needs to resume an optimizer: its step counter and its state tensors. */
export interface OptimizerState {
  /** Completed steps (Keras `iterations`). */
  step: number;
  /** `<slot>.<parameter index>`, e.g. `velocity.3`; owned by the optimizer, do not dispose. */
  tensors: Record<string, Tensor>;
}

export interface OptimizerOptions {
  lr?: number;
  /**
   * Decoupled weight decay (Keras `weight_decay`): `w ← w − lr·wd·w` before each update.
   * Not an L2 term in the loss; for Keras `kernel_regularizer=l2(λ)` use `l2Penalty`.
   */
  weightDecay?: number;
}

function checkRange(
  op: string,
  name: string,
  value: number,
  low: number,
  high: number,
  highOpen: boolean,
): void {
  const ok = Number.isFinite(value) && value >= low && (highOpen ? value < high : value <= high);
  if (!ok) {
    const interval = `[${low}, ${high}${highOpen ? ")" : "]"}`;
    throw new Error(`${op}: ${name} = ${value}, expected a number in ${interval}`);
  }
}

function checkNonNegative(op: string, name: string, value: number): void {
  checkRange(op, name, value, 0, Infinity, true);
}

/**
 * Base class: the parameter list, learning rate, step counter and per-parameter state slots.
 * `K` names the update rule's f32 uniform fields.
 */
export abstract class Optimizer<K extends string = string> {
  readonly params: readonly Tensor[];
  readonly weightDecay: number;
  private lr: number;
  private steps = 0;
  /** slots[k][i]: state slot k of parameter i. */
  private slots: Tensor[][];
  private disposed = false;
  private updateSpec: KernelSpec<UpdateFields> | null = null;

  protected constructor(
    readonly name: string,
    params: readonly Tensor[],
    options: OptimizerOptions & { lr: number },
    protected readonly slotNames: readonly string[],
  ) {
    if (params.length === 0) throw new Error(`${name}: received an empty parameter list`);
    const storages = new Map<unknown, number>();
    params.forEach((p, i) => {
      p.assertAlive(name);
      if (p.dtype !== "f32") {
        throw new Error(
          `${name}: parameter ${i} ${formatShape(p.shape)} has dtype ${p.dtype}, expected f32`,
        );
      }
      const previous = storages.get(p.storage);
      if (previous !== undefined) {
        throw new Error(
          `${name}: parameters ${previous} and ${i} share their storage; each would be updated twice`,
        );
      }
      storages.set(p.storage, i);
    });
    this.params = [...params];
    checkNonNegative(name, "lr", options.lr);
    this.lr = options.lr;
    this.weightDecay = options.weightDecay ?? 0;
    checkNonNegative(name, "weightDecay", this.weightDecay);
    this.slots = slotNames.map(() => this.params.map((p) => Tensor.zeros(p.shape).keep()));
  }

  get learningRate(): number {
    return this.lr;
  }

  /** Schedules set this between steps; the next step() uses it. */
  set learningRate(value: number) {
    checkNonNegative(this.name, "learningRate", value);
    this.lr = value;
  }

  /** Completed steps (Keras `iterations`). */
  get iterations(): number {
    return this.steps;
  }

  /** One update of every parameter that has a gradient; the others are left untouched. */
  step(): void {
    this.assertAlive();
    const updates: number[] = [];
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      p.assertAlive(`${this.name}.step`);
      if (p.grad.size !== p.size || p.grad.dtype !== "f32") {
        throw new Error(
          `${this.name}.step: parameter ${i} ${formatShape(p.shape)} has a ${p.grad.dtype} ` +
            `gradient of shape ${formatShape(p.grad.shape)}, expected f32 ${formatShape(p.shape)}`,
        );
      }
      updates.push(i);
    });
    const t = this.steps + 1;
    const kernel = this.updateSpec ??= updateKernel(this.kernel(this.weightDecay > 0));
    const fields = this.uniforms(t, this.lr);
    const decay = this.lr * this.weightDecay;
    const rt = runtime();
    for (const i of updates) {
      const p = this.params[i];
      if (p.size === 0) continue;
      const [gx, gy] = grid1d(Math.ceil(p.size / 4));
      rt.launch(kernel, {
        buffers: [p.storage, p.grad!.storage, ...this.slots.map((slot) => slot[i].storage)],
        params: { ...fields, n: p.size, gx, decay },
        groups: [gx, gy],
      });
    }
    this.steps = t;
  }

  /** Disposes every parameter's gradient and sets it to null. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The step counter and the live state tensors by name (see OptimizerState). */
  state(): OptimizerState {
    this.assertAlive();
    const tensors: Record<string, Tensor> = {};
    this.slotNames.forEach((slot, k) => {
      this.slots[k].forEach((t, i) => tensors[`${slot}.${i}`] = t);
    });
    return { step: this.steps, tensors };
  }

  /** Copies a saved state (same optimizer kind, options and parameter shapes) into this one. */
  loadState(state: OptimizerState): void {
    this.assertAlive();
    const where = `${this.name}.loadState`;
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new Error(`${where}: step = ${state.step}, expected an integer ≥ 0`);
    }
    const own = this.state().tensors;
    const expected = Object.keys(own);
    const given = Object.keys(state.tensors);
    const missing = expected.filter((k) => !(k in state.tensors));
    const extra = given.filter((k) => !(k in own));
    if (missing.length || extra.length) {
      throw new Error(
        `${where}: state names differ; missing [${missing.join(", ")}], ` +
          `unexpected [${extra.join(", ")}]`,
      );
    }
    for (const name of expected) {
      const source = state.tensors[name];
      source.assertAlive(where);
      const target = own[name];
      if (source.shape.join() !== target.shape.join() || source.dtype !== "f32") {
        throw new Error(
          `${where}: '${name}' is ${source.dtype} ${formatShape(source.shape)}, ` +
            `expected f32 ${formatShape(target.shape)}`,
        );
      }
    }
    const rt = runtime();
    for (const name of expected) {
      const source = state.tensors[name];
      if (source.storage !== own[name].storage && source.size > 0) {
        rt.copy(source.storage, 0, own[name].storage, 0, source.size * 4);
      }
    }
    this.steps = state.step;
  }

  /** Frees the state tensors; the parameters are not touched. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const slot of this.slots) for (const t of slot) t.dispose();
    this.slots = [];
  }

  private assertAlive(): void {
    if (this.disposed) throw new Error(`${this.name}: the optimizer was disposed`);
  }

  /** The update rule (its flags decide the kernel specialisation). */
  protected abstract kernel(decay: boolean): UpdateKernel<K>;
  /** Values of the kernel's uniform fields for step t (1-based) at learning rate lr. */
  protected abstract uniforms(t: number, lr: number): Record<K, number>;
}

// ---- SGD ----------------------------------------------------------------------------------

export interface SGDOptions extends OptimizerOptions {
  /** μ in v ← μv − lr·g; w ← w + v. 0 = plain gradient descent. */
  momentum?: number;
  /** w ← w + μv − lr·g (with the already updated v). */
  nesterov?: boolean;
}

/** Keras SGD: lr 0.01, momentum 0, Nesterov off. */
export class SGD extends Optimizer<"lr" | "momentum"> {
  readonly momentum: number;
  readonly nesterov: boolean;

  constructor(params: readonly Tensor[], options: SGDOptions = {}) {
    const momentum = options.momentum ?? 0;
    checkRange("SGD", "momentum", momentum, 0, 1, false);
    if (options.nesterov && momentum === 0) {
      throw new Error("SGD: nesterov = true needs momentum > 0, received momentum = 0");
    }
    super("SGD", params, { ...options, lr: options.lr ?? 0.01 }, momentum > 0 ? ["momentum"] : []);
    this.momentum = momentum;
    this.nesterov = options.nesterov ?? false;
  }

  protected kernel(decay: boolean): UpdateKernel<"lr" | "momentum"> {
    const body = this.momentum === 0
      ? "let w1 = wd - g * u.lr;"
      : this.nesterov
      ? `let momentum1 = momentum0 * u.momentum - g * u.lr;
  let w1 = wd + (momentum1 * u.momentum - g * u.lr);`
      : `let momentum1 = momentum0 * u.momentum - g * u.lr;
  let w1 = wd + momentum1;`;
    return {
      name: "sgd_update",
      key: `momentum=${this.momentum > 0},nesterov=${this.nesterov}`,
      slots: this.slotNames,
      fields: ["lr", "momentum"],
      decay,
      body,
    };
  }

  protected uniforms(_t: number, lr: number) {
    return { lr, momentum: this.momentum };
  }
}

// ---- RMSprop ------------------------------------------------------------------------------

export interface RMSpropOptions extends OptimizerOptions {
  rho?: number;
  /** Plain (heavy-ball) momentum on the scaled step: m ← μm + step; w ← w − m. */
  momentum?: number;
  epsilon?: number;
  /** Normalise by the estimated variance v − ḡ² instead of the second moment v. */
  centered?: boolean;
}

/**
 * Keras 3 RMSprop: v ← ρv + (1−ρ)g²; w ← w − lr·g / √(v + ε). ε sits inside the square root
 * (Keras 3; tf.keras 2 added it outside). Centered: √(v − ḡ² + ε) with ḡ ← ρḡ + (1−ρ)g.
 */
type RMSpropField = "lr" | "rho" | "one_minus_rho" | "momentum" | "epsilon";

export class RMSprop extends Optimizer<RMSpropField> {
  readonly rho: number;
  readonly momentum: number;
  readonly epsilon: number;
  readonly centered: boolean;

  constructor(params: readonly Tensor[], options: RMSpropOptions = {}) {
    const rho = options.rho ?? 0.9;
    const momentum = options.momentum ?? 0;
    const epsilon = options.epsilon ?? 1e-7;
    const centered = options.centered ?? false;
    checkRange("RMSprop", "rho", rho, 0, 1, true);
    checkRange("RMSprop", "momentum", momentum, 0, 1, false);
    checkNonNegative("RMSprop", "epsilon", epsilon);
    const slots = [
      "velocity",
      ...(momentum > 0 ? ["momentum"] : []),
      ...(centered ? ["average_gradient"] : []),
    ];
    super("RMSprop", params, { ...options, lr: options.lr ?? 1e-3 }, slots);
    this.rho = rho;
    this.momentum = momentum;
    this.epsilon = epsilon;
    this.centered = centered;
  }

  protected kernel(decay: boolean): UpdateKernel<RMSpropField> {
    const momentum = this.momentum > 0;
    return {
      name: "rmsprop_update",
      key: `momentum=${momentum},centered=${this.centered}`,
      slots: this.slotNames,
      fields: ["lr", "rho", "one_minus_rho", "momentum", "epsilon"],
      decay,
      body: wgsl`let velocity1 = u.rho * velocity0 + u.one_minus_rho * (g * g);
#if ${this.centered}
  let average_gradient1 = u.rho * average_gradient0 + u.one_minus_rho * g;
  let denominator = velocity1 - average_gradient1 * average_gradient1 + u.epsilon;
#else
  let denominator = velocity1 + u.epsilon;
#endif
  let increment = u.lr * g / sqrt(denominator);
#if ${momentum}
  let momentum1 = u.momentum * momentum0 + increment;
  let w1 = wd - momentum1;
#else
  let w1 = wd - increment;
#endif`,
    };
  }

  protected uniforms(_t: number, lr: number) {
    const { rho, momentum, epsilon } = this;
    return { lr, rho, one_minus_rho: 1 - rho, momentum, epsilon };
  }
}

// ---- Adam / AdamW -------------------------------------------------------------------------

export interface AdamOptions extends OptimizerOptions {
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** Divide by √(max over steps of v) instead of √v (Reddi et al. 2018). */
  amsgrad?: boolean;
}

/**
 * Keras 3 Adam: m ← m + (g − m)(1−β1); v ← v + (g² − v)(1−β2);
 * w ← w − α_t·m / (√v + ε) with α_t = lr·√(1−β2ᵗ)/(1−β1ᵗ) ("ε-hat" form).
 */
type AdamField = "alpha" | "one_minus_beta1" | "one_minus_beta2" | "epsilon";

export class Adam extends Optimizer<AdamField> {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly amsgrad: boolean;

  constructor(params: readonly Tensor[], options: AdamOptions = {}, name = "Adam") {
    const beta1 = options.beta1 ?? 0.9;
    const beta2 = options.beta2 ?? 0.999;
    const epsilon = options.epsilon ?? 1e-7;
    const amsgrad = options.amsgrad ?? false;
    checkRange(name, "beta1", beta1, 0, 1, true);
    checkRange(name, "beta2", beta2, 0, 1, true);
    checkNonNegative(name, "epsilon", epsilon);
    const slots = ["momentum", "velocity", ...(amsgrad ? ["velocity_hat"] : [])];
    super(name, params, { ...options, lr: options.lr ?? 1e-3 }, slots);
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.epsilon = epsilon;
    this.amsgrad = amsgrad;
  }

  protected kernel(decay: boolean): UpdateKernel<AdamField> {
    return {
      name: "adam_update",
      key: `amsgrad=${this.amsgrad}`,
      slots: this.slotNames,
      fields: ["alpha", "one_minus_beta1", "one_minus_beta2", "epsilon"],
      decay,
      body: wgsl`let momentum1 = momentum0 + (g - momentum0) * u.one_minus_beta1;
  let velocity1 = velocity0 + (g * g - velocity0) * u.one_minus_beta2;
#if ${this.amsgrad}
  let velocity_hat1 = max(velocity_hat0, velocity1);
  let w1 = wd - momentum1 * u.alpha / (sqrt(velocity_hat1) + u.epsilon);
#else
  let w1 = wd - momentum1 * u.alpha / (sqrt(velocity1) + u.epsilon);
#endif`,
    };
  }

  protected uniforms(t: number, lr: number) {
    const alpha = lr * Math.sqrt(1 - this.beta2 ** t) / (1 - this.beta1 ** t);
    return {
      alpha,
      one_minus_beta1: 1 - this.beta1,
      one_minus_beta2: 1 - this.beta2,
      epsilon: this.epsilon,
    };
  }
}

/** Keras 3 AdamW: Adam with decoupled weight decay, default 0.004 (w ← w − lr·wd·w first). */
export class AdamW extends Adam {
  constructor(params: readonly Tensor[], options: AdamOptions = {}) {
    super(params, { ...options, weightDecay: options.weightDecay ?? 0.004 }, "AdamW");
  }
}

// ---- L2 penalty ---------------------------------------------------------------------------

/**
 * λ·Σw² over `params` as a 0-d tensor with gradient 2λw (Keras `l2(λ)`, no ½). Keras applies
 * it to kernels only: pass the kernels, not the biases, and add the result to the loss.
 */
export function l2Penalty(params: readonly Tensor[], lambda: number): Tensor {
  checkNonNegative("l2Penalty", "lambda", lambda);
  if (params.length === 0) return Tensor.scalar(0);
  let total: Tensor | null = null;
  for (const w of params) {
    const squares = sum(mul(w, w));
    total = total ? add(total, squares) : squares;
  }
  return mul(total!, lambda);
}
