// Convolutions on channels-last tensors with Keras semantics: conv2d (NHWC, kernel
// [kh, kw, in, out]), conv3d (NDHWC, [kd, kh, kw, in, out]) and conv2dTranspose (kernel
// [kh, kw, out, in], as Keras stores it). Strides, dilation, "valid" and TensorFlow's "same"
// padding (the odd cell of padding at the bottom/right), an optional bias and the matmul's fused
// activation epilogue. Each pass — forward, dX, dW — is one implicit-GEMM dispatch (a dW split
// over pixels adds a sum of its partials); the transposed conv runs the dX kernel as its forward
// and the forward kernel as its dX.
import { type BackwardRule, recorder, type Rules } from "../autograd.ts";
import { runtime } from "../runtime.ts";
import {
  CONV_TILES,
  convGemm,
  type ConvGeometry,
  convKernel,
  convParams,
  type ConvPass,
  type Dims3,
} from "../shaders/conv.ts";
import { type MatmulActivation, pickTile } from "../shaders/matmul.ts";
import { formatShape, sizeOf, Tensor } from "../tensor.ts";
import { cpuThreads } from "../tuning.ts";
import { activationGrad, ACTIVATIONS } from "./matmul.ts";
import { sum } from "./reduce.ts";

export type ConvPadding = "valid" | "same";

export interface ConvOptions {
  /** Per spatial dimension (one number for all); default 1. */
  strides?: number | readonly number[];
  /** Default "valid". "same": ceil(in / stride) outputs, TensorFlow's padding rule. */
  padding?: ConvPadding;
  /** Per spatial dimension; default 1. Dilation and strides > 1 may not be combined (Keras). */
  dilation?: number | readonly number[];
  /** [out], added before the activation. */
  bias?: Tensor;
  activation?: MatmulActivation;
  /** leaky_relu negative slope (default 0.3, as Keras). */
  alpha?: number;
}

export interface ConvTransposeOptions extends Omit<ConvOptions, "dilation"> {
  /** Extra rows/columns at the end of the output, each < its stride (Keras output_padding). */
  outputPadding?: number | readonly number[];
}

/** What fixes a conv's geometry (no bias or activation). */
export type PassOptions = Omit<ConvOptions, "bias" | "activation" | "alpha">;

interface ConvAttrs {
  conv: ConvRecord;
  conv_transpose: ConvRecord;
}

/** What a node keeps: the underlying conv's geometry (for conv_transpose: the conv it undoes). */
interface ConvRecord {
  geometry: ConvGeometry;
  rank: 2 | 3;
  activation: MatmulActivation | null;
  alpha: number;
}

const DEFAULT_LEAKY_ALPHA = 0.3;

/**
 * The useful FLOPs of each pass (2 per multiply-add of the forward); dX and dW do the same
 * products in another order. Benchmarks divide by this.
 */
export function convFlops(g: ConvGeometry): number {
  const taps = g.kernel[0] * g.kernel[1] * g.kernel[2];
  const outPixels = g.batch * g.outDims[0] * g.outDims[1] * g.outDims[2];
  return 2 * outPixels * g.cout * taps * g.cin;
}

// ---- geometry and checks ------------------------------------------------------------------

function perDim(op: string, name: string, value: number | readonly number[], rank: number) {
  const list = typeof value === "number" ? new Array<number>(rank).fill(value) : [...value];
  if (list.length !== rank || !list.every((v) => Number.isInteger(v) && v >= 1)) {
    throw new Error(
      `${op}: ${name} ${JSON.stringify(value)} must be an integer ≥ 1 or ${rank} of them`,
    );
  }
  return list;
}

/** Pads rank-2 lists to [depth, height, width] with depth 1 / 0. */
function as3(list: number[], fill: number): Dims3 {
  return (list.length === 3 ? list : [fill, ...list]) as Dims3;
}

function checkTensors(
  op: string,
  x: Tensor,
  kernel: Tensor,
  rank: 2 | 3,
  bias: Tensor | undefined,
  layout: string,
): void {
  for (const [name, t] of [["input", x], ["kernel", kernel], ["bias", bias]] as const) {
    if (!t) continue;
    t.assertAlive(op);
    if (t.dtype !== "f32") {
      throw new Error(`${op}: ${name} ${formatShape(t.shape)} is ${t.dtype}; expected f32`);
    }
  }
  const spatial = rank === 2 ? "[N, H, W, C]" : "[N, D, H, W, C]";
  if (x.rank !== rank + 2) {
    throw new Error(`${op}: input has shape ${formatShape(x.shape)}; expected ${spatial}`);
  }
  if (kernel.rank !== rank + 2) {
    throw new Error(`${op}: kernel has shape ${formatShape(kernel.shape)}; expected ${layout}`);
  }
}

