// The Gatys et al. style-transfer loop that §4.5's students prepared but never wrote, as
// TensorFlow's "Neural style transfer" tutorial writes it (same VGG16 layers):
//   content  = mean over block5_conv2's features of (F − P)²
//   style    = mean over the five blockN_conv1 layers of mean((G − A)²), G = FᵀF / positions
//   total variation = Σ |x[i+1, j] − x[i, j]| + |x[i, j+1] − x[i, j]| over the image
//   loss     = w_content·content + w_style·style + w_tv·tv
// The generated image's pixels (caffe-preprocessed, initialised from the content image) are the
// only trainable tensor: VGG16 is frozen, Adam moves the pixels, and after each step they are
// clipped back to displayable values (0–255 once the means are added back), as the tutorial
// clips to [0, 1].
import { noGrad } from "../../engine/autograd.ts";
import { clamp } from "../../engine/ops/elementwise.ts";
import { mse } from "../../engine/ops/loss.ts";
import { slice, stack } from "../../engine/ops/shape.ts";
import { Adam, type AdamOptions } from "../../engine/optim/optimizers.ts";
import { runtime } from "../../engine/runtime.ts";
import { Tensor, tidy } from "../../engine/tensor.ts";
import { CAFFE_MEAN_BGR, CONTENT_LAYERS, STYLE_LAYERS, type Vgg16 } from "../../models/vgg16.ts";

export interface StyleWeights {
  content: number;
  style: number;
  totalVariation: number;
}

/**
 * The tutorial's weights (content 1e4, style 1e-2, variation 30 on [0, 1] pixels); ours are
 * 0–255 caffe pixels, so the variation weight is divided by 255 to keep the same balance.
 */
export const DEFAULT_STYLE_WEIGHTS: StyleWeights = {
  content: 1e4,
  style: 1e-2,
  totalVariation: 30 / 255,
};

/**
 * Adam on 0–255 pixels. The tutorial's (lr 0.02, β1 0.99, ε 0.1 on [0, 1] pixels) would be lr 5.1
 * and ε 0.1/255 here (that ε is kept); but Adam's first steps move every pixel by about lr at once, and at 5.1 grey
 * levels that overshoot raised the total loss for the first ten steps (measured on random VGG16
 * weights at 64×64), so the step is one grey level: 200 steps still move a pixel far enough.
 */
export const DEFAULT_PIXEL_ADAM: Required<Pick<AdamOptions, "lr" | "beta1" | "epsilon">> = {
  lr: 1,
  beta1: 0.99,
  epsilon: 0.1 / 255,
};

const EXTRACTED = [...STYLE_LAYERS, ...CONTENT_LAYERS];

/** [1, H, W, C] features → their Gram matrix [1, C, C] divided by the H·W positions. */
export function gramMatrix(features: Tensor): Tensor {
  const [n, height, width, channels] = features.shape;
  const flat = features.reshape([n, height * width, channels]);
  return flat.matmul(flat, { transA: true }).mul(1 / (height * width));
}

/** Sum of absolute differences between vertical and horizontal neighbours of [N, H, W, C]. */
export function totalVariation(image: Tensor): Tensor {
  const [, height, width] = image.shape;
  const down = slice(image, [0, 1], []).sub(slice(image, [0, 0], [Infinity, height - 1]));
  const right = slice(image, [0, 0, 1], []).sub(
    slice(image, [0, 0, 0], [Infinity, Infinity, width - 1]),
  );
  return down.abs().sum().add(right.abs().sum());
}

/** What the generated image is pulled towards: the style image's Grams, the content features. */
export interface StyleTargets {
  styleGrams: Tensor[];
  content: Tensor;
}

/** Computed once, without a tape; the caller disposes them (`disposeTargets`). */
export function styleTargets(vgg: Vgg16, contentImage: Tensor, styleImage: Tensor): StyleTargets {
  return noGrad(() =>
    tidy(() => {
      const styleFeatures = vgg.features(styleImage, STYLE_LAYERS);
      const [content] = vgg.features(contentImage, CONTENT_LAYERS);
      return {
        styleGrams: styleFeatures.map(gramMatrix).map((g) => g.keep()),
        content: content.keep(),
      };
    })
  );
}

