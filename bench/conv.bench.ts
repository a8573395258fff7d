// Convolutions at the labs' shapes, each pass alone (forward, dX, dW) and a training step's
// forward + backward, next to the matmul of the same GEMM (M = N·OH·OW, N = out,
// K = kh·kw·in) in the same run: the conv's share of the matmul's GFLOP/s is the figure that
// matters (the targets: forward ≥ 80 %, dX and dW ≥ 60 %).
import { noGrad } from "../engine/autograd.ts";
import {
  conv2d,
  conv2dBackpropFilter,
  conv2dBackpropInput,
  conv2dTranspose,
  conv3d,
  convFlops,
  convGeometry,
} from "../engine/ops/conv.ts";
import { binaryCrossEntropy, softmaxCrossEntropy } from "../engine/ops/loss.ts";
import { matmul } from "../engine/ops/matmul.ts";
import { Adam } from "../engine/optim/optimizers.ts";
import { sizeOf, Tensor, tidy } from "../engine/tensor.ts";
import { classicCnn } from "../models/cnn.ts";
import { MiniResNet } from "../models/resnet.ts";
import { UNet } from "../models/unet.ts";
import { benchKernel } from "./lib/kernel.ts";
import { matmulWork } from "./lib/work.ts";

const F32 = 4;

interface Layer {
  name: string;
  x: number[];
  kernel: number[];
  strides?: number;
}

// [N, H, W, in] (or [N, D, H, W, in]) and the kernel, "same" padding throughout.
const LAYERS: Layer[] = [
  { name: "CIFAR CNN conv1", x: [64, 32, 32, 3], kernel: [3, 3, 3, 32] },
  { name: "CIFAR CNN conv2", x: [64, 16, 16, 32], kernel: [3, 3, 32, 64] },
  { name: "reference layer", x: [32, 32, 32, 16], kernel: [3, 3, 16, 32] },
  { name: "U-Net 128²", x: [4, 128, 128, 32], kernel: [3, 3, 32, 32] },
  { name: "U-Net 64²", x: [4, 64, 64, 64], kernel: [3, 3, 64, 64] },
  { name: "U-Net 16²", x: [4, 16, 16, 256], kernel: [3, 3, 256, 256] },
  { name: "ResNet stride 2", x: [64, 16, 16, 32], kernel: [3, 3, 32, 64], strides: 2 },
  { name: "Conv3D 32³", x: [8, 32, 32, 32, 1], kernel: [3, 3, 3, 1, 16] },
  { name: "Conv3D 16³", x: [8, 16, 16, 16, 16], kernel: [3, 3, 3, 16, 32] },
];

function geometryOf(layer: Layer) {
  const rank = layer.x.length - 2;
  const s = layer.strides ?? 1;
  const out = layer.x.slice(1, rank + 1).map((d) => Math.ceil(d / s));
  const cin = layer.x[rank + 1], cout = layer.kernel[rank + 1];
  const taps = sizeOf(layer.kernel.slice(0, rank));
  const m = layer.x[0] * sizeOf(out);
  return { rank, out, cin, cout, taps, m, k: taps * cin, yShape: [layer.x[0], ...out, cout] };
}

for (const layer of LAYERS) {
  const g = geometryOf(layer);
  const options = { padding: "same" as const, strides: layer.strides ?? 1 };
  const shape = `${JSON.stringify(layer.x)} * ${JSON.stringify(layer.kernel)}`;
  const flops = convFlops(convGeometry(layer.x, layer.kernel, options));
  const [xBytes, kBytes, yBytes] = [layer.x, layer.kernel, g.yShape].map((s) => F32 * sizeOf(s));
  const conv = g.rank === 3 ? conv3d : conv2d;
  const make = () => ({
    x: Tensor.uniform(layer.x, -1, 1).keep(),
    k: Tensor.uniform(layer.kernel, -0.1, 0.1).keep(),
    dy: Tensor.uniform(g.yShape, -1, 1).keep(),
  });
  benchKernel({
    kernel: `conv ${layer.name}`,
    variant: "forward",
    shape,
    work: { flops, bytes: xBytes + kBytes + yBytes },
    setup: () => {
      const { x, k } = make();
      return () => noGrad(() => conv(x, k, options)).dispose();
    },
  });
  if (g.rank === 2) {
    benchKernel({
      kernel: `conv ${layer.name}`,
      variant: "dX",
      shape,
      work: { flops, bytes: xBytes + kBytes + yBytes },
      setup: () => {
        const { x, k, dy } = make();
        return () => conv2dBackpropInput(dy, k, x.shape, options).dispose();
      },
    });
    benchKernel({
      kernel: `conv ${layer.name}`,
      variant: "dW",
      shape,
      work: { flops, bytes: xBytes + kBytes + yBytes },
      setup: () => {
        const { x, k, dy } = make();
        return () => conv2dBackpropFilter(x, dy, k.shape, options).dispose();
      },
    });
  }
  benchKernel({
    kernel: `conv ${layer.name}`,
    variant: "forward+backward",
    shape,
    work: { flops: 3 * flops, bytes: 3 * (xBytes + kBytes + yBytes) },
    setup: () => {
      const { x, k, dy } = make();
      x.requireGrad();
      k.requireGrad();
      return () => {
        tidy(() => conv(x, k, options).backward(dy));
        for (const t of [x, k]) {
          t.grad?.dispose();
          t.grad = null;
        }
      };
    },
  });
  // The same GEMM as a plain matmul: the yardstick for the conv's GFLOP/s.
  benchKernel({
    kernel: `conv ${layer.name}`,
    variant: "matmul equivalent",
    shape: `${g.m}×${g.cout}×${g.k}`,
    work: matmulWork(g.m, g.cout, g.k),
    setup: () => {
      const a = Tensor.uniform([g.m, g.k], -1, 1).keep();
      const b = Tensor.uniform([g.k, g.cout], -1, 1).keep();
      return () => matmul(a, b).dispose();
    },
  });
}