/** Output size and padding before along one axis of a forward conv (TensorFlow's rules). */
function forwardAxis(
  op: string,
  size: number,
  k: number,
  s: number,
  d: number,
  padding: ConvPadding,
): [number, number] {
  const span = (k - 1) * d + 1;
  if (padding === "same") {
    const out = Math.ceil(size / s);
    return [out, Math.floor(Math.max((out - 1) * s + span - size, 0) / 2)];
  }
  if (size < span) {
    throw new Error(
      `${op}: an input extent of ${size} is smaller than the dilated kernel (${span}); ` +
        `padding 'valid' expects at least ${span}`,
    );
  }
  return [Math.floor((size - span) / s) + 1, 0];
}

function activationOf(op: string, options: ConvOptions): [MatmulActivation | null, number] {
  const activation = options.activation ?? null;
  if (activation !== null && !ACTIVATIONS.includes(activation)) {
    throw new Error(
      `${op}: unknown activation '${activation}' (expected ${ACTIVATIONS.join(", ")})`,
    );
  }
  if (options.alpha !== undefined && activation !== "leaky_relu") {
    throw new Error(`${op}: alpha is the leaky_relu slope, but the activation is ${activation}`);
  }
  const alpha = options.alpha ?? DEFAULT_LEAKY_ALPHA;
  if (!(alpha >= 0 && Number.isFinite(alpha))) {
    throw new Error(`${op}: leaky_relu alpha is ${alpha}; expected a finite value ≥ 0`);
  }
  return [activation, alpha];
}

function checkBias(op: string, bias: Tensor | undefined, channels: number): void {
  if (bias && (bias.rank !== 1 || bias.shape[0] !== channels)) {
    throw new Error(
      `${op}: bias has shape ${formatShape(bias.shape)}; expected [${channels}] (the filters)`,
    );
  }
}

// ---- dispatch -----------------------------------------------------------------------------

interface PassArgs {
  pass: ConvPass;
  rank: 2 | 3;
  geometry: ConvGeometry;
  a: Tensor;
  b: Tensor;
  outShape: number[];
  bias?: Tensor;
  activation?: MatmulActivation | null;
  alpha?: number;
  savePre?: boolean;
  op: string;
}

/**
 * One pass as one dispatch (a split weight pass: two, the second summing the splits); its
 * result, and the pre-activation when asked for.
 */
function runPass(p: PassArgs): { out: Tensor; pre: Tensor | null } {
  const g = p.geometry;
  const { m, n, k, slices } = convGemm(p.pass, g);
  // A weight pass's lane sums its pixels in one loop, which must stay within the adapter's loop
  // budget: past it, only split tiles, with enough splits.
  const lanePixels = Math.floor(runtime().loopBudget / 2);
  const options = CONV_TILES.get().filter((o) =>
    p.pass === "weight" ? o.tile.splitK || k <= lanePixels : !o.tile.splitK
  );
  const tile = pickTile(options, m, n, k * slices);
  const blocks = [Math.ceil(n / (tile.wx * tile.tn)), Math.ceil(m / (tile.wy * tile.tm))];
  const splitGroups = tile.splitK
    ? Math.max(
      splitGroupCount(blocks[0] * blocks[1] * slices, k, tile.splitK),
      Math.ceil(k / (tile.splitK * lanePixels)),
    )
    : 1;
  const groups: [number, number, number] = [blocks[0], blocks[1], slices * splitGroups];
  const limit = runtime().device.limits.maxComputeWorkgroupsPerDimension;
  if (groups[1] > limit) {
    throw new Error(
      `${p.op}: ${m} GEMM rows need ${groups[1]} workgroups, over the adapter's ${limit}; ` +
        "use a smaller batch",
    );
  }
  if (sizeOf(p.outShape) === 0) {
    return { out: Tensor.empty(p.outShape), pre: p.savePre ? Tensor.empty(p.outShape) : null };
  }
  // No rows, or nothing to sum (an empty batch under dW): the result is zeros (+ bias).
  if (m === 0 || k === 0) return { out: Tensor.zeros(p.outShape), pre: null };
  const splits = splitGroups * (tile.splitK ?? 0);
  // A split weight pass writes one partial kernel gradient per split, summed below.
  const target = Tensor.empty(splits ? [splits, ...p.outShape] : p.outShape);
  const pre = p.savePre ? Tensor.empty(p.outShape) : null;
  const buffers = [p.a.storage, p.b.storage];
  if (p.bias) buffers.push(p.bias.storage);
  buffers.push(target.storage);
  if (pre) buffers.push(pre.storage);
  runtime().launch(
    convKernel({
      pass: p.pass,
      rank: p.rank,
      vecIn: g.cin % 4 === 0,
      vecOut: g.cout % 4 === 0,
      bias: !!p.bias,
      activation: p.activation ?? null,
      savePre: !!pre,
      tile,
    }),
    {
      buffers,
      params: convParams(p.pass, g, p.alpha ?? 0, splits),
      groups,
      flops: convFlops(g),
      outputs: [target],
      op: p.op,
    },
  );
  if (!splits) return { out: target, pre };
  const total = sum(target, 0);
  target.dispose();
  return { out: total, pre };
}

