// TP4 Exercise 1 (spec labs/TP1-TP4.md §5.2): the handout U-Net. Encoder levels of
// conv_block(f) = [Conv 3×3 same → BatchNorm → ReLU] × 2 with f = base·2^level, each followed by
// MaxPool 2; a conv_block(base·2^depth) bottleneck; decoder levels of Conv2DTranspose(2×2,
// stride 2, same) → Concatenate [upsampled, skip] → conv_block; a 1×1 sigmoid conv head.
// Handout sizes (base 32, depth 3, 128×128×1): 1,930,657 parameters, 2,816 of them the
// BatchNorm moving statistics. KR's variant is base 16 (484,561), TP0's base 32 at depth 4
// (7,771,297). The head outputs probabilities, what Dice/IoU and the Keras BCE read.
import { numberField, registerLayer } from "../engine/io/config.ts";
import { ReLU } from "../engine/nn/activation.ts";
import { BatchNorm } from "../engine/nn/batchnorm.ts";
import { Conv2D, Conv2DTranspose } from "../engine/nn/conv.ts";
import { Concatenate } from "../engine/nn/merge.ts";
import { Graph } from "../engine/nn/module.ts";
import { MaxPool2D } from "../engine/nn/pool.ts";
import { globalRng, type Rng } from "../engine/random.ts";
import { formatShape, type Tensor } from "../engine/tensor.ts";

/** The handout's conv_block(f): [Conv2D(f, 3×3, same) → BatchNorm → ReLU] × 2. */
export class ConvBlock extends Graph {
  readonly conv1: Conv2D;
  readonly bn1: BatchNorm;
  readonly relu1: ReLU;
  readonly conv2: Conv2D;
  readonly bn2: BatchNorm;
  readonly relu2: ReLU;

  constructor(readonly inChannels: number, readonly filters: number, rng: Rng = globalRng) {
    super();
    this.conv1 = this.addModule(
      "conv1",
      new Conv2D(inChannels, filters, 3, { padding: "same", rng }),
    );
    this.bn1 = this.addModule("bn1", new BatchNorm(filters));
    this.relu1 = this.addModule("relu1", new ReLU());
    this.conv2 = this.addModule("conv2", new Conv2D(filters, filters, 3, { padding: "same", rng }));
    this.bn2 = this.addModule("bn2", new BatchNorm(filters));
    this.relu2 = this.addModule("relu2", new ReLU());
  }

  forward(x: Tensor): Tensor {
    const h = this.relu1.forward(this.bn1.forward(this.conv1.forward(x)));
    return this.relu2.forward(this.bn2.forward(this.conv2.forward(h)));
  }
}

export interface UNetOptions {
  /** Channels of the input images (default 1). */
  inChannels?: number;
  /** Filters of the first level; level l has base·2^l (default 32, the handout). */
  baseFilters?: number;
  /** Poolings (and up-samplings); default 3. Inputs must divide by 2^depth. */
  depth?: number;
  /** Output channels, each a sigmoid probability (default 1). */
  outChannels?: number;
  rng?: Rng;
}

interface DecoderLevel {
  up: Conv2DTranspose;
  concat: Concatenate;
  block: ConvBlock;
}

/** x [N, H, W, inChannels] → per-pixel probabilities [N, H, W, outChannels]. */
export class UNet extends Graph {
  readonly inChannels: number;
  readonly baseFilters: number;
  readonly depth: number;
  readonly outChannels: number;
  /** Encoder levels, top first: a conv block, then the pooling below it. */
  readonly encoder: { block: ConvBlock; pool: MaxPool2D }[] = [];
  readonly bottleneck: ConvBlock;
  /** Decoder levels, bottom first (the order they run). */
  readonly decoder: DecoderLevel[] = [];
  readonly head: Conv2D;

  constructor(options: UNetOptions = {}) {
    super();
    const { inChannels = 1, baseFilters = 32, depth = 3, outChannels = 1, rng = globalRng } =
      options;
    if (!Number.isInteger(depth) || depth < 1) {
      throw new Error(`UNet: depth ${depth}, expected an integer ≥ 1`);
    }
    this.inChannels = inChannels;
    this.baseFilters = baseFilters;
    this.depth = depth;
    this.outChannels = outChannels;
    const filters = (level: number) => baseFilters * 2 ** level;
    // Modules are added in the order they run, which is the order summary() lists them in.
    let channels = inChannels;
    for (let level = 0; level < depth; level++) {
      const n = level + 1;
      const block = this.addModule(`enc${n}`, new ConvBlock(channels, filters(level), rng));
      const pool = this.addModule(`pool${n}`, new MaxPool2D(2));
      this.encoder.push({ block, pool });
      channels = filters(level);
    }
    this.bottleneck = this.addModule("bottleneck", new ConvBlock(channels, filters(depth), rng));
    channels = filters(depth);
    for (let level = depth - 1; level >= 0; level--) {
      const n = level + 1;
      const f = filters(level);
      const up = this.addModule(
        `up${n}`,
        new Conv2DTranspose(channels, f, 2, { strides: 2, padding: "same", rng }),
      );
      const concat = this.addModule(`concat${n}`, new Concatenate(-1));
      const block = this.addModule(`dec${n}`, new ConvBlock(2 * f, f, rng));
      this.decoder.push({ up, concat, block });
      channels = f;
    }
    this.head = this.addModule(
      "head",
      new Conv2D(channels, outChannels, 1, { activation: "sigmoid", rng }),
    );
  }

  forward(x: Tensor): Tensor {
    const scale = 2 ** this.depth;
    if (x.rank !== 4 || x.shape[1] % scale !== 0 || x.shape[2] % scale !== 0) {
      throw new Error(
        `UNet: input ${formatShape(x.shape)}, expected [batch, height, width, ` +
          `${this.inChannels}] with height and width multiples of 2^depth = ${scale}`,
      );
    }
    const skips: Tensor[] = [];
    let h = x;
    for (const { block, pool } of this.encoder) {
      const features = block.forward(h);
      skips.push(features);
      h = pool.forward(features);
    }
    h = this.bottleneck.forward(h);
    for (const { up, concat, block } of this.decoder) {
      h = block.forward(concat.forward(up.forward(h), skips.pop()!));
    }
    return this.head.forward(h);
  }
}

registerLayer("ConvBlock", ConvBlock, {
  config: (m) => ({ inChannels: m.inChannels, filters: m.filters }),
  build: (c, _children, rng) =>
    new ConvBlock(numberField(c, "inChannels"), numberField(c, "filters"), rng),
});

registerLayer("UNet", UNet, {
  config: (m) => ({
    inChannels: m.inChannels,
    baseFilters: m.baseFilters,
    depth: m.depth,
    outChannels: m.outChannels,
  }),
  build: (c, _children, rng) =>
    new UNet({
      inChannels: numberField(c, "inChannels", 1),
      baseFilters: numberField(c, "baseFilters", 32),
      depth: numberField(c, "depth", 3),
      outChannels: numberField(c, "outChannels", 1),
      rng,
    }),
});
