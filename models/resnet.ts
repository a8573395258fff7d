// TP3 Exercise 2 (spec labs/TP1-TP4.md §4.3): the mini-ResNet — stem conv, three residual
// blocks (32; 64 stride 2; 64), global average pooling, Dense 10. Two variants:
//   plain (handout block with the UD/KR stem fix): 151,434 parameters;
//   batchNorm (BJ): stem and every conv followed by BatchNorm, 153,098 parameters (832 of them
//   the non-trainable moving statistics).
// The model outputs logits (the fused softmax cross-entropy takes logits); Keras' final softmax
// is `withSoftmax`-style post-processing.
import { booleanField, numberField, registerLayer } from "../engine/io/config.ts";
import { ReLU } from "../engine/nn/activation.ts";
import { BatchNorm } from "../engine/nn/batchnorm.ts";
import { Conv2D } from "../engine/nn/conv.ts";
import { Linear } from "../engine/nn/linear.ts";
import { Add } from "../engine/nn/merge.ts";
import { Graph } from "../engine/nn/module.ts";
import { GlobalAvgPool2D } from "../engine/nn/pool.ts";
import { globalRng, type Rng } from "../engine/random.ts";
import type { Tensor } from "../engine/tensor.ts";

export interface ResidualBlockOptions {
  /** Stride of the first conv (and of the projection shortcut). Default 1. */
  stride?: number;
  /** BJ's block: BatchNorm after each conv and on the projection. Default false (handout). */
  batchNorm?: boolean;
  rng?: Rng;
}

/**
 * relu(shortcut(x) + F(x)). Handout: F = Conv(3×3, stride, relu) → Conv(3×3), shortcut = x, or a
 * 1×1 stride-s conv when stride > 1. BatchNorm (BJ): F = Conv(stride) → BN → ReLU → Conv → BN,
 * shortcut projected (1×1 conv + BN) when the stride is not 1 or the channels change.
 */
export class ResidualBlock extends Graph {
  readonly stride: number;
  readonly batchNorm: boolean;
  readonly conv1: Conv2D;
  readonly bn1: BatchNorm | null = null;
  readonly relu1: ReLU | null = null;
  readonly conv2: Conv2D;
  readonly bn2: BatchNorm | null = null;
  readonly shortcut: Conv2D | null = null;
  readonly shortcutBn: BatchNorm | null = null;
  readonly add: Add;
  readonly relu: ReLU;

  constructor(
    readonly inChannels: number,
    readonly filters: number,
    options: ResidualBlockOptions = {},
  ) {
    super();
    const { stride = 1, batchNorm = false, rng = globalRng } = options;
    this.stride = stride;
    this.batchNorm = batchNorm;
    const project = batchNorm ? stride !== 1 || inChannels !== filters : stride > 1;
    if (!project && inChannels !== filters) {
      throw new Error(
        `ResidualBlock: the identity shortcut adds ${inChannels} input channels to ${filters} ` +
          "filters; the handout block projects only when stride > 1 (put a stem conv first, " +
          "or use batchNorm: true, which also projects when the channels change)",
      );
    }
    const same = { padding: "same" as const, rng };
    this.conv1 = this.addModule(
      "conv1",
      new Conv2D(inChannels, filters, 3, {
        ...same,
        strides: stride,
        activation: batchNorm ? undefined : "relu",
      }),
    );
    if (batchNorm) {
      this.bn1 = this.addModule("bn1", new BatchNorm(filters));
      this.relu1 = this.addModule("relu1", new ReLU());
    }
    this.conv2 = this.addModule("conv2", new Conv2D(filters, filters, 3, same));
    if (batchNorm) this.bn2 = this.addModule("bn2", new BatchNorm(filters));
    if (project) {
      this.shortcut = this.addModule(
        "shortcut",
        new Conv2D(inChannels, filters, 1, { ...same, strides: stride }),
      );
      if (batchNorm) this.shortcutBn = this.addModule("shortcut_bn", new BatchNorm(filters));
    }
    this.add = this.addModule("add", new Add());
    this.relu = this.addModule("relu", new ReLU());
  }