// The U-Net's up-sampling: Conv2DTranspose(128, 2×2, stride 2, same) from the 16² bottleneck.
benchKernel({
  kernel: "conv2dTranspose U-Net up 16²→32²",
  variant: "forward",
  shape: "[4,16,16,256] * [2,2,128,256]",
  // The conv it transposes maps [4, 32, 32, 128] to the 16² input.
  work: {
    flops: convFlops(
      convGeometry([4, 32, 32, 128], [2, 2, 128, 256], { strides: 2, padding: "same" }),
    ),
  },
  setup: () => {
    const x = Tensor.uniform([4, 16, 16, 256], -1, 1).keep();
    const k = Tensor.uniform([2, 2, 128, 256], -0.1, 0.1).keep();
    return () => noGrad(() => conv2dTranspose(x, k, { strides: 2, padding: "same" })).dispose();
  },
});

// Whole training steps of the labs' conv models (forward, loss, backward, Adam), one sync each
// region like every bench here: their time against the conv rows above says how much of a
// step is convolution.
const STEPS: { name: string; shape: string; build: () => () => void }[] = [
  {
    name: "CIFAR CNN train step (Adam)",
    shape: "batch 64, 32×32×3",
    build: () => {
      const model = classicCnn({ inputShape: [32, 32, 3], classes: 10 });
      const optimizer = new Adam(model.parameters());
      const x = Tensor.uniform([64, 32, 32, 3], 0, 1).keep();
      const y = Tensor.from(Array.from({ length: 64 }, (_, i) => i % 10), [64], "i32").keep();
      return () => trainStep(() => softmaxCrossEntropy(model.forward(x), y), optimizer);
    },
  },
  ...[false, true].map((batchNorm) => ({
    name: `mini-ResNet${batchNorm ? " + BatchNorm" : ""} train step (Adam)`,
    shape: "batch 64, 28×28×1",
    build: () => {
      const model = new MiniResNet({ inChannels: 1, batchNorm });
      const optimizer = new Adam(model.parameters());
      const x = Tensor.uniform([64, 28, 28, 1], 0, 1).keep();
      const y = Tensor.from(Array.from({ length: 64 }, (_, i) => i % 10), [64], "i32").keep();
      return () => trainStep(() => softmaxCrossEntropy(model.forward(x), y), optimizer);
    },
  })),
  {
    name: "U-Net train step (Adam, BCE)",
    shape: "batch 4, 128×128×1",
    build: () => {
      const model = new UNet({ inChannels: 1 });
      const optimizer = new Adam(model.parameters());
      const x = Tensor.uniform([4, 128, 128, 1], 0, 1).keep();
      const mask = Tensor.uniform([4, 128, 128, 1], 0, 1).keep();
      return () => trainStep(() => binaryCrossEntropy(model.forward(x), mask), optimizer);
    },
  },
];

function trainStep(loss: () => Tensor, optimizer: Adam): void {
  tidy(() => {
    const l = loss();
    optimizer.zeroGrad();
    l.backward();
    optimizer.step();
  });
}

for (const step of STEPS) {
  benchKernel({ kernel: step.name, shape: step.shape, work: {}, setup: step.build });
}
