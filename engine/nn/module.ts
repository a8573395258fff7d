// Module: a node of the model tree that owns named parameters (trainable), buffers (state that
// is saved but not trained, e.g. BatchNorm moving statistics) and child modules. Names are
// PyTorch-style dotted paths (`layers.0.weight`), in registration order.
import type { Tensor } from "../tensor.ts";

export abstract class Module<In extends unknown[] = [Tensor], Out = Tensor> {
  /** Training mode (Dropout drops, BatchNorm uses and updates batch statistics). */
  training = true;
  readonly #parameters = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, AnyModule>();

  abstract forward(...inputs: In): Out;

  /** Registers a trainable tensor: it requires grad and outlives every `tidy` scope. */
  protected addParameter(name: string, tensor: Tensor): Tensor {
    this.#checkName(name);
    this.#parameters.set(name, tensor.requireGrad().keep());
    return tensor;
  }

  /** Registers non-trainable state (kept across scopes, never differentiated). */
  protected addBuffer(name: string, tensor: Tensor): Tensor {
    this.#checkName(name);
    this.#buffers.set(name, tensor.keep());
    return tensor;
  }

  protected addModule<M extends AnyModule>(name: string, module: M): M {
    this.#checkName(name);
    this.#children.set(name, module);
    return module;
  }

  #checkName(name: string): void {
    if (!name || name.includes(".")) {
      throw new Error(
        `${this.constructor.name}: invalid member name '${name}' (no dots, not empty)`,
      );
    }
    if (this.#parameters.has(name) || this.#buffers.has(name) || this.#children.has(name)) {
      throw new Error(`${this.constructor.name}: '${name}' is already registered`);
    }
  }

  /** Direct children with their names. */
  namedChildren(): [string, AnyModule][] {
    return [...this.#children];
  }

  /** Every trainable tensor in the tree, depth first, with its dotted name. */
  namedParameters(prefix = ""): [string, Tensor][] {
    return this.#collect(prefix, (m) => m.#parameters);
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Every non-trainable state tensor in the tree, with its dotted name. */
  namedBuffers(prefix = ""): [string, Tensor][] {
    return this.#collect(prefix, (m) => m.#buffers);
  }

  buffers(): Tensor[] {
    return this.namedBuffers().map(([, t]) => t);
  }

  /** A tensor reachable twice (a shared submodule, tied weights) is listed once, first name. */
  #collect(
    prefix: string,
    own: (m: AnyModule) => Map<string, Tensor>,
    seen = new Set<Tensor>(),
  ): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [name, t] of own(this)) {
      if (!seen.has(t)) out.push([prefix + name, t]);
      seen.add(t);
    }
    for (const [name, child] of this.#children) {
      out.push(...child.#collect(`${prefix}${name}.`, own, seen));
    }
    return out;
  }

  /** Number of trainable scalars (Keras "Trainable params"). */
  trainableCount(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  /** Number of non-trainable scalars (Keras "Non-trainable params", e.g. moving statistics). */
  nonTrainableCount(): number {
    return this.buffers().reduce((n, t) => n + t.size, 0);
  }

  /** Sets training mode on the whole tree. */
  train(on = true): this {
    this.training = on;
    for (const child of this.#children.values()) child.train(on);
    return this;
  }

  /** Inference mode on the whole tree. */
  eval(): this {
    return this.train(false);
  }

  /** Drops every parameter's accumulated gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Frees every parameter and buffer of the tree. */
  dispose(): void {
    for (const t of [...this.parameters(), ...this.buffers()]) t.dispose();
  }
}

/** Any module, whatever its forward signature. */
export type AnyModule = Module<unknown[], unknown>;

/**
 * A module whose forward wires child layers together — Keras' functional model: Sequential, a
 * residual block, a U-Net. It is an ordinary module to configs and checkpoints (its parameters are
 * its children's, under their dotted paths); summary() looks inside it and lists the layers it
 * calls, with the connections between them, instead of one row for the whole.
 */
export abstract class Graph<In extends unknown[] = [Tensor], Out = Tensor>
  extends Module<In, Out> {}