  forward(x: Tensor): Tensor {
    let main = this.conv1.forward(x);
    if (this.bn1 && this.relu1) main = this.relu1.forward(this.bn1.forward(main));
    main = this.conv2.forward(main);
    if (this.bn2) main = this.bn2.forward(main);
    let skip = x;
    if (this.shortcut) skip = this.shortcut.forward(x);
    if (this.shortcutBn) skip = this.shortcutBn.forward(skip);
    return this.relu.forward(this.add.forward(skip, main));
  }
}

export interface MiniResNetOptions {
  /** Channels of the input images (default 3, CIFAR-10). */
  inChannels?: number;
  /** Default 10. */
  classes?: number;
  /** BJ's variant with BatchNorm (default false: the handout's plain blocks). */
  batchNorm?: boolean;
  rng?: Rng;
}

/** Input(H, W, C) → stem Conv 32 → block(32) → block(64, stride 2) → block(64) → GAP → Dense. */
export class MiniResNet extends Graph {
  readonly inChannels: number;
  readonly classes: number;
  readonly batchNorm: boolean;
  readonly stem: Conv2D;
  readonly stemBn: BatchNorm | null = null;
  readonly stemRelu: ReLU | null = null;
  readonly blocks: ResidualBlock[];
  readonly pool: GlobalAvgPool2D;
  readonly head: Linear;

  constructor(options: MiniResNetOptions = {}) {
    super();
    const { inChannels = 3, classes = 10, batchNorm = false, rng = globalRng } = options;
    this.inChannels = inChannels;
    this.classes = classes;
    this.batchNorm = batchNorm;
    this.stem = this.addModule(
      "stem",
      new Conv2D(inChannels, 32, 3, {
        padding: "same",
        activation: batchNorm ? undefined : "relu",
        rng,
      }),
    );
    if (batchNorm) {
      this.stemBn = this.addModule("stem_bn", new BatchNorm(32));
      this.stemRelu = this.addModule("stem_relu", new ReLU());
    }
    const plan: [number, number, number][] = [[32, 32, 1], [32, 64, 2], [64, 64, 1]];
    this.blocks = plan.map(([from, to, stride], i) =>
      this.addModule(`block${i + 1}`, new ResidualBlock(from, to, { stride, batchNorm, rng }))
    );
    this.pool = this.addModule("pool", new GlobalAvgPool2D());
    this.head = this.addModule("head", new Linear(64, classes, { rng }));
  }

  /** x: [N, H, W, inChannels] → class logits [N, classes]. */
  forward(x: Tensor): Tensor {
    let h = this.stem.forward(x);
    if (this.stemBn && this.stemRelu) h = this.stemRelu.forward(this.stemBn.forward(h));
    for (const block of this.blocks) h = block.forward(h);
    return this.head.forward(this.pool.forward(h));
  }
}

registerLayer("ResidualBlock", ResidualBlock, {
  config: (m) => ({
    inChannels: m.inChannels,
    filters: m.filters,
    stride: m.stride,
    batchNorm: m.batchNorm,
  }),
  build: (c, _children, rng) =>
    new ResidualBlock(numberField(c, "inChannels"), numberField(c, "filters"), {
      stride: numberField(c, "stride", 1),
      batchNorm: booleanField(c, "batchNorm", false),
      rng,
    }),
});

registerLayer("MiniResNet", MiniResNet, {
  config: (m) => ({ inChannels: m.inChannels, classes: m.classes, batchNorm: m.batchNorm }),
  build: (c, _children, rng) =>
    new MiniResNet({
      inChannels: numberField(c, "inChannels", 3),
      classes: numberField(c, "classes", 10),
      batchNorm: booleanField(c, "batchNorm", false),
      rng,
    }),
});
