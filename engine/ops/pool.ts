// 2-D max and average pooling on NHWC input (Keras channels-last), with Keras defaults: strides
// = poolSize, padding "valid". "same" follows TensorFlow: ceil(in / stride) outputs, total pad
// max((out − 1)·stride + pool − in, 0) with the odd cell at the bottom/right; padded cells are
// never read (max ignores them, avg divides by the cells inside the input).
//
// Max-pool's forward saves the position of each window's first maximum (i32, one per output)
// when a gradient is wanted: backward then reads one index per covering window instead of
// re-reading up to ⌈pool/stride⌉² whole windows per input element, ties are settled once (the
// backward cannot disagree with the forward), and x need not be kept. The index costs as much
// memory as the output and the tape frees it right after backward.
import { needsGrad, recorder, type Rules } from "../autograd.ts";
import { runtime } from "../runtime.ts";
import { grid1d } from "../shaders/common.ts";
import { poolBackwardKernel, poolForwardKernel, type PoolKind } from "../shaders/pool.ts";
import { formatShape, type Shape, Tensor } from "../tensor.ts";

export type PoolPadding = "valid" | "same";

export interface Pool2dOptions {
  /** Window (height, width); one number for a square window. Default 2 (Keras). */
  poolSize?: number | readonly [number, number];
  /** Step (height, width) between windows. Default: poolSize. */
  strides?: number | readonly [number, number];
  /** Default "valid": only whole windows inside the input. */
  padding?: PoolPadding;
}

/** Everything a pooling kernel needs to know about its windows; what each node records. */
export interface PoolGeometry {
  batch: number;
  inH: number;
  inW: number;
  channels: number;
  outH: number;
  outW: number;
  poolH: number;
  poolW: number;
  strideH: number;
  strideW: number;
  /** Padding before the first row / column ("same" only). */
  padTop: number;
  padLeft: number;
}

interface PoolAttrs {
  max_pool2d: PoolGeometry;
  avg_pool2d: PoolGeometry;
}

function pair(op: string, name: string, value: number | readonly number[]): [number, number] {
  const list = typeof value === "number" ? [value, value] : [...value];
  if (list.length !== 2 || !list.every((v) => Number.isInteger(v) && v >= 1)) {
    throw new Error(
      `${op}: ${name} ${JSON.stringify(value)} is not an integer ≥ 1 or a pair of them`,
    );
  }
  return [list[0], list[1]];
}

/** Output size and padding before the first cell along one axis. */
function axis(size: number, pool: number, stride: number, padding: PoolPadding) {
  if (padding === "valid") return { out: Math.floor((size - pool) / stride) + 1, before: 0 };
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + pool - size, 0);
  return { out, before: Math.floor(total / 2) };
}

/**
 * The windows of a pooling of `shape` (NHWC) with Keras `options`; throws, naming `op`, the
 * shape and what was expected, on anything the kernels cannot run.
 */
export function poolGeometry(op: string, shape: Shape, options: Pool2dOptions = {}): PoolGeometry {
  if (shape.length !== 4) {
    throw new Error(
      `${op}: input ${formatShape(shape)} has rank ${shape.length}, expected a rank-4 NHWC ` +
        "tensor [batch, height, width, channels]",
    );
  }
  const [poolH, poolW] = pair(op, "poolSize", options.poolSize ?? 2);
  const [strideH, strideW] = pair(op, "strides", options.strides ?? [poolH, poolW]);
  const padding = options.padding ?? "valid";
  if (padding !== "valid" && padding !== "same") {
    throw new Error(`${op}: padding '${padding}' is not 'valid' or 'same'`);
  }
  const [batch, inH, inW, channels] = shape;
  if (padding === "valid" && (inH < poolH || inW < poolW)) {
    throw new Error(
      `${op}: input ${formatShape(shape)} is ${inH}×${inW} (height×width), smaller than ` +
        `poolSize ${poolH}×${poolW}: padding 'valid' expects at least ${poolH}×${poolW}`,
    );
  }
  const rows = axis(inH, poolH, strideH, padding);
  const cols = axis(inW, poolW, strideW, padding);
  return {
    batch,
    inH,
    inW,
    channels,
    outH: rows.out,
    outW: cols.out,
    poolH,
    poolW,
    strideH,
    strideW,
    padTop: rows.before,
    padLeft: cols.before,
  };
}

/**
 * Window cells visited, one compare (max) or add (avg) each: by the forward over its outputs
 * and, as a gather over the same (window, cell) pairs, by the backward. Full windows: an upper
 * bound with "same" padding.
 */
export function poolFlops(g: PoolGeometry): number {
  return g.batch * g.outH * g.outW * g.channels * g.poolH * g.poolW;
}

function outShapeOf(g: PoolGeometry): number[] {
  return [g.batch, g.outH, g.outW, g.channels];
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
      in_h: g.inH,
      in_w: g.inW,
      out_h: g.outH,
      out_w: g.outW,
      pool: [g.poolH, g.poolW],
      stride: [g.strideH, g.strideW],
      pad: [g.padTop, g.padLeft],
    },
  };
}

/** Four channels per lane when they divide evenly. */
function vec4Lanes(g: PoolGeometry): boolean {
  return g.channels % 4 === 0;
}

function pool2d(
  kind: PoolKind,
  op: "maxPool2d" | "avgPool2d",
  x: Tensor,
  options: Pool2dOptions,
): Tensor {
  x.assertAlive(op);
  const g = poolGeometry(op, x.shape, options);
  if (x.dtype !== "f32") {
    throw new Error(`${op}: input ${formatShape(x.shape)} has dtype ${x.dtype}, expected f32`);
  }
  const name = kind === "max" ? "max_pool2d" : "avg_pool2d";
  const y = Tensor.empty(outShapeOf(g));
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
export function maxPool2d(x: Tensor, options: Pool2dOptions = {}): Tensor {
  return pool2d("max", "maxPool2d", x, options);
}

/**
 * Keras `AveragePooling2D` on NHWC `x`: the mean of each window over the cells inside the input
 * (padding is not counted, as TensorFlow).
 */
export function avgPool2d(x: Tensor, options: Pool2dOptions = {}): Tensor {
  return pool2d("avg", "avgPool2d", x, options);
}

// ---- backward ----------------------------------------------------------------------------

/** dx as a gather over the windows covering each input element; `argmax` for max-pool. */
function poolBackward(kind: PoolKind, g: PoolGeometry, grad: Tensor, argmax?: Tensor): Tensor {
  const dx = Tensor.empty([g.batch, g.inH, g.inW, g.channels]);
  if (dx.size === 0) return dx;
  const vec4 = vec4Lanes(g);
  runtime().launch(poolBackwardKernel(kind, vec4), {
    buffers: argmax ? [grad.storage, argmax.storage, dx.storage] : [grad.storage, dx.storage],
    ...launchGeometry(g, vec4, vec4 ? dx.size / 4 : dx.size),
    flops: poolFlops(g),
    outputs: [dx],
    op: `${kind}_pool2d (backward)`,
  });
  return dx;
}

const poolRules: Rules<PoolAttrs> = {
  max_pool2d: (grad, { attrs, saved }) => [poolBackward("max", attrs, grad, saved[0])],
  avg_pool2d: (grad, { attrs }) => [poolBackward("avg", attrs, grad)],
};
const record = recorder(poolRules);
