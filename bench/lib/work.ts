// The work each benchmarked op does: FLOPs and the bytes it must move at least (every input read
// once, every output written once, f32 everywhere). Throughput and roofline figures divide these
// by the measured time, so they are the numbers to get right.
import { matmulFlops } from "../../engine/ops/matmul.ts";

export interface Work {
  flops?: number;
  bytes?: number;
}

const F32 = 4;

/** C = op(A)·op(B) (+ bias), `batch` times: reads M×K and K×N (and N), writes M×N. */
export function matmulWork(
  m: number,
  n: number,
  k: number,
  { bias = false, batch = 1 } = {},
): Work {
  return {
    flops: matmulFlops(m, n, k, batch) + (bias ? batch * m * n : 0),
    bytes: F32 * batch * (m * k + k * n + m * n) + (bias ? F32 * n : 0),
  };
}

/**
 * An elementwise op over `elements` outputs reading `inputElements` values in all (a broadcast
 * operand counts once at its own size), doing `flopsPerElement` arithmetic per output.
 * Transcendentals (exp, tanh…) have no agreed FLOP count: leave them at 0 and read GB/s.
 */
export function elementwiseWork(
  elements: number,
  inputElements: number,
  flopsPerElement = 0,
): Work {
  return {
    flops: flopsPerElement ? flopsPerElement * elements : undefined,
    bytes: F32 * (inputElements + elements),
  };
}

/** A reduction of `elements` values to `outputs` values: one add per input value. */
export function reduceWork(elements: number, outputs: number): Work {
  return { flops: elements, bytes: F32 * (elements + outputs) };
}

/** Softmax over rows: reads and writes every value (max, exp, sum and divide per value). */
export function softmaxWork(elements: number): Work {
  return { bytes: F32 * 2 * elements };
}

/** Softmax cross-entropy forward + backward on [rows, classes] logits and integer labels. */
export function softmaxCrossEntropyWork(rows: number, classes: number): Work {
  // Forward reads the logits and the labels; backward reads both again and writes the gradient.
  return { bytes: F32 * (3 * rows * classes + 2 * rows) };
}

/** One Adam step over `elements` parameters: reads w, g, m, v and writes w, m, v. */
export function adamWork(elements: number): Work {
  return { bytes: F32 * 7 * elements };
}

/** A buffer-to-buffer copy of `bytes` bytes: read once, written once. */
export function copyWork(bytes: number): Work {
  return { bytes: 2 * bytes };
}

/** `threads` invocations each running `iterations` rounds of `chains` independent vec4 FMAs. */
export function fmaWork(threads: number, iterations: number, chains: number): Work {
  // An FMA is two FLOPs on each of the four lanes; each thread writes one f32 at the end.
  return { flops: threads * iterations * chains * 4 * 2, bytes: F32 * threads };
}

/** A training step of a stack of Dense layers [in, hidden…, out] on a batch (matmuls only). */
export function denseStepWork(batch: number, sizes: number[], inputNeedsGrad = false): Work {
  let flops = 0;
  for (let i = 0; i + 1 < sizes.length; i++) {
    const forward = matmulFlops(batch, sizes[i + 1], sizes[i]);
    // Backward: dW always, dX for every layer but the first unless the input wants a gradient.
    flops += forward * (i > 0 || inputNeedsGrad ? 3 : 2);
  }
  return { flops };
}