/**
 * Split groups for a weight pass of `blocks` workgroups per group: enough workgroups for twice
 * the adapter's threads (a CPU adapter runs one workgroup per core at a time), each split still
 * summing at least 64 pixels so the partials stay a small share of the work.
 */
function splitGroupCount(blocks: number, depth: number, splitK: number): number {
  const wanted = Math.ceil((2 * cpuThreads()) / blocks);
  return Math.max(1, Math.min(wanted, Math.floor(depth / (64 * splitK))));
}

// ---- the ops ------------------------------------------------------------------------------

/**
 * The geometry of a forward conv of an input of shape `xShape` with a kernel of shape
 * `kernelShape`; throws naming the op and the shapes when they do not fit.
 */
function forwardGeometry(
  op: string,
  rank: 2 | 3,
  xShape: readonly number[],
  kernelShape: readonly number[],
  options: PassOptions,
): ConvGeometry {
  const layout = rank === 2 ? "[kh, kw, in, out]" : "[kd, kh, kw, in, out]";
  const cin = xShape[rank + 1];
  if (kernelShape[rank] !== cin) {
    throw new Error(
      `${op}: kernel ${formatShape(kernelShape)} takes ${kernelShape[rank]} input channels ` +
        `but the input ${formatShape(xShape)} has ${cin} (kernel layout ${layout})`,
    );
  }
  const strides = perDim(op, "strides", options.strides ?? 1, rank);
  const dilation = perDim(op, "dilation", options.dilation ?? 1, rank);
  if (strides.some((s) => s > 1) && dilation.some((d) => d > 1)) {
    throw new Error(`${op}: strides > 1 and dilation > 1 cannot be combined (as in Keras)`);
  }
  const padding = options.padding ?? "valid";
  if (padding !== "valid" && padding !== "same") {
    throw new Error(`${op}: padding '${padding}' is not 'valid' or 'same'`);
  }
  const spatialIn = xShape.slice(1, rank + 1);
  const ks = kernelShape.slice(0, rank);
  const axesOut = spatialIn.map((size, a) =>
    forwardAxis(op, size, ks[a], strides[a], dilation[a], padding)
  );
  return {
    batch: xShape[0],
    inDims: as3(spatialIn, 1),
    outDims: as3(axesOut.map(([o]) => o), 1),
    kernel: as3(ks, 1),
    strides: as3(strides, 1),
    pads: as3(axesOut.map(([, p]) => p), 0),
    dilations: as3(dilation, 1),
    cin,
    cout: kernelShape[rank + 1],
  };
}

/** The geometry of conv2d / conv3d on these shapes (rank from the input's), without running it. */
export function convGeometry(
  xShape: readonly number[],
  kernelShape: readonly number[],
  options: PassOptions = {},
): ConvGeometry {
  const rank = xShape.length - 2;
  if (rank !== 2 && rank !== 3) {
    throw new Error(
      `convGeometry: input ${formatShape(xShape)} is not [N, H, W, C] or [N, D, H, W, C]`,
    );
  }
  return forwardGeometry("convGeometry", rank, xShape, kernelShape, options);
}

/** The spatial output shape [N, ...out, Cout] of a geometry of spatial rank `rank`. */
function outputShape(g: ConvGeometry, rank: 2 | 3): number[] {
  return [g.batch, ...g.outDims.slice(3 - rank), g.cout];
}

function convN(rank: 2 | 3, x: Tensor, kernel: Tensor, options: ConvOptions): Tensor {
  const op = rank === 2 ? "conv2d" : "conv3d";
  checkTensors(
    op,
    x,
    kernel,
    rank,
    options.bias,
    rank === 2 ? "[kh, kw, in, out]" : "[kd, kh, kw, in, out]",
  );
  const geometry = forwardGeometry(op, rank, x.shape, kernel.shape, options);
  checkBias(op, options.bias, geometry.cout);
  return recordedPass("conv", "forward", op, rank, geometry, x, kernel, options);
}

