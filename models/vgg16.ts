// TP3 Exercise 4 (spec labs/TP1-TP4.md §4.5): the VGG16 convolutional base, Keras
// `VGG16(include_top=False)` — five blocks of 3×3 "same" ReLU convs [64, 64] [128, 128]
// [256, 256, 256] [512, 512, 512] [512, 512, 512], each closed by a 2×2 max-pool; 14,714,688
// parameters. Layers carry Keras' names (`block1_conv1` … `block5_conv3`, `block1_pool` …
// `block5_pool`); `features()` returns named outputs from one forward pass that stops at the last
// layer asked for (the style-transfer extractor of §4.5). Plus Keras' "caffe" `preprocess_input`
// and its inverse.
//
// Weights: a safetensors file holding, for every conv, `<layer>.weight` [3, 3, in, out] (Keras'
// kernel layout) and `<layer>.bias` [out] — `block1_conv1.weight` [3, 3, 3, 64] … `block5_conv3.bias`
// [512]; F16/BF16/F64 are widened on read, other tensors in the file are ignored. Converting the
// ImageNet weights (Python with `safetensors` installed):
//   Keras (the original caffe weights, used as they are):
//     from keras.applications import VGG16; from safetensors.numpy import save_file
//     save_file({f"{l.name}.{k}": w for l in VGG16(include_top=False).layers if l.weights for k, w in zip(("weight", "bias"), l.get_weights())}, "vgg16.safetensors")
//   PyTorch torchvision: weight [out, in, kh, kw] → permute(2, 3, 1, 0); features.0, 2, 5, 7, 10,
//   12, 14, 17, 19, 21, 24, 26, 28 are block1_conv1 … block5_conv3 in order:
//     import torch, torchvision; from safetensors.torch import save_file
//     convs = [m for m in torchvision.models.vgg16(weights="IMAGENET1K_V1").features if isinstance(m, torch.nn.Conv2d)]
//     names = [f"block{b}_conv{c}" for b, n in enumerate([2, 2, 3, 3, 3], 1) for c in range(1, n + 1)]
//     w = {f"{n}.{k}": t.detach() for n, m in zip(names, convs) for k, t in (("weight", m.weight.permute(2, 3, 1, 0)), ("bias", m.bias))}
//     w["block1_conv1.weight"] = w["block1_conv1.weight"].flip(2) / (255 * torch.tensor([.225, .224, .229]).view(1, 1, 3, 1))
//     save_file({k: t.contiguous() for k, t in w.items()}, "vgg16.safetensors")
//   (torchvision's network takes RGB in [0, 1] normalised by the ImageNet mean and std, not caffe
//   BGR: the last-but-one line folds that into block1_conv1 — flip to BGR, divide by 255·std;
//   the two mean vectors differ by under half a grey level, which is ignored.)
import { numberField, registerLayer } from "../engine/io/config.ts";
import { loadModelState, type ModelState } from "../engine/io/checkpoint.ts";
import { decodeSafetensors } from "../engine/io/safetensors.ts";
import { Conv2D } from "../engine/nn/conv.ts";
import { Graph } from "../engine/nn/module.ts";
import { MaxPool2D } from "../engine/nn/pool.ts";
import { globalRng, type Rng } from "../engine/random.ts";
import { formatShape, type Tensor } from "../engine/tensor.ts";

export const VGG16_PARAMS = 14_714_688;
/** Filters of each block's convs. */
export const VGG16_BLOCKS: readonly (readonly number[])[] = [
  [64, 64],
  [128, 128],
  [256, 256, 256],
  [512, 512, 512],
  [512, 512, 512],
];
/** §4.5's extractor outputs: style layers first, then the content layer. */
export const STYLE_LAYERS = [
  "block1_conv1",
  "block2_conv1",
  "block3_conv1",
  "block4_conv1",
  "block5_conv1",
] as const;
export const CONTENT_LAYERS = ["block5_conv2"] as const;

/** keras.applications.vgg16 "caffe" means, in BGR order. */
export const CAFFE_MEAN_BGR = [103.939, 116.779, 123.68] as const;

export interface Vgg16Options {
  /** Channels of the input images (default 3; ImageNet weights need 3). */
  inChannels?: number;
  rng?: Rng;
}

/** Keras VGG16(include_top=False): [N, H, W, C] → block5_pool [N, H/32, W/32, 512]. */
export class Vgg16 extends Graph {
  readonly inChannels: number;
  /** Every layer in call order with its Keras name. */
  readonly layers: readonly (readonly [string, Conv2D | MaxPool2D])[];

