// TP3 Exercise 1 (spec labs/TP1-TP4.md §4.2): the classic CNN — Conv 32 (3×3, same, ReLU) →
// MaxPool 2 → Conv 64 (3×3, same, ReLU) → MaxPool 2 → Flatten → Dense 512 ReLU → Dense 10.
// On CIFAR-10 (32×32×3): 896 + 18,496 + 2,097,664 + 5,130 = 2,122,186 parameters; the input
// shape is a parameter, so 28×28×1 Fashion-MNIST builds the same stack (1,630,090). The model
// outputs logits (the fused softmax cross-entropy takes logits); `withSoftmax` (models/mlp.ts)
// gives Keras' softmax-ended model.
import { Conv2D } from "../engine/nn/conv.ts";
import { Flatten } from "../engine/nn/flatten.ts";
import { Linear } from "../engine/nn/linear.ts";
import { MaxPool2D } from "../engine/nn/pool.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { globalRng, type Rng } from "../engine/random.ts";

export interface CnnOptions {
  /** [height, width, channels] of one image (default [32, 32, 3], CIFAR-10). */
  inputShape?: readonly [number, number, number];
  /** Default 10. */
  classes?: number;
  rng?: Rng;
}

export function classicCnn(options: CnnOptions = {}): Sequential {
  const { inputShape = [32, 32, 3], classes = 10, rng = globalRng } = options;
  const [height, width, channels] = inputShape;
  // Two "valid" 2×2 poolings: each halves the map, dropping an odd last row/column.
  const flat = Math.floor(Math.floor(height / 2) / 2) * Math.floor(Math.floor(width / 2) / 2) * 64;
  const same = { padding: "same" as const, activation: "relu" as const, rng };
  return new Sequential(
    new Conv2D(channels, 32, 3, same),
    new MaxPool2D(2),
    new Conv2D(32, 64, 3, same),
    new MaxPool2D(2),
    new Flatten(),
    new Linear(flat, 512, { activation: "relu", rng }),
    new Linear(512, classes, { rng }),
  );
}
