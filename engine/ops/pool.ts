// Max and average pooling on channels-last input, 2-D (NHWC) and 3-D (NDHWC), with Keras
// defaults: strides = poolSize, padding "valid". "same" follows TensorFlow: ceil(in / stride)
// outputs, total pad max((out − 1)·stride + pool − in, 0) with the odd cell at the end of the axis
// (bottom/right/back); padded cells are never read (max ignores them, avg divides by the cells
// inside the input). One pair of kernels serves both ranks: a 2-D pooling is a 3-D one of depth 1.
//
// Max-pool's forward saves the position of each window's first maximum (i32, one per output)
// when a gradient is wanted: backward then reads one index per covering window instead of
// re-reading up to ⌈pool/stride⌉^rank whole windows per input element, ties are settled once (the
// backward cannot disagree with the forward), and x need not be kept. The index costs as much
// memory as the output and the tape frees it right after backward.
import { needsGrad, recorder, type Rules } from "../autograd.ts";
import { runtime } from "../runtime.ts";
import { grid1d } from "../shaders/common.ts";
import { poolBackwardKernel, poolForwardKernel, type PoolKind } from "../shaders/pool.ts";
import { formatShape, type Shape, sizeOf, Tensor } from "../tensor.ts";

export type PoolPadding = "valid" | "same";

/**
 * Keras pooling options, one value per spatial axis — (height, width) or (depth, height, width)
 * — or one number for every axis.
 */
export interface PoolOptions {
  /** Window per spatial axis. Default 2 (Keras). */
  poolSize?: number | readonly number[];
  /** Step between windows per spatial axis. Default: poolSize. */
  strides?: number | readonly number[];
  /** Default "valid": only whole windows inside the input. */
  padding?: PoolPadding;
}

/** Everything a pooling kernel needs to know about its windows; what each node records. */
export interface PoolGeometry {
  batch: number;
  channels: number;
  /** Spatial extents, outermost first: [height, width] or [depth, height, width]. */
  inSize: number[];
  outSize: number[];
  pool: number[];
  strides: number[];
  /** Padding before the first cell of each spatial axis ("same" only). */
  padBefore: number[];
}

/** Spatial axes of the supported layouts, outermost first. */
const LAYOUTS = {
  2: { name: "NHWC", axes: ["height", "width"], count: "a pair" },
  3: { name: "NDHWC", axes: ["depth", "height", "width"], count: "a triple" },
} as const;
type SpatialRank = keyof typeof LAYOUTS;

type PoolOp = "max_pool2d" | "avg_pool2d" | "max_pool3d" | "avg_pool3d";
type PoolAttrs = Record<PoolOp, PoolGeometry>;

function perAxis(
  op: string,
  name: string,
  value: number | readonly number[],
  rank: SpatialRank,
): number[] {
  const list = typeof value === "number" ? Array(rank).fill(value) : [...value];
  if (list.length !== rank || !list.every((v) => Number.isInteger(v) && v >= 1)) {
    throw new Error(
      `${op}: ${name} ${JSON.stringify(value)} is not an integer ≥ 1 or ${
        LAYOUTS[rank].count
      } of them`,
    );
  }
  return list;
}

/** Output size and padding before the first cell along one axis. */
function axis(size: number, pool: number, stride: number, padding: PoolPadding) {
  if (padding === "valid") return { out: Math.floor((size - pool) / stride) + 1, before: 0 };
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + pool - size, 0);
  return { out, before: Math.floor(total / 2) };
}

/**
 * The windows of a `rank`-D pooling of `shape` (channels-last) with Keras `options`; throws,
 * naming `op`, the shape and what was expected, on anything the kernels cannot run.
 */
export function poolGeometry(
  op: string,
  shape: Shape,
  options: PoolOptions = {},
  rank: SpatialRank = 2,
): PoolGeometry {
  const layout = LAYOUTS[rank];
  if (shape.length !== rank + 2) {
    throw new Error(
      `${op}: input ${formatShape(shape)} has rank ${shape.length}, expected a rank-${
        rank + 2
      } ${layout.name} tensor [batch, ${layout.axes.join(", ")}, channels]`,
    );
  }
  const pool = perAxis(op, "poolSize", options.poolSize ?? 2, rank);
  const strides = perAxis(op, "strides", options.strides ?? pool, rank);
  const padding = options.padding ?? "valid";
  if (padding !== "valid" && padding !== "same") {
    throw new Error(`${op}: padding '${padding}' is not 'valid' or 'same'`);
  }
  const inSize = shape.slice(1, -1);
  if (padding === "valid" && inSize.some((size, d) => size < pool[d])) {
    const window = pool.join("×");
    throw new Error(
      `${op}: input ${formatShape(shape)} is ${inSize.join("×")} (${layout.axes.join("×")}), ` +
        `smaller than poolSize ${window}: padding 'valid' expects at least ${window}`,
    );
  }
  const axes = inSize.map((size, d) => axis(size, pool[d], strides[d], padding));
  return {
    batch: shape[0],
    channels: shape[shape.length - 1],
    inSize,
    outSize: axes.map((a) => a.out),
    pool,
    strides,
    padBefore: axes.map((a) => a.before),
  };
}

