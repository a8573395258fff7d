// Convolution layers with Keras semantics on channels-last input: Conv2D (NHWC), Conv3D (NDHWC)
// and Conv2DTranspose, each one fused conv + bias + activation dispatch per pass.
//
// Weights keep Keras' layout under PyTorch's names, so x needs no transpose and a Keras kernel
// loads as is:
//   Conv2D           weight [kh, kw, in, out]      — PyTorch Conv2d.weight [out, in, kh, kw]
//                                                    = weight.permute(3, 2, 0, 1)
//   Conv3D           weight [kd, kh, kw, in, out]  — PyTorch Conv3d.weight [out, in, kd, kh, kw]
//                                                    = weight.permute(4, 3, 0, 1, 2)
//   Conv2DTranspose  weight [kh, kw, out, in]      — PyTorch ConvTranspose2d.weight
//                                                    [in, out, kh, kw] = weight.permute(3, 2, 0, 1)
//   bias [out] in every case, as PyTorch. (PyTorch's "same" pads symmetrically; TensorFlow's puts
//   the odd cell at the bottom/right, which is what these layers do.)
// Init as Keras: Glorot-uniform kernel with fan_in = receptive field · in, fan_out = receptive
// field · out; zero bias.
import { formatShape, Tensor } from "../tensor.ts";
import { conv2d, conv2dTranspose, conv3d, type ConvPadding } from "../ops/conv.ts";
import { ACTIVATIONS, type MatmulActivation } from "../ops/matmul.ts";
import { globalRng, type Rng } from "../random.ts";
import { Module } from "./module.ts";
import { glorotUniform } from "./init.ts";
import {
  booleanField,
  choiceField,
  type JsonValue,
  numberField,
  numberListField,
  registerLayer,
} from "../io/config.ts";

/** One number for every spatial axis, or one per axis. */
type PerAxis = number | readonly number[];

const PADDINGS: readonly ConvPadding[] = ["valid", "same"];

/**
 * `value` as one integer ≥ `min` per spatial axis (a number stands for every axis); throws
 * naming `layer` and `name` otherwise.
 */
export function spatialTuple(
  layer: string,
  name: string,
  value: number | readonly number[],
  rank: number,
  min = 1,
): number[] {
  const list = typeof value === "number" ? new Array<number>(rank).fill(value) : [...value];
  if (list.length !== rank || !list.every((v) => Number.isInteger(v) && v >= min)) {
    throw new Error(
      `${layer}: ${name} ${JSON.stringify(value)}, expected an integer ≥ ${min} or ${rank} of them`,
    );
  }
  return list;
}

/** Checks a "valid"/"same" padding option (config files are not type-checked). */
export function paddingOf(layer: string, padding: ConvPadding | undefined): ConvPadding {
  const value = padding ?? "valid";
  if (!PADDINGS.includes(value)) {
    throw new Error(`${layer}: padding '${value}', expected 'valid' or 'same'`);
  }
  return value;
}

export interface ConvLayerOptions {
  /** Step per spatial axis (default 1). */
  strides?: PerAxis;
  /** Default "valid"; "same" keeps ceil(in / stride) outputs with TensorFlow's padding. */
  padding?: ConvPadding;
  /** Add a bias vector (default true, Keras `use_bias`). */
  useBias?: boolean;
  /** Activation fused into the conv epilogue. */
  activation?: MatmulActivation;
  /** Generator for the initial kernel (default: the global one). */
  rng?: Rng;
}

/** Conv2D and Conv3D options. */
export interface ConvNdOptions extends ConvLayerOptions {
  /** Spacing of the kernel taps per axis (default 1; not with strides > 1, as Keras). */
  dilation?: PerAxis;
}

export interface Conv2DTransposeOptions extends ConvLayerOptions {
  /** Extra output rows/columns at the end, each < its stride (Keras `output_padding`). */
  outputPadding?: PerAxis;
}

/** What the three layers share: the kernel, the bias, the options and the input check. */
abstract class Convolution extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly kernelSize: number[];
  readonly strides: number[];
  readonly padding: ConvPadding;
  readonly activation: MatmulActivation | undefined;

  /** `kernelShape` places in and out channels after the window in the layer's own layout. */
  protected constructor(
    readonly layerName: string,
    readonly inChannels: number,
    readonly filters: number,
    kernelSize: PerAxis,
    rank: 2 | 3,
    options: ConvLayerOptions,
    kernelShape: (window: number[]) => number[],
  ) {
    super();
    for (const [what, n] of [["inChannels", inChannels], ["filters", filters]] as const) {
      if (!Number.isInteger(n) || n < 1) {
        throw new Error(`${layerName}: ${what} ${n}, expected an integer ≥ 1`);
      }
    }
    this.kernelSize = spatialTuple(layerName, "kernelSize", kernelSize, rank);
    this.strides = spatialTuple(layerName, "strides", options.strides ?? 1, rank);
    this.padding = paddingOf(layerName, options.padding);
    this.activation = options.activation;
    const field = this.kernelSize.reduce((a, b) => a * b, 1);
    this.weight = this.addParameter(
      "weight",
      glorotUniform(
        kernelShape(this.kernelSize),
        field * inChannels,
        field * filters,
        options.rng ?? globalRng,
      ),
    );
    this.bias = options.useBias ?? true ? this.addParameter("bias", Tensor.zeros([filters])) : null;
  }

  forward(x: Tensor): Tensor {
    const rank = this.kernelSize.length;
    if (x.rank !== rank + 2 || x.shape[x.rank - 1] !== this.inChannels) {
      const axes = rank === 2 ? "height, width" : "depth, height, width";
      throw new Error(
        `${this.layerName}: input ${formatShape(x.shape)}, expected [batch, ${axes}, ` +
          `${this.inChannels}] (channels-last, inChannels = ${this.inChannels})`,
      );
    }
    return this.convolve(x);
  }

  protected abstract convolve(x: Tensor): Tensor;

  /** The options every conv op takes. */
  protected opOptions() {
    return {
      strides: this.strides,
      padding: this.padding,
      bias: this.bias ?? undefined,
      activation: this.activation,
    };
  }
}

