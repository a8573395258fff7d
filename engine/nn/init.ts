// Keras-default initialisers, drawn from a seeded host generator.
import type { Shape } from "../tensor.ts";
import { Tensor } from "../tensor.ts";
import { globalRng, type Rng } from "../random.ts";

/** Glorot (Xavier) uniform: U(−l, l), l = √(6 / (fanIn + fanOut)) — Keras' default kernel init. */
export function glorotUniform(
  shape: Shape,
  fanIn: number,
  fanOut: number,
  rng: Rng = globalRng,
): Tensor {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return Tensor.uniform(shape, -limit, limit, rng);
}
