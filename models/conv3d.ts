// TP4 Exercise 3 (spec labs/TP1-TP4.md §5.4): the handout's simple_conv3d_block — Conv3D 16
// (3×3×3, same, ReLU) → MaxPool3D 2 → Conv3D 32 (3×3×3, same, ReLU) → MaxPool3D 2 → Flatten →
// Dense 1 sigmoid. On 32×32×32×1 volumes: 448 + 13,856 + 16,385 = 30,689 parameters.
import { Conv3D } from "../engine/nn/conv.ts";
import { Flatten } from "../engine/nn/flatten.ts";
import { Linear } from "../engine/nn/linear.ts";
import { MaxPool3D } from "../engine/nn/pool.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { globalRng, type Rng } from "../engine/random.ts";

export interface Conv3dModelOptions {
  /** [depth, height, width, channels] of one volume (default [32, 32, 32, 1]). */
  inputShape?: readonly [number, number, number, number];
  /** Filters of the first conv; the second has twice as many (default 16, `filters_start`). */
  filters?: number;
  rng?: Rng;
}

/** x [N, D, H, W, C] → one sigmoid probability per volume [N, 1]. */
export function conv3dModel(options: Conv3dModelOptions = {}): Sequential {
  const { inputShape = [32, 32, 32, 1], filters = 16, rng = globalRng } = options;
  const [depth, height, width, channels] = inputShape;
  const quarter = (n: number) => Math.floor(Math.floor(n / 2) / 2);
  const flat = quarter(depth) * quarter(height) * quarter(width) * 2 * filters;
  const same = { padding: "same" as const, activation: "relu" as const, rng };
  return new Sequential(
    new Conv3D(channels, filters, 3, same),
    new MaxPool3D(2),
    new Conv3D(filters, 2 * filters, 3, same),
    new MaxPool3D(2),
    new Flatten(),
    new Linear(flat, 1, { activation: "sigmoid", rng }),
  );
}