export function disposeTargets(targets: StyleTargets): void {
  for (const t of [...targets.styleGrams, targets.content]) t.dispose();
}

export interface StyleLoss {
  /** The weighted sum, differentiable with respect to the image. */
  total: Tensor;
  /** [total, content, style, total variation], each weighted (they add up to total). */
  terms: Tensor;
}

/** One forward pass of `image` through VGG16 and the three weighted losses. */
export function styleTransferLoss(
  vgg: Vgg16,
  image: Tensor,
  targets: StyleTargets,
  weights: StyleWeights,
): StyleLoss {
  const features = vgg.features(image, EXTRACTED);
  const content = mse(features[STYLE_LAYERS.length], targets.content).mul(weights.content);
  const style = targets.styleGrams
    .map((target, i) => mse(gramMatrix(features[i]), target))
    .reduce((a, b) => a.add(b))
    .mul(weights.style / STYLE_LAYERS.length);
  const variation = totalVariation(image).mul(weights.totalVariation);
  const total = content.add(style).add(variation);
  const terms = noGrad(() => stack([total, content, style, variation].map((t) => t.reshape([]))));
  return { total, terms };
}

/** The weighted losses at one step (before that step's update). */
export interface LossValues {
  total: number;
  content: number;
  style: number;
  totalVariation: number;
}

export interface TransferOptions {
  steps: number;
  /** Called with the losses of step 0 … steps (the last one after the final update). */
  onStep?: (step: number, losses: LossValues) => void | Promise<void>;
}

export interface TransferResult {
  /** The generated image, caffe-preprocessed [H·W·3] (`caffeDeprocess` makes it RGB). */
  pixels: Float32Array;
  losses: LossValues[];
}

/** The pixels of `image` clipped to what `caffeDeprocess` can show, written back in place. */
function clipToDisplayable(image: Tensor, mean: Tensor): void {
  noGrad(() =>
    tidy(() => {
      const clipped = clamp(image.add(mean), 0, 255).sub(mean);
      runtime().copy(clipped.storage, 0, image.storage, 0, image.size * 4);
    })
  );
}

/**
 * Optimises an image initialised from `content` ([1, H, W, 3], caffe) towards `style`'s Gram
 * statistics for `steps` Adam steps with the default weights. Freezes `vgg` (Keras
 * `trainable = False`): the pixels are the only tensor that gets a gradient.
 */
export async function transferStyle(
  vgg: Vgg16,
  content: Tensor,
  style: Tensor,
  options: TransferOptions,
): Promise<TransferResult> {
  vgg.freeze();
  const targets = styleTargets(vgg, content, style);
  const image = noGrad(() => content.add(0)).requireGrad().keep();
  const mean = Tensor.from([...CAFFE_MEAN_BGR], [3]).keep();
  const optimizer = new Adam([image], DEFAULT_PIXEL_ADAM);
  const losses: LossValues[] = [];
  try {
    for (let step = 0; step <= options.steps; step++) {
      const update = step < options.steps;
      const terms = tidy(() => {
        const loss = styleTransferLoss(vgg, image, targets, DEFAULT_STYLE_WEIGHTS);
        if (update) loss.total.backward();
        return loss.terms;
      });
      if (update) {
        optimizer.step();
        optimizer.zeroGrad();
        clipToDisplayable(image, mean);
      }
      const [total, contentLoss, styleLoss, variation] = await terms.data();
      terms.dispose();
      const values = { total, content: contentLoss, style: styleLoss, totalVariation: variation };
      losses.push(values);
      await options.onStep?.(step, values);
    }
    return { pixels: Float32Array.from(await image.data()), losses };
  } finally {
    optimizer.dispose();
    for (const t of [image, mean]) t.dispose();
    disposeTargets(targets);
  }
}
