// TP4's simulated segmentation task (spec labs/TP1-TP4.md §5.1), generated from a seed. The
// canonical set is BJ's `create_simulated_data(n, 128)`: one disc per image, centre (x, y)
// uniform integers in [20, 107], radius a uniform integer in [10, 24], mask 1 where
// (r − cy)² + (c − cx)² < radius² (strict), image = mask + N(0, 0.1) clipped to [0, 1]; 500
// training and 100 validation images generated independently. KR's variant has 1–3 discs
// (centres in [20, 99], radius in [5, 14], inclusive ≤) drawn at 0.9 on a N(0.5, 0.1) background,
// unclipped. At other sizes every length scales by size/128 (for quick runs).
import { Rng } from "../../engine/random.ts";

export type DiscVariant = "single" | "multi";

export interface DiscOptions {
  /** Height and width (default 128). */
  size?: number;
  /** "single": BJ's one clipped noisy disc (default); "multi": KR's 1–3 discs. */
  variant?: DiscVariant;
}

export interface Disc {
  cx: number;
  cy: number;
  radius: number;
}

export interface DiscImages {
  count: number;
  size: number;
  /** [count, size, size, 1] row-major: images in [0, 1] (single) or unclipped (multi). */
  x: Float32Array;
  /** [count, size, size, 1]: the binary masks. */
  y: Float32Array;
  /** The discs of each image, as drawn. */
  discs: Disc[][];
}

/** Integer ranges of BJ's and KR's generators at `size` (the spec's numbers at 128). */
export function discRanges(size: number, variant: DiscVariant) {
  const k = size / 128;
  const scaled = (n: number) => Math.max(1, Math.round(n * k));
  return variant === "single"
    ? { centre: [scaled(20), size - 1 - scaled(20)], radius: [scaled(10), scaled(24)] }
    : { centre: [scaled(20), size - 1 - scaled(28)], radius: [scaled(5), scaled(14)] };
}

/** `count` images with their masks; the same (seed, count, options) gives the same arrays. */
export function discImages(seed: number, count: number, options: DiscOptions = {}): DiscImages {
  const { size = 128, variant = "single" } = options;
  if (!Number.isInteger(count) || count < 0) {
    throw new Error(`discImages: count ${count}, expected an integer ≥ 0`);
  }
  if (!Number.isInteger(size) || size < 16) {
    throw new Error(`discImages: size ${size}, expected an integer ≥ 16`);
  }
  if (variant !== "single" && variant !== "multi") {
    throw new Error(`discImages: variant '${variant}', expected "single" or "multi"`);
  }
  const rng = new Rng(seed);
  const { centre, radius } = discRanges(size, variant);
  // Inclusive integer range, as numpy's randint(low, high + 1).
  const between = ([low, high]: number[]) => low + rng.int(high - low + 1);
  const pixels = size * size;
  const x = new Float32Array(count * pixels);
  const y = new Float32Array(count * pixels);
  const discs: Disc[][] = [];
  for (let n = 0; n < count; n++) {
    const drawn: Disc[] = [];
    const howMany = variant === "single" ? 1 : 1 + rng.int(3);
    for (let d = 0; d < howMany; d++) {
      drawn.push({ cx: between(centre), cy: between(centre), radius: between(radius) });
    }
    discs.push(drawn);
    const mask = y.subarray(n * pixels, (n + 1) * pixels);
    for (const { cx, cy, radius: r } of drawn) {
      for (let row = Math.max(0, cy - r); row <= Math.min(size - 1, cy + r); row++) {
        for (let col = Math.max(0, cx - r); col <= Math.min(size - 1, cx + r); col++) {
          const d2 = (row - cy) ** 2 + (col - cx) ** 2;
          if (variant === "single" ? d2 < r * r : d2 <= r * r) mask[row * size + col] = 1;
        }
      }
    }
    const image = x.subarray(n * pixels, (n + 1) * pixels);
    for (let i = 0; i < pixels; i++) {
      image[i] = variant === "single"
        ? Math.min(1, Math.max(0, mask[i] + rng.normal(0, 0.1)))
        : mask[i]
        ? 0.9
        : rng.normal(0.5, 0.1);
    }
  }
  return { count, size, x, y, discs };
}
