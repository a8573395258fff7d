// Losses: fused softmax cross-entropy from logits (class ids or probabilities), and the
// pointwise losses MSE, MAE, binary cross-entropy on probabilities (Keras semantics) and on
// logits. Each of those is one node on the tape with a one-dispatch backward. The overlap
// losses of segmentation (soft Dice, Dice loss, BCE + Dice) are composites of primitives.
import { type BackwardRule, noGrad, recorder, type Rules } from "../autograd.ts";
import { runtime } from "../runtime.ts";
import { grid1d } from "../shaders/common.ts";
import {
  crossEntropyBackwardKernel,
  crossEntropyKernel,
  type LabelKind,
  type PointwiseLoss,
  pointwiseLossBackwardKernel,
  pointwiseLossKernel,
} from "../shaders/loss.ts";
import { formatShape, Tensor } from "../tensor.ts";
import { add, div, mul, sub } from "./elementwise.ts";
import { laneLayout, mean, sum } from "./reduce.ts";
import { reshape } from "./shape.ts";

interface LossAttrs {
  softmax_cross_entropy: { kind: LabelKind; scale: number; perRowGrad: boolean };
  pointwise_loss: { kind: PointwiseLoss };
}

/** "mean" (default) averages over rows (cross-entropy) or elements; "none" keeps them. */
export type Reduction = "mean" | "sum" | "none";

export interface LossOptions {
  reduction?: Reduction;
}

// Up to this many logits one workgroup computes the whole mean/sum in the forward kernel
// (one dispatch); beyond it the rows run in parallel and a reduction follows.
const SINGLE_PASS_LOGITS = 32768;

/** The cross-entropy kernels load four classes at a time where rows are a multiple of 4 long. */
const fourClassesPerLoad = (classes: number) => classes % 4 === 0;

function checkReduction(op: string, reduction: string): Reduction {
  if (reduction !== "mean" && reduction !== "sum" && reduction !== "none") {
    throw new Error(`${op}: reduction '${reduction}' is not one of "mean", "sum", "none"`);
  }
  return reduction;
}

/**
 * Cross-entropy of softmax(logits) against `labels`, fused and stable for any logit magnitude.
 * `logits` is f32 [N, C]; `labels` are class ids (i32 or u32, [N]) or probabilities (f32
 * [N, C], e.g. one-hot or smoothed). "mean" divides by N. A class id outside [0, C) cannot be
 * caught without reading the labels back: that row's loss and gradient come out NaN; with
 * `init({ checkIndices: true })` (DENOGRAD_CHECK_INDICES=1) the next readback throws naming the
 * class id bound, and DENOGRAD_CHECK_NAN names this op. Gradients flow to the logits, and to
 * probability labels that require one.
 */
export function softmaxCrossEntropy(
  logits: Tensor,
  labels: Tensor,
  { reduction = "mean" }: LossOptions = {},
): Tensor {
  const op = "softmaxCrossEntropy";
  logits.assertAlive(op);
  labels.assertAlive(op);
  checkReduction(op, reduction);
  if (logits.rank !== 2 || logits.dtype !== "f32") {
    throw new Error(
      `${op}: logits of shape ${formatShape(logits.shape)} and dtype ${logits.dtype}, ` +
        "expected f32 [N, C]",
    );
  }
  const [rows, classes] = logits.shape;
  if (classes === 0) throw new Error(`${op}: logits of shape [${rows}, 0] have no classes`);
  let kind: LabelKind;
  if (labels.dtype === "f32" && labels.shape.join() === logits.shape.join()) kind = "probs";
  else if (labels.dtype !== "f32" && labels.rank === 1 && labels.shape[0] === rows) kind = "ids";
  else {
    throw new Error(
      `${op}: labels of shape ${formatShape(labels.shape)} and dtype ${labels.dtype} do not ` +
        `match logits ${formatShape(logits.shape)}: expected class ids (i32 or u32) of shape ` +
        `[${rows}] or f32 probabilities of shape ${formatShape(logits.shape)}`,
    );
  }

  const scale = reduction === "mean" ? 1 / rows : 1;
  const stats = Tensor.empty([rows, 3]);
  const vec4 = fourClassesPerLoad(classes);
  const layout = laneLayout(rows, vec4 ? classes / 4 : classes, 1);
  const onePass = reduction !== "none" && rows * classes <= SINGLE_PASS_LOGITS;
  const rowLoss = Tensor.empty(onePass ? [] : [rows]);
  const groups = onePass ? 1 : Math.max(1, Math.ceil(rows / layout.cols));
  const gx = Math.min(groups, 65535);
  if (rows > 0 || onePass) {
    runtime().launch(crossEntropyKernel(kind, layout, onePass, vec4), {
      buffers: [logits.storage, labels.storage, stats.storage, rowLoss.storage],
      params: {
        rows,
        classes,
        gx,
        blocks: onePass ? Math.ceil(rows / layout.cols) : 1,
        scale: onePass ? scale : 1,
        neg_inf: -Infinity,
        nan: NaN,
        per_row_grad: 0,
      },
      groups: [gx, Math.ceil(groups / gx)],
      flops: 4 * rows * classes,
      // Checked before any reduction, so DENOGRAD_CHECK_NAN names this op rather than the mean.
      outputs: [rowLoss],
      indices: kind === "ids"
        ? [{ storage: labels.storage, size: rows, bound: classes, what: "a class id" }]
        : [],
      op: "softmax_cross_entropy",
    });
  }
  let loss = rowLoss;
  if (!onePass && reduction !== "none") {
    loss = noGrad(() => (reduction === "mean" ? mean(rowLoss) : sum(rowLoss)));
    rowLoss.dispose();
  }
  record("softmax_cross_entropy", loss, [logits, labels], [logits, labels, stats], {
    kind,
    scale,
    perRowGrad: reduction === "none",
  });
  stats.dispose();
  return loss;
}

