// Float64 host versions of the Keras 3 update rules (keras/src/optimizers/{sgd,rmsprop,adam}.py and
// base_optimizer's decoupled weight decay), written element by element from the formulas.

export type OptimizerConfig =
  | { kind: "sgd"; momentum: number; nesterov: boolean; weightDecay: number }
  | {
    kind: "rmsprop";
    rho: number;
    momentum: number;
    epsilon: number;
    centered: boolean;
    weightDecay: number;
  }
  | {
    kind: "adam";
    beta1: number;
    beta2: number;
    epsilon: number;
    amsgrad: boolean;
    weightDecay: number;
  };

/** State slot names in the GPU optimizer's order (they name `state().tensors`). */
export function slotNames(config: OptimizerConfig): string[] {
  switch (config.kind) {
    case "sgd":
      return config.momentum > 0 ? ["momentum"] : [];
    case "rmsprop":
      return [
        "velocity",
        ...(config.momentum > 0 ? ["momentum"] : []),
        ...(config.centered ? ["average_gradient"] : []),
      ];
    case "adam":
      return ["momentum", "velocity", ...(config.amsgrad ? ["velocity_hat"] : [])];
  }
}

export class RefOptimizer {
  step = 0;
  /** slots[name][param] */
  readonly slots: Record<string, Float64Array[]> = {};

  constructor(readonly config: OptimizerConfig, sizes: readonly number[]) {
    for (const name of slotNames(config)) {
      this.slots[name] = sizes.map((n) => new Float64Array(n));
    }
  }

  /** Updates `weights` in place; parameters whose gradient is null are skipped. */
  update(weights: Float64Array[], grads: (Float64Array | null)[], lr: number): void {
    const t = ++this.step;
    weights.forEach((w, p) => {
      const g = grads[p];
      if (!g) return;
      const wd = this.config.weightDecay;
      for (let i = 0; i < w.length; i++) w[i] = w[i] - w[i] * wd * lr;
      this.rule(w, g, p, t, lr);
    });
  }

  private rule(w: Float64Array, g: Float64Array, p: number, t: number, lr: number): void {
    const c = this.config;
    const s = (name: string) => this.slots[name][p];
    if (c.kind === "sgd") {
      if (c.momentum === 0) {
        for (let i = 0; i < w.length; i++) w[i] -= lr * g[i];
        return;
      }
      const v = s("momentum");
      for (let i = 0; i < w.length; i++) {
        v[i] = c.momentum * v[i] - lr * g[i];
        w[i] += c.nesterov ? c.momentum * v[i] - lr * g[i] : v[i];
      }
    } else if (c.kind === "rmsprop") {
      const v = s("velocity");
      for (let i = 0; i < w.length; i++) {
        v[i] = c.rho * v[i] + (1 - c.rho) * g[i] * g[i];
        let denominator = v[i] + c.epsilon;
        if (c.centered) {
          const a = s("average_gradient");
          a[i] = c.rho * a[i] + (1 - c.rho) * g[i];
          denominator = v[i] - a[i] * a[i] + c.epsilon;
        }
        const increment = lr * g[i] / Math.sqrt(denominator);
        if (c.momentum > 0) {
          const m = s("momentum");
          m[i] = c.momentum * m[i] + increment;
          w[i] -= m[i];
        } else {
          w[i] -= increment;
        }
      }
    } else {
      const m = s("momentum");
      const v = s("velocity");
      const alpha = lr * Math.sqrt(1 - c.beta2 ** t) / (1 - c.beta1 ** t);
      for (let i = 0; i < w.length; i++) {
        m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
        v[i] = c.beta2 * v[i] + (1 - c.beta2) * g[i] * g[i];
        let denominatorV = v[i];
        if (c.amsgrad) {
          const vh = s("velocity_hat");
          vh[i] = Math.max(vh[i], v[i]);
          denominatorV = vh[i];
        }
        w[i] -= alpha * m[i] / (Math.sqrt(denominatorV) + c.epsilon);
      }
    }
  }
}

/** Global L2 norm of the given gradients. */
export function globalNorm(grads: readonly Float64Array[]): number {
  let s = 0;
  for (const g of grads) for (const x of g) s += x * x;
  return Math.sqrt(s);
}

/** PyTorch-style clip factor min(1, maxNorm / (norm + 1e-6)). */
export function clipFactor(norm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (norm + 1e-6));
}

/** λ·Σw² over every array. */
export function l2(weights: readonly Float64Array[], lambda: number): number {
  let s = 0;
  for (const w of weights) for (const x of w) s += x * x;
  return lambda * s;
}