  constructor(options: Vgg16Options = {}) {
    super();
    const { inChannels = 3, rng = globalRng } = options;
    this.inChannels = inChannels;
    const layers: [string, Conv2D | MaxPool2D][] = [];
    let channels = inChannels;
    VGG16_BLOCKS.forEach((filters, b) => {
      filters.forEach((out, c) => {
        const name = `block${b + 1}_conv${c + 1}`;
        const conv = new Conv2D(channels, out, 3, { padding: "same", activation: "relu", rng });
        layers.push([name, this.addModule(name, conv)]);
        channels = out;
      });
      const name = `block${b + 1}_pool`;
      layers.push([name, this.addModule(name, new MaxPool2D(2))]);
    });
    this.layers = layers;
  }

  forward(x: Tensor): Tensor {
    return this.features(x, ["block5_pool"])[0];
  }

  /** The outputs of the layers named, in the order named, from one pass that stops at the last. */
  features(x: Tensor, names: readonly string[]): Tensor[] {
    const order = new Map(this.layers.map(([name], i) => [name, i]));
    const unknown = names.filter((name) => !order.has(name));
    if (unknown.length) {
      throw new Error(
        `Vgg16.features: no layer ${unknown.join(", ")} (layers: ${[...order.keys()].join(", ")})`,
      );
    }
    const last = Math.max(...names.map((name) => order.get(name)!));
    const found = new Map<string, Tensor>();
    let h = x;
    for (const [name, layer] of this.layers.slice(0, last + 1)) {
      h = layer.forward(h);
      found.set(name, h);
    }
    return names.map((name) => found.get(name)!);
  }

  /** Keras `trainable = False`: no gradient is computed for the weights (the input still gets one). */
  freeze(): this {
    for (const p of this.parameters()) p.requireGrad(false);
    return this;
  }
}

registerLayer("Vgg16", Vgg16, {
  config: (m) => ({ inChannels: m.inChannels }),
  build: (c, _children, rng) => new Vgg16({ inChannels: numberField(c, "inChannels", 3), rng }),
});

/**
 * Loads the conv weights from safetensors bytes (names and layouts in the file header). Every
 * tensor is checked before anything is written; a missing one or a wrong shape throws naming
 * the tensor, the expected and the actual shape.
 */
export function loadVgg16Weights(model: Vgg16, bytes: Uint8Array, source = "weights file"): void {
  const { tensors } = decodeSafetensors(bytes);
  const state: ModelState = {};
  const problems: string[] = [];
  for (const [name, t] of model.namedParameters()) {
    const entry = tensors[name];
    if (!entry) problems.push(`'${name}' is missing (expected ${formatShape(t.shape)})`);
    else if (entry.shape.join() !== t.shape.join()) {
      problems.push(
        `'${name}' has shape ${formatShape(entry.shape)}, expected ${formatShape(t.shape)}`,
      );
    } else if (entry.dtype !== "F32") problems.push(`'${name}' is ${entry.dtype}, expected F32`);
    else state[name] = entry;
  }
  if (problems.length) {
    const present = Object.keys(tensors).slice(0, 6).join(", ") || "none";
    throw new Error(
      `VGG16 weights (${source}): ${problems.length} of ${model.namedParameters().length} ` +
        `tensors unusable: ${problems.slice(0, 4).join("; ")}${
          problems.length > 4 ? "; …" : ""
        } (the file has ${present}${Object.keys(tensors).length > 6 ? ", …" : ""}; ` +
        "models/vgg16.ts says how to convert the Keras or PyTorch weights)",
    );
  }
  loadModelState(model, state);
}

/**
 * keras.applications.vgg16.preprocess_input ("caffe"): RGB bytes → BGR floats minus the
 * ImageNet means, no scaling; [H·W·3] channels-last.
 */
export function caffePreprocess(rgb: Uint8Array): Float32Array {
  const out = new Float32Array(rgb.length);
  for (let i = 0; i < rgb.length; i += 3) {
    for (let c = 0; c < 3; c++) out[i + c] = rgb[i + 2 - c] - CAFFE_MEAN_BGR[c];
  }
  return out;
}

/** The inverse (the students' `deprocess`): add the means, BGR → RGB, round and clip to 0–255. */
export function caffeDeprocess(bgr: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(bgr.length);
  for (let i = 0; i < bgr.length; i += 3) {
    for (let c = 0; c < 3; c++) {
      const v = Math.round(bgr[i + c] + CAFFE_MEAN_BGR[c]);
      out[i + 2 - c] = Math.min(255, Math.max(0, v));
    }
  }
  return out;
}