const crossEntropyBackward: BackwardRule<LossAttrs["softmax_cross_entropy"]> = (grad, node) => {
  const [logits, labels, stats] = node.saved;
  const { kind, scale, perRowGrad } = node.attrs;
  const targetGrad = kind === "probs" && node.inputs[1].requiresGrad;
  const [rows, classes] = logits.shape;
  const dlogits = Tensor.empty(logits.shape);
  const dlabels = targetGrad ? Tensor.empty(labels.shape) : null;
  if (logits.size > 0) {
    const vec4 = fourClassesPerLoad(classes);
    const [gx, gy] = grid1d(vec4 ? logits.size / 4 : logits.size);
    runtime().launch(crossEntropyBackwardKernel(kind, targetGrad, vec4), {
      buffers: [
        logits.storage,
        labels.storage,
        stats.storage,
        grad.storage,
        dlogits.storage,
        ...(dlabels ? [dlabels.storage] : []),
      ],
      params: {
        rows,
        classes,
        gx,
        blocks: 1,
        scale,
        neg_inf: -Infinity,
        nan: NaN,
        per_row_grad: perRowGrad ? 1 : 0,
      },
      groups: [gx, gy],
    });
  }
  return [dlogits, dlabels];
};

// ---- pointwise losses --------------------------------------------------------------------

function pointwise(
  op: string,
  kind: PointwiseLoss,
  pred: Tensor,
  target: Tensor,
  reduction: Reduction,
): Tensor {
  pred.assertAlive(op);
  target.assertAlive(op);
  checkReduction(op, reduction);
  if (pred.dtype !== "f32" || target.dtype !== "f32") {
    throw new Error(
      `${op}: pred has dtype ${pred.dtype} and target ${target.dtype}, expected f32 for both`,
    );
  }
  // No broadcasting: a [N, 1] prediction against a [N] target is almost always a bug.
  if (pred.shape.join() !== target.shape.join() || pred.rank !== target.rank) {
    throw new Error(
      `${op}: pred of shape ${formatShape(pred.shape)} and target of shape ` +
        `${formatShape(target.shape)} must have the same shape`,
    );
  }
  const elementLoss = Tensor.empty(pred.shape);
  if (pred.size > 0) {
    const [gx, gy] = grid1d(pred.size);
    runtime().launch(pointwiseLossKernel(kind), {
      buffers: [pred.storage, target.storage, elementLoss.storage],
      params: { n: pred.size, gx },
      groups: [gx, gy],
      flops: 4 * pred.size,
      outputs: [elementLoss],
      op: kind,
    });
  }
  record("pointwise_loss", elementLoss, [pred, target], [pred, target], { kind });
  if (reduction === "none") return elementLoss;
  return reduction === "mean" ? mean(elementLoss) : sum(elementLoss);
}

const pointwiseBackward: BackwardRule<LossAttrs["pointwise_loss"]> = (grad, node) => {
  const [pred, target] = node.saved;
  const targetGrad = node.inputs[1].requiresGrad;
  const dpred = Tensor.empty(pred.shape);
  const dtarget = targetGrad ? Tensor.empty(target.shape) : null;
  if (pred.size > 0) {
    const [gx, gy] = grid1d(pred.size);
    runtime().launch(pointwiseLossBackwardKernel(node.attrs.kind, targetGrad), {
      buffers: [
        pred.storage,
        target.storage,
        grad.storage,
        dpred.storage,
        ...(dtarget ? [dtarget.storage] : []),
      ],
      params: { n: pred.size, gx },
      groups: [gx, gy],
    });
  }
  return [dpred, dtarget];
};