/**
 * Runs the pass that is an op's forward (the data pass for a transposed conv) with its bias and
 * activation, and records the node: x and the kernel saved, plus what the activation's gradient
 * reads (the output, or the pre-activation for gelu).
 */
function recordedPass(
  name: keyof ConvAttrs,
  pass: ConvPass,
  op: string,
  rank: 2 | 3,
  geometry: ConvGeometry,
  x: Tensor,
  kernel: Tensor,
  options: ConvOptions,
): Tensor {
  const [activation, alpha] = activationOf(op, options);
  const inputs = options.bias ? [x, kernel, options.bias] : [x, kernel];
  const { out, pre } = runPass({
    pass,
    rank,
    geometry,
    a: x,
    b: kernel,
    outShape: pass === "forward"
      ? outputShape(geometry, rank)
      : [geometry.batch, ...geometry.inDims.slice(3 - rank), geometry.cin],
    bias: options.bias,
    activation,
    alpha,
    savePre: activation === "gelu" && inputs.some((t) => t.requiresGrad),
    op,
  });
  const saved = [x, kernel];
  if (activation) saved.push(pre ?? out);
  record(name, out, inputs, saved, { geometry, rank, activation, alpha });
  pre?.dispose();
  return out;
}

/** 2-D convolution of x [N, H, W, in] with kernel [kh, kw, in, out] → [N, OH, OW, out]. */
export function conv2d(x: Tensor, kernel: Tensor, options: ConvOptions = {}): Tensor {
  return convN(2, x, kernel, options);
}

/** 3-D convolution of x [N, D, H, W, in] with kernel [kd, kh, kw, in, out]. */
export function conv3d(x: Tensor, kernel: Tensor, options: ConvOptions = {}): Tensor {
  return convN(3, x, kernel, options);
}

/**
 * The gradient of conv2d with respect to its input, for dy [N, OH, OW, out] (TF's
 * conv2DBackpropInput): the dX pass alone, with no tape (benchmarks time the passes one by one).
 */
export function conv2dBackpropInput(
  dy: Tensor,
  kernel: Tensor,
  inputShape: readonly number[],
  options: PassOptions = {},
): Tensor {
  const op = "conv2dBackpropInput";
  const geometry = forwardGeometry(op, 2, inputShape, kernel.shape, options);
  expectShape(op, "dy", dy, outputShape(geometry, 2));
  return runPass({
    pass: "data",
    rank: 2,
    geometry,
    a: dy,
    b: kernel,
    outShape: [...inputShape],
    op,
  })
    .out;
}

/** The gradient of conv2d with respect to its kernel (TF's conv2DBackpropFilter), no tape. */
export function conv2dBackpropFilter(
  x: Tensor,
  dy: Tensor,
  kernelShape: readonly number[],
  options: PassOptions = {},
): Tensor {
  const op = "conv2dBackpropFilter";
  const geometry = forwardGeometry(op, 2, x.shape, kernelShape, options);
  expectShape(op, "dy", dy, outputShape(geometry, 2));
  return runPass({ pass: "weight", rank: 2, geometry, a: x, b: dy, outShape: [...kernelShape], op })
    .out;
}

function expectShape(op: string, name: string, t: Tensor, shape: number[]): void {
  t.assertAlive(op);
  if (t.shape.join() !== shape.join()) {
    throw new Error(
      `${op}: ${name} has shape ${formatShape(t.shape)}; expected ${formatShape(shape)}`,
    );
  }
}

/** Keras's deconv_output_length and the padding-before of the conv it transposes. */
function transposeAxis(
  op: string,
  size: number,
  k: number,
  s: number,
  padding: ConvPadding,
  outputPadding: number | null,
): [number, number] {
  let out: number;
  if (outputPadding === null) {
    out = padding === "valid" ? size * s + Math.max(k - s, 0) : size * s;
  } else {
    if (outputPadding >= s) {
      throw new Error(`${op}: outputPadding ${outputPadding} must be smaller than its stride ${s}`);
    }
    out = (size - 1) * s + k - 2 * (padding === "same" ? Math.floor(k / 2) : 0) + outputPadding;
  }
  const pad = padding === "same" ? Math.floor(Math.max((size - 1) * s + k - out, 0) / 2) : 0;
  return [out, pad];
}

/**
 * Transposed 2-D convolution (Keras Conv2DTranspose): x [N, H, W, in], kernel [kh, kw, out, in]
 * → [N, OH, OW, out] with OH = H·s ("same") or H·s + max(kh − s, 0) ("valid").
 */
