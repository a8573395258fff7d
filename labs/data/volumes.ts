// TP4 Exercise 3's volumetric task (the handout gives none; the students trained nothing): tell
// a ball from an upright cylinder of the same radius and the same volume. The cylinder runs along
// the depth axis with height 4R/3, so πR²·(4R/3) = (4/3)πR³: both shapes hold the same number of
// voxels (up to rasterisation), and every depth slice (the D axis fixed, an H×W image) of either
// is a disc of radius ≤ R. Neither the voxel count, the mean intensity nor any one depth slice
// decides the class: the model has to compare slices along the depth — the 3-D context.
// Volumes are D×H×W×1 (the Conv3D model's layout), shape = 1 and background = 0 plus N(0, σ)
// noise, clipped to [0, 1]. Radius uniform in [radiusMin, radiusMax] (real-valued); the centre is
// uniform within ±jitter voxels of the volume centre on each axis. Labels: 0 ball, 1 cylinder, in
// a seeded random order (balanced up to one).
import { Rng } from "../../engine/random.ts";

export const SHAPE_NAMES = ["ball", "cylinder"] as const;

export interface VolumeOptions {
  /** Edge of the cube (default 32, the handout's 32×32×32×1). */
  size?: number;
  /** Default 5 and 9 voxels at size 32 (scaled with the size). */
  radiusMin?: number;
  radiusMax?: number;
  /** Largest centre offset per axis from the middle (default 4 voxels at size 32). */
  jitter?: number;
  /** Noise standard deviation (default 0.2). */
  noise?: number;
}

export interface ShapeVolume {
  label: 0 | 1;
  radius: number;
  /** Centre in voxel coordinates (depth, height, width). */
  centre: [number, number, number];
  /** Voxels inside the shape. */
  voxels: number;
}

export interface Volumes {
  count: number;
  size: number;
  /** [count, size, size, size, 1] row-major (depth, height, width). */
  x: Float32Array;
  /** [count, 1]: 1 for a cylinder, 0 for a ball. */
  y: Float32Array;
  shapes: ShapeVolume[];
}

/** Whether voxel (d, h, w) lies inside the shape (centres of voxels at integer coordinates). */
export function insideShape(
  label: 0 | 1,
  radius: number,
  [cd, ch, cw]: readonly number[],
  d: number,
  h: number,
  w: number,
): boolean {
  const planar = (h - ch) ** 2 + (w - cw) ** 2;
  if (label === 0) return planar + (d - cd) ** 2 <= radius * radius;
  return planar <= radius * radius && Math.abs(d - cd) <= (2 * radius) / 3;
}

/** `count` volumes; the same (seed, count, options) gives the same arrays. */
export function shapeVolumes(seed: number, count: number, options: VolumeOptions = {}): Volumes {
  const size = options.size ?? 32;
  const k = size / 32;
  const {
    radiusMin = 5 * k,
    radiusMax = 9 * k,
    jitter = 4 * k,
    noise = 0.2,
  } = options;
  if (!Number.isInteger(count) || count < 0) {
    throw new Error(`shapeVolumes: count ${count}, expected an integer ≥ 0`);
  }
  if (!Number.isInteger(size) || size < 8) {
    throw new Error(`shapeVolumes: size ${size}, expected an integer ≥ 8`);
  }
  if (!(radiusMin > 0 && radiusMax >= radiusMin && radiusMax + jitter < size / 2)) {
    throw new Error(
      `shapeVolumes: radius [${radiusMin}, ${radiusMax}] with jitter ${jitter} does not fit a ` +
        `${size}³ volume (radiusMax + jitter must be < ${size / 2})`,
    );
  }
  const rng = new Rng(seed);
  const labels = rng.shuffle(Array.from({ length: count }, (_, i) => (i % 2) as 0 | 1));
  const voxelsPerVolume = size ** 3;
  const x = new Float32Array(count * voxelsPerVolume);
  const y = new Float32Array(count);
  const shapes: ShapeVolume[] = [];
  const middle = (size - 1) / 2;
  for (let n = 0; n < count; n++) {
    const label = labels[n];
    const radius = rng.uniform(radiusMin, radiusMax);
    const centre: [number, number, number] = [0, 1, 2].map(() =>
      middle + rng.uniform(-jitter, jitter)
    ) as [number, number, number];
    const volume = x.subarray(n * voxelsPerVolume, (n + 1) * voxelsPerVolume);
    let voxels = 0;
    let i = 0;
    for (let d = 0; d < size; d++) {
      for (let h = 0; h < size; h++) {
        for (let w = 0; w < size; w++, i++) {
          const inside = insideShape(label, radius, centre, d, h, w) ? 1 : 0;
          voxels += inside;
          volume[i] = Math.min(1, Math.max(0, inside + rng.normal(0, noise)));
        }
      }
    }
    y[n] = label;
    shapes.push({ label, radius, centre, voxels });
  }
  return { count, size, x, y, shapes };
}