/** Mean squared error (p − t)², averaged over all elements by default. */
export function mse(
  pred: Tensor,
  target: Tensor,
  { reduction = "mean" }: LossOptions = {},
): Tensor {
  return pointwise("mse", "mse", pred, target, reduction);
}

/** Mean absolute error |p − t|; its gradient at p = t is 0. */
export function mae(
  pred: Tensor,
  target: Tensor,
  { reduction = "mean" }: LossOptions = {},
): Tensor {
  return pointwise("mae", "mae", pred, target, reduction);
}

/**
 * Binary cross-entropy of probabilities, as Keras: p clipped to [1e-7, 1 − 1e-7] (no gradient
 * where the clip bites), −(t·log p + (1 − t)·log(1 − p)), mean over all elements by default.
 */
export function binaryCrossEntropy(
  prob: Tensor,
  target: Tensor,
  { reduction = "mean" }: LossOptions = {},
): Tensor {
  return pointwise("binaryCrossEntropy", "bce", prob, target, reduction);
}

/**
 * Binary cross-entropy of sigmoid(logits), in the stable form
 * max(x, 0) − x·t + log(1 + exp(−|x|)); gradient sigmoid(x) − t, exact at x = 0 too.
 */
export function binaryCrossEntropyWithLogits(
  logits: Tensor,
  target: Tensor,
  { reduction = "mean" }: LossOptions = {},
): Tensor {
  return pointwise("binaryCrossEntropyWithLogits", "bce_logits", logits, target, reduction);
}

// ---- overlap coefficients and losses (segmentation, composites) -------------------------------

export interface OverlapOptions {
  /** Added to numerator and denominator (default 1.0, the handout's; BJ and UD use 1e-6). */
  smooth?: number;
}

/** Σ p·t, Σ p and Σ t over every element: the whole batch flattened, as the students' Keras code. */
function overlapSums(op: string, pred: Tensor, target: Tensor) {
  pred.assertAlive(op);
  target.assertAlive(op);
  if (pred.size !== target.size || pred.dtype !== "f32" || target.dtype !== "f32") {
    throw new Error(
      `${op}: pred ${formatShape(pred.shape)} (${pred.dtype}) and target ` +
        `${formatShape(target.shape)} (${target.dtype}): expected f32 tensors with the same ` +
        "number of elements",
    );
  }
  const t = reshape(target, pred.shape);
  return { intersection: sum(mul(pred, t)), predicted: sum(pred), actual: sum(t) };
}

/**
 * Soft Dice coefficient 2|A∩B|/(|A|+|B|) over the whole batch flattened:
 * (2·Σ p·t + smooth) / (Σ p + Σ t + smooth), a 0-d tensor. Probabilities in, no threshold;
 * differentiable in `pred`.
 */
export function diceCoefficient(
  pred: Tensor,
  target: Tensor,
  { smooth = 1 }: OverlapOptions = {},
): Tensor {
  const { intersection, predicted, actual } = overlapSums("diceCoefficient", pred, target);
  return div(add(mul(intersection, 2), smooth), add(add(predicted, actual), smooth));
}

/**
 * Soft IoU (Jaccard) over the whole batch flattened: I = Σ p·t, U = Σ p + Σ t − I,
 * (I + smooth) / (U + smooth), a 0-d tensor.
 */
export function jaccardIndex(
  pred: Tensor,
  target: Tensor,
  { smooth = 1 }: OverlapOptions = {},
): Tensor {
  const { intersection, predicted, actual } = overlapSums("jaccardIndex", pred, target);
  const union = sub(add(predicted, actual), intersection);
  return div(add(intersection, smooth), add(union, smooth));
}

/** Dice loss = 1 − soft Dice over the batch (BJ, TP0). */
export function diceLoss(pred: Tensor, target: Tensor, options: OverlapOptions = {}): Tensor {
  return sub(1, diceCoefficient(pred, target, options));
}

/** TP0's `bce_dice`: Keras binary cross-entropy (mean over pixels) + (1 − soft Dice). */
export function bceDiceLoss(pred: Tensor, target: Tensor, options: OverlapOptions = {}): Tensor {
  return add(binaryCrossEntropy(pred, target), diceLoss(pred, target, options));
}

const lossRules: Rules<LossAttrs> = {
  softmax_cross_entropy: crossEntropyBackward,
  pointwise_loss: pointwiseBackward,
};
const record = recorder(lossRules);