/**
 * Window cells visited, one compare (max) or add (avg) each: by the forward over its outputs
 * and, as a gather over the same (window, cell) pairs, by the backward. Full windows: an upper
 * bound with "same" padding.
 */
export function poolFlops(g: PoolGeometry): number {
  return g.batch * sizeOf(g.outSize) * g.channels * sizeOf(g.pool);
}

/** A 2-D axis list as 3-D, depth first (`fill` for the missing depth). */
function asVolume(list: readonly number[], fill: number): number[] {
  return list.length === 3 ? [...list] : [fill, ...list];
}

/** The kernels' uniform values over `lanes` lanes, and the grid that launches them. */
function launchGeometry(g: PoolGeometry, vec4: boolean, lanes: number) {
  const groups = grid1d(lanes);
  return {
    groups,
    params: {
      lanes,
      gx: groups[0],
      channels: vec4 ? g.channels / 4 : g.channels,
      in_size: asVolume(g.inSize, 1),
      out_size: asVolume(g.outSize, 1),
      pool: asVolume(g.pool, 1),
      stride: asVolume(g.strides, 1),
      pad: asVolume(g.padBefore, 0),
    },
  };
}

/** Four channels per lane when they divide evenly. */
function vec4Lanes(g: PoolGeometry): boolean {
  return g.channels % 4 === 0;
}

function pool(
  kind: PoolKind,
  op: string,
  name: PoolOp,
  rank: SpatialRank,
  x: Tensor,
  options: PoolOptions,
): Tensor {
  x.assertAlive(op);
  const g = poolGeometry(op, x.shape, options, rank);
  if (x.dtype !== "f32") {
    throw new Error(`${op}: input ${formatShape(x.shape)} has dtype ${x.dtype}, expected f32`);
  }
  const y = Tensor.empty([g.batch, ...g.outSize, g.channels]);
  const argmax = kind === "max" && needsGrad([x]) ? Tensor.empty(y.shape, "i32") : undefined;
  if (y.size > 0) {
    const vec4 = vec4Lanes(g);
    runtime().launch(poolForwardKernel(kind, vec4, argmax !== undefined), {
      buffers: argmax ? [x.storage, y.storage, argmax.storage] : [x.storage, y.storage],
      ...launchGeometry(g, vec4, vec4 ? y.size / 4 : y.size),
      flops: poolFlops(g),
      outputs: [y],
      op: name,
    });
  }
  const out = record(name, y, [x], argmax ? [argmax] : [], g);
  argmax?.dispose(); // the node holds its own view
  return out;
}

/**
 * Keras `MaxPooling2D` on NHWC `x`: the maximum of each window. The gradient goes to one
 * element per window, the first maximum in row-major window order (as TensorFlow). NaN inputs
 * give unspecified results.
 */
export function maxPool2d(x: Tensor, options: PoolOptions = {}): Tensor {
  return pool("max", "maxPool2d", "max_pool2d", 2, x, options);
}

/**
 * Keras `AveragePooling2D` on NHWC `x`: the mean of each window over the cells inside the input
 * (padding is not counted, as TensorFlow).
 */
export function avgPool2d(x: Tensor, options: PoolOptions = {}): Tensor {
  return pool("avg", "avgPool2d", "avg_pool2d", 2, x, options);
}

/** Keras `MaxPooling3D` on NDHWC `x`: as `maxPool2d`, windows over (depth, height, width). */
export function maxPool3d(x: Tensor, options: PoolOptions = {}): Tensor {
  return pool("max", "maxPool3d", "max_pool3d", 3, x, options);
}

/** Keras `AveragePooling3D` on NDHWC `x`: as `avgPool2d`, windows over (depth, height, width). */
export function avgPool3d(x: Tensor, options: PoolOptions = {}): Tensor {
  return pool("avg", "avgPool3d", "avg_pool3d", 3, x, options);
}

// ---- backward ----------------------------------------------------------------------------

/** dx as a gather over the windows covering each input element; `argmax` for max-pool. */
function poolBackward(
  kind: PoolKind,
  name: PoolOp,
  g: PoolGeometry,
  grad: Tensor,
  argmax?: Tensor,
): Tensor {
  const dx = Tensor.empty([g.batch, ...g.inSize, g.channels]);
  if (dx.size === 0) return dx;
  const vec4 = vec4Lanes(g);
  runtime().launch(poolBackwardKernel(kind, vec4), {
    buffers: argmax ? [grad.storage, argmax.storage, dx.storage] : [grad.storage, dx.storage],
    ...launchGeometry(g, vec4, vec4 ? dx.size / 4 : dx.size),
    flops: poolFlops(g),
    outputs: [dx],
    op: `${name} (backward)`,
  });
  return dx;
}

const poolRules: Rules<PoolAttrs> = {
  max_pool2d: (
    grad,
    { attrs, saved },
  ) => [poolBackward("max", "max_pool2d", attrs, grad, saved[0])],
  avg_pool2d: (grad, { attrs }) => [poolBackward("avg", "avg_pool2d", attrs, grad)],
  max_pool3d: (
    grad,
    { attrs, saved },
  ) => [poolBackward("max", "max_pool3d", attrs, grad, saved[0])],
  avg_pool3d: (grad, { attrs }) => [poolBackward("avg", "avg_pool3d", attrs, grad)],
};
const record = recorder(poolRules);
