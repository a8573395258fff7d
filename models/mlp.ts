// The MNIST multilayer perceptrons of TP1 and TP2: Dense 512 ReLU → [BatchNorm] → Dropout →
// Dense 10. The models output logits (the fused softmax cross-entropy takes logits); `withSoftmax`
// gives the Keras-equivalent model ending in softmax, the form saved for the predict API.
import { Softmax } from "../engine/nn/activation.ts";
import { BatchNorm } from "../engine/nn/batchnorm.ts";
import { Dropout } from "../engine/nn/dropout.ts";
import { Linear } from "../engine/nn/linear.ts";
import type { Module } from "../engine/nn/module.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { Rng } from "../engine/random.ts";
import type { Tensor } from "../engine/tensor.ts";

export const MNIST_INPUTS = 784;
export const MNIST_CLASSES = 10;

export interface MlpOptions {
  /** Hidden units (default 512). */
  hidden?: number;
  /** Dropout rate after the hidden layer (default 0.2, TP1). */
  dropout?: number;
  /** BatchNormalization after the activated hidden layer (TP2 Ex4). */
  batchNorm?: boolean;
  /** Seeds the initial weights and the dropout masks. */
  seed?: number;
}

/**
 * 784 → Dense(hidden, ReLU) → [BatchNorm] → Dropout → Dense(10) logits. With the defaults this is
 * TP1's model: 401,920 + 5,130 = 407,050 parameters (BatchNorm adds 1,024 trainable and 1,024
 * non-trainable).
 */
export function mnistMlp(options: MlpOptions = {}): Sequential {
  const { hidden = 512, dropout = 0.2, batchNorm = false, seed = 0 } = options;
  const rng = new Rng(seed);
  const layers: Module[] = [new Linear(MNIST_INPUTS, hidden, { activation: "relu", rng })];
  if (batchNorm) layers.push(new BatchNorm(hidden));
  layers.push(new Dropout(dropout, { rng }));
  layers.push(new Linear(hidden, MNIST_CLASSES, { rng }));
  return new Sequential(...layers);
}

/** The Dense layers' kernels (what Keras' `kernel_regularizer` penalises; biases are not). */
export function kernels(model: Sequential): Tensor[] {
  return model.layers.filter((l): l is Linear => l instanceof Linear).map((l) => l.weight);
}

/**
 * The same layers (shared, not copied) followed by Softmax: outputs class probabilities, as the
 * Keras model with `activation="softmax"` does.
 */
export function withSoftmax(model: Sequential): Sequential {
  return new Sequential(...model.layers, new Softmax());
}
