// The tape: every differentiable op records a node on its output, carrying the backward rule of
// its own family; backward() walks the nodes in reverse topological order. Each op family keeps
// its rules in a table typed over its op names and their attributes (`Rules`), so a missing rule
// is a compile error inside that family and this file imports no op.
import type { Tensor } from "./tensor.ts";

export interface Node<A = unknown> {
  op: string;
  /** The op's tensor inputs, in call order (gradients come back in the same order). */
  inputs: Tensor[];
  /** Tensors the backward rule needs; held as private views and released after use. */
  saved: Tensor[];
  attrs: A;
  rule: BackwardRule<A>;
  freed: boolean;
}

/**
 * A backward rule: given dL/d(output) and the node, returns dL/d(input) for each input
 * (null where an input needs no gradient or is not differentiable).
 */
export type BackwardRule<A = unknown> = (
  grad: Tensor,
  node: Node<A>,
  output: Tensor,
) => (Tensor | null)[];

/** One rule per op of a family, each typed by that op's attributes. */
export type Rules<A extends object> = { [K in keyof A]: BackwardRule<A[K]> };

/** The function a family records its ops with: op names and attributes checked against `A`. */
export type Recorder<A extends object> = <K extends keyof A & string>(
  op: K,
  output: Tensor,
  inputs: Tensor[],
  saved: Tensor[],
  attrs: A[K],
) => Tensor;

let gradEnabled = true;

/** Runs `fn` without recording any node (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/** Whether an op on these inputs must be recorded. */
export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  return gradEnabled && inputs.some((t) => t?.requiresGrad);
}

/**
 * The recorder of a family: `record(op, output, inputs, saved, attrs)` marks `output` with a
 * node if any input requires a gradient. `saved` tensors are retained as private views, so a
 * scope may dispose the originals before backward runs.
 */
export function recorder<A extends object>(rules: Rules<A>): Recorder<A> {
  return (op, output, inputs, saved, attrs) => {
    if (!needsGrad(inputs)) return output;
    output.requiresGrad = true;
    output.node = {
      op,
      inputs,
      saved: saved.map((t) => t.retainView()),
      attrs,
      rule: rules[op] as BackwardRule<unknown>,
      freed: false,
    };
    return output;
  };
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i];
      if (next.requiresGrad && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order.reverse();
}

/**
 * Reverse-mode sweep from `root`. Leaf tensors (requiresGrad, no node) accumulate into `.grad`;
 * intermediate gradients and saved tensors are released as soon as they have been used.
 * `add` sums two gradients of one tensor (the caller passes the elementwise op, which keeps
 * this file free of op imports).
 */
export function backward(root: Tensor, seed: Tensor, add: (a: Tensor, b: Tensor) => Tensor): void {
  if (!root.requiresGrad) {
    throw new Error("backward: the tensor does not require grad (no parameter contributed to it)");
  }
  const sumAndDispose = (a: Tensor, b: Tensor): Tensor => {
    const sum = noGrad(() => add(a, b));
    a.dispose();
    b.dispose();
    return sum;
  };
  const order = topoOrder(root);
  const grads = new Map<Tensor, Tensor>([[root, seed]]);
  for (const t of order) {
    const g = grads.get(t);
    grads.delete(t);
    if (!g) continue;
    const node = t.node;
    if (!node) {
      // Leaf gradients belong to the leaf, not to the scope that computed them (they accumulate).
      t.grad = (t.grad ? sumAndDispose(t.grad, g) : g).keep();
      continue;
    }
    if (node.freed) {
      throw new Error(
        `backward: the graph through op '${node.op}' was already used by an earlier backward()`,
      );
    }
    const inputGrads = noGrad(() => node.rule(g, node, t));
    // Rules may hand back `g` itself or one tensor twice: give each input a handle of its own.
    const handed = new Set<Tensor>();
    for (let i = 0; i < inputGrads.length; i++) {
      const gi = inputGrads[i];
      if (!gi) continue;
      if (gi === g || handed.has(gi)) inputGrads[i] = gi.retainView();
      handed.add(inputGrads[i]!);
    }
    if (g !== seed) g.dispose();
    for (const s of node.saved) s.dispose();
    node.saved = [];
    node.freed = true;
    node.inputs.forEach((input, i) => {
      const gi = inputGrads[i];
      if (!gi) return;
      if (!input.requiresGrad) {
        gi.dispose();
        return;
      }
      const previous = grads.get(input);
      grads.set(input, previous ? sumAndDispose(previous, gi) : gi);
    });
  }
}