/** Conv2D and Conv3D: the forward convolution with dilation, over 2 or 3 spatial axes. */
abstract class DilatedConvolution extends Convolution {
  readonly dilation: number[];

  protected constructor(
    layerName: string,
    rank: 2 | 3,
    inChannels: number,
    filters: number,
    kernelSize: PerAxis,
    options: ConvNdOptions,
  ) {
    super(layerName, inChannels, filters, kernelSize, rank, options, (k) => [
      ...k,
      inChannels,
      filters,
    ]);
    this.dilation = spatialTuple(layerName, "dilation", options.dilation ?? 1, rank);
  }

  protected convolve(x: Tensor): Tensor {
    const conv = this.kernelSize.length === 2 ? conv2d : conv3d;
    return conv(x, this.weight, { ...this.opOptions(), dilation: this.dilation });
  }
}

/** Keras Conv2D: x [N, H, W, in] → [N, OH, OW, filters]. */
export class Conv2D extends DilatedConvolution {
  constructor(
    inChannels: number,
    filters: number,
    kernelSize: PerAxis,
    options: ConvNdOptions = {},
  ) {
    super("Conv2D", 2, inChannels, filters, kernelSize, options);
  }
}

/** Keras Conv3D: x [N, D, H, W, in] → [N, OD, OH, OW, filters]. */
export class Conv3D extends DilatedConvolution {
  constructor(
    inChannels: number,
    filters: number,
    kernelSize: PerAxis,
    options: ConvNdOptions = {},
  ) {
    super("Conv3D", 3, inChannels, filters, kernelSize, options);
  }
}

/**
 * Keras Conv2DTranspose: x [N, H, W, in] → [N, OH, OW, filters] with OH = H·stride ("same") or
 * H·stride + max(kh − stride, 0) ("valid"), unless `outputPadding` sets it (Keras' rules). The
 * U-Net's 2×2 stride-2 "same" case doubles H and W, each input pixel feeding its own 2×2 block.
 */
export class Conv2DTranspose extends Convolution {
  readonly outputPadding: number[] | null;

  constructor(
    inChannels: number,
    filters: number,
    kernelSize: PerAxis,
    options: Conv2DTransposeOptions = {},
  ) {
    super("Conv2DTranspose", inChannels, filters, kernelSize, 2, options, (k) => [
      ...k,
      filters,
      inChannels,
    ]);
    this.outputPadding = options.outputPadding === undefined
      ? null
      : spatialTuple("Conv2DTranspose", "outputPadding", options.outputPadding, 2, 0);
  }

  protected convolve(x: Tensor): Tensor {
    return conv2dTranspose(x, this.weight, {
      ...this.opOptions(),
      outputPadding: this.outputPadding ?? undefined,
    });
  }
}

// ---- configs ------------------------------------------------------------------------------

const ACTIVATION_CHOICES: readonly (MatmulActivation | null)[] = [null, ...ACTIVATIONS];

function convConfig(m: Convolution): Record<string, JsonValue> {
  return {
    inChannels: m.inChannels,
    filters: m.filters,
    kernelSize: m.kernelSize,
    strides: m.strides,
    padding: m.padding,
    useBias: m.bias !== null,
    activation: m.activation ?? null,
  };
}

function convOptions(c: Record<string, JsonValue>, rng: Rng) {
  return {
    strides: numberListField(c, "strides"),
    padding: choiceField(c, "padding", PADDINGS, "valid"),
    useBias: booleanField(c, "useBias", true),
    activation: choiceField(c, "activation", ACTIVATION_CHOICES) ?? undefined,
    rng,
  };
}

/** The constructor's leading arguments: in channels, filters, window. */
function convShape(c: Record<string, JsonValue>) {
  return [
    numberField(c, "inChannels"),
    numberField(c, "filters"),
    numberListField(c, "kernelSize"),
  ] as const;
}

for (const [name, Layer, rank] of [["Conv2D", Conv2D, 2], ["Conv3D", Conv3D, 3]] as const) {
  registerLayer<DilatedConvolution>(name, Layer, {
    config: (m) => ({ ...convConfig(m), dilation: m.dilation }),
    build: (c, _children, rng) =>
      new Layer(...convShape(c), {
        ...convOptions(c, rng),
        dilation: numberListField(c, "dilation", new Array(rank).fill(1)),
      }),
  });
}

registerLayer("Conv2DTranspose", Conv2DTranspose, {
  config: (m) => ({ ...convConfig(m), outputPadding: m.outputPadding }),
  build: (c, _children, rng) =>
    new Conv2DTranspose(...convShape(c), {
      ...convOptions(c, rng),
      outputPadding: c.outputPadding === null || c.outputPadding === undefined
        ? undefined
        : numberListField(c, "outputPadding"),
    }),
});