export function conv2dTranspose(
  x: Tensor,
  kernel: Tensor,
  options: ConvTransposeOptions = {},
): Tensor {
  const op = "conv2dTranspose";
  const layout = "[kh, kw, out, in]";
  checkTensors(op, x, kernel, 2, options.bias, layout);
  const cin = x.shape[3];
  const filters = kernel.shape[2];
  if (kernel.shape[3] !== cin) {
    throw new Error(
      `${op}: kernel ${formatShape(kernel.shape)} takes ${kernel.shape[3]} input channels ` +
        `but the input ${formatShape(x.shape)} has ${cin} (kernel layout ${layout})`,
    );
  }
  checkBias(op, options.bias, filters);
  const strides = perDim(op, "strides", options.strides ?? 1, 2);
  const padding = options.padding ?? "valid";
  if (padding !== "valid" && padding !== "same") {
    throw new Error(`${op}: padding '${padding}' is not 'valid' or 'same'`);
  }
  const extra = options.outputPadding === undefined
    ? [null, null]
    : perDimAllowZero(op, options.outputPadding);
  const ks = kernel.shape.slice(0, 2);
  const axesOut = [0, 1].map((a) =>
    transposeAxis(op, x.shape[a + 1], ks[a], strides[a], padding, extra[a])
  );
  // The conv this one transposes maps the output [.., OH, OW, filters] back to x.
  const geometry: ConvGeometry = {
    batch: x.shape[0],
    inDims: as3(axesOut.map(([o]) => o), 1),
    outDims: as3([x.shape[1], x.shape[2]], 1),
    kernel: as3(ks, 1),
    strides: as3(strides, 1),
    pads: as3(axesOut.map(([, p]) => p), 0),
    dilations: [1, 1, 1],
    cin: filters,
    cout: cin,
  };
  return recordedPass("conv_transpose", "data", op, 2, geometry, x, kernel, options);
}

function perDimAllowZero(op: string, value: number | readonly number[]): [number, number] {
  const list = typeof value === "number" ? [value, value] : [...value];
  if (list.length !== 2 || !list.every((v) => Number.isInteger(v) && v >= 0)) {
    throw new Error(`${op}: outputPadding ${JSON.stringify(value)} must be 2 integers ≥ 0`);
  }
  return [list[0], list[1]];
}

// ---- backward -----------------------------------------------------------------------------

/**
 * Gradients of the conv (x, kernel) → y with the pre-activation gradient dz: dX by the data
 * pass, dW by the weight pass, the bias by a sum over every axis but the channels.
 */
function convGrads(
  r: ConvRecord,
  dz: Tensor,
  x: Tensor,
  kernel: Tensor,
  wants: [boolean, boolean],
  transposed: boolean,
): [Tensor | null, Tensor | null] {
  const g = r.geometry;
  // The underlying conv's input and output: for conv_transpose they swap roles with (x, dz).
  const [convIn, convOut] = transposed ? [dz, x] : [x, dz];
  const op = transposed ? "conv_transpose" : "conv";
  const pass = (kind: ConvPass, a: Tensor, b: Tensor, like: Tensor, name: string) =>
    runPass({ pass: kind, rank: r.rank, geometry: g, a, b, outShape: [...like.shape], op: name })
      .out;
  // dX of a conv is its data pass; of a transposed conv (whose forward is a data pass), the
  // forward pass.
  const dIn = wants[0] ? pass(transposed ? "forward" : "data", dz, kernel, x, `${op} dX`) : null;
  const dKernel = wants[1] ? pass("weight", convIn, convOut, kernel, `${op} dW`) : null;
  return [dIn, dKernel];
}

function convRule(transposed: boolean): BackwardRule<ConvRecord> {
  return (grad, node) => {
    const [x, kernel, savedAct] = node.saved;
    const r = node.attrs;
    const [inX, inKernel, inBias] = node.inputs;
    const dz = r.activation ? activationGrad(grad, savedAct, r.activation, r.alpha) : grad;
    const [dX, dKernel] = convGrads(
      r,
      dz,
      x,
      kernel,
      [inX.requiresGrad, inKernel.requiresGrad],
      transposed,
    );
    const dBias = inBias?.requiresGrad ? sum(dz, [...new Array(dz.rank - 1).keys()]) : null;
    if (dz !== grad) dz.dispose();
    return inBias ? [dX, dKernel, dBias] : [dX, dKernel];
  };
}

const convRules: Rules<ConvAttrs> = {
  conv: convRule(false),
  conv_transpose: convRule(true),
};
const record = recorder(convRules);
