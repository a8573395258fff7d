// The TP3/TP4 conv models: parameter counts pinned to the Keras figures of the spec (labs/TP1-TP4.md
// §4.2, §4.3, §5.2, §5.4), Keras-style summaries of the graphs (InputLayer row, "Connected to"),
// checkpoint names, and a forward/backward step on tiny inputs whose loss falls.
import assert from "node:assert/strict";
import { loadModel, saveModel } from "../engine/io/checkpoint.ts";
import type { Module } from "../engine/nn/module.ts";
import { summary } from "../engine/nn/summary.ts";
import { binaryCrossEntropy, softmaxCrossEntropy } from "../engine/ops/loss.ts";
import { SGD } from "../engine/optim/optimizers.ts";
import { Rng } from "../engine/random.ts";
import { noGrad } from "../engine/autograd.ts";
import { type Shape, sizeOf, Tensor, tidy } from "../engine/tensor.ts";
import { classicCnn } from "../models/cnn.ts";
import { conv3dModel } from "../models/conv3d.ts";
import { MiniResNet, ResidualBlock } from "../models/resnet.ts";
import { UNet } from "../models/unet.ts";
import { setup, testRng } from "./helpers.ts";

await setup();

function counts(model: Module): [number, number] {
  return [model.trainableCount() + model.nonTrainableCount(), model.nonTrainableCount()];
}

Deno.test("parameter counts match Keras: CNN 2,122,186, mini-ResNets 151,434 / 153,098, U-Net 1,930,657, Conv3D 30,689", () => {
  const cases: [string, () => Module, [number, number]][] = [
    ["TP3 CNN, CIFAR-10 32×32×3", () => classicCnn(), [2_122_186, 0]],
    ["TP3 CNN, Fashion-MNIST 28×28×1", () => classicCnn({ inputShape: [28, 28, 1] }), [
      1_630_090,
      0,
    ]],
    ["mini-ResNet, handout block + stem (UD, KR)", () => new MiniResNet(), [151_434, 0]],
    ["mini-ResNet with BatchNorm (BJ)", () => new MiniResNet({ batchNorm: true }), [
      153_098,
      832,
    ]],
    ["U-Net, handout (base 32, depth 3)", () => new UNet(), [1_930_657, 2_816]],
    ["U-Net, KR's base 16", () => new UNet({ baseFilters: 16 }), [484_561, 1_408]],
    ["U-Net, TP0's depth 4", () => new UNet({ depth: 4 }), [7_771_297, 5_888]],
    ["Conv3D block (32³×1)", () => conv3dModel(), [30_689, 0]],
  ];
  for (const [what, make, expected] of cases) {
    const model = make();
    assert.deepEqual(counts(model), expected, what);
    model.dispose();
  }
});

/** A row as one line: `name (Type) shape params <- inputs`. */
function rowLines(model: Module, inputShape: Shape): string[] {
  return summary(model, inputShape).rows.map((r) =>
    `${r.name} (${r.type}) ${JSON.stringify(r.outputShape)} ${r.params}` +
    (r.connectedTo.length ? ` <- ${r.connectedTo.join(", ")}` : "")
  );
}

Deno.test("summary lists a ResNet's layers with Keras shapes, counts and skip connections", () => {
  const model = new MiniResNet();
  assert.deepEqual(rowLines(model, [32, 32, 3]), [
    "input (InputLayer) [null,32,32,3] 0",
    "stem (Conv2D) [null,32,32,32] 896 <- input[0][0]",
    "block1.conv1 (Conv2D) [null,32,32,32] 9248 <- stem[0][0]",
    "block1.conv2 (Conv2D) [null,32,32,32] 9248 <- block1.conv1[0][0]",
    "block1.add (Add) [null,32,32,32] 0 <- stem[0][0], block1.conv2[0][0]",
    "block1.relu (ReLU) [null,32,32,32] 0 <- block1.add[0][0]",
    "block2.conv1 (Conv2D) [null,16,16,64] 18496 <- block1.relu[0][0]",
    "block2.conv2 (Conv2D) [null,16,16,64] 36928 <- block2.conv1[0][0]",
    "block2.shortcut (Conv2D) [null,16,16,64] 2112 <- block1.relu[0][0]",
    "block2.add (Add) [null,16,16,64] 0 <- block2.shortcut[0][0], block2.conv2[0][0]",
    "block2.relu (ReLU) [null,16,16,64] 0 <- block2.add[0][0]",
    "block3.conv1 (Conv2D) [null,16,16,64] 36928 <- block2.relu[0][0]",
    "block3.conv2 (Conv2D) [null,16,16,64] 36928 <- block3.conv1[0][0]",
    "block3.add (Add) [null,16,16,64] 0 <- block2.relu[0][0], block3.conv2[0][0]",
    "block3.relu (ReLU) [null,16,16,64] 0 <- block3.add[0][0]",
    "pool (GlobalAvgPool2D) [null,64] 0 <- block3.relu[0][0]",
    "head (Linear) [null,10] 650 <- pool[0][0]",
  ]);
  const s = summary(model, [32, 32, 3], { name: "mini_resnet" });
  assert.equal(s.sequential, false);
  const lines = s.text.split("\n");
  assert.match(lines[2], /┃ Layer \(type\) +┃ Output Shape +┃ Param # ┃ Connected to +┃/);
  // A merge row is as tall as its inputs: one connection per line.
  const add = lines.findIndex((l) => l.includes("block1.add (Add)"));
  assert.match(
    lines[add],
    /│ block1\.add \(Add\) +│ \(None, 32, 32, 32\) +│ +0 │ stem\[0\]\[0\] +│/,
  );
  assert.match(lines[add + 1], /^│ +│ +│ +│ block1\.conv2\[0\]\[0\] +│$/);
  assert.deepEqual(lines.slice(-3), [
    " Total params: 151,434 (591.54 KB)",
    " Trainable params: 151,434 (591.54 KB)",
    " Non-trainable params: 0 (0.00 B)",
  ]);
  model.dispose();
});

Deno.test("summary of the handout U-Net at 128×128×1: 59 rows, [upsampled, skip] concatenations", () => {
  const model = new UNet();
  const s = summary(model, [128, 128, 1], { name: "unet" });
  // Input + 4 blocks × 6 + 3 poolings on the way down; 3 × (up, concat, 6) on the way up; head.
  assert.equal(s.rows.length, 1 + 4 * 6 + 3 + 3 * 8 + 1);
  const row = (name: string) => s.rows.find((r) => r.name === name)!;
  assert.deepEqual(row("enc1.conv1").outputShape, [null, 128, 128, 32]);
  assert.deepEqual(row("pool3").outputShape, [null, 16, 16, 128]);
  assert.deepEqual(row("bottleneck.conv2").outputShape, [null, 16, 16, 256]);
  assert.deepEqual(row("bottleneck.conv2").params, 590_080);
  assert.deepEqual(row("up3").outputShape, [null, 32, 32, 128]);
  assert.deepEqual(row("up3").params, 131_200);
  assert.deepEqual(row("concat3").outputShape, [null, 32, 32, 256]);
  assert.deepEqual(row("concat3").connectedTo, ["up3[0][0]", "enc3.relu2[0][0]"]);
  assert.deepEqual(row("concat1").connectedTo, ["up1[0][0]", "enc1.relu2[0][0]"]);
  assert.deepEqual(row("dec3.bn1").params, 512);
  assert.deepEqual(row("head").outputShape, [null, 128, 128, 1]);
  assert.equal(s.rows.reduce((n, r) => n + r.params, 0), 1_930_657);
  assert.deepEqual([s.total, s.trainable, s.nonTrainable], [1_930_657, 1_927_841, 2_816]);
  assert.ok(s.text.endsWith(" Non-trainable params: 2,816 (11.00 KB)"));
  model.dispose();
});

Deno.test("summary of the stacks (CNN, Conv3D) stays Keras' Sequential table", () => {
  const cnn = classicCnn();
  assert.deepEqual(rowLines(cnn, [32, 32, 3]), [
    "0 (Conv2D) [null,32,32,32] 896 <- input[0][0]",
    "1 (MaxPool2D) [null,16,16,32] 0 <- 0[0][0]",
    "2 (Conv2D) [null,16,16,64] 18496 <- 1[0][0]",
    "3 (MaxPool2D) [null,8,8,64] 0 <- 2[0][0]",
    "4 (Flatten) [null,4096] 0 <- 3[0][0]",
    "5 (Linear) [null,512] 2097664 <- 4[0][0]",
    "6 (Linear) [null,10] 5130 <- 5[0][0]",
  ]);
  const volume = conv3dModel({ inputShape: [16, 16, 16, 1] });
  const s = summary(volume, [16, 16, 16, 1]);
  assert.equal(s.sequential, true);
  assert.ok(!s.text.includes("Connected to"));
  assert.deepEqual(s.rows.map((r) => [r.type, r.outputShape]), [
    ["Conv3D", [null, 16, 16, 16, 16]],
    ["MaxPool3D", [null, 8, 8, 8, 16]],
    ["Conv3D", [null, 8, 8, 8, 32]],
    ["MaxPool3D", [null, 4, 4, 4, 32]],
    ["Flatten", [null, 2048]],
    ["Linear", [null, 1]],
  ]);
  cnn.dispose();
  volume.dispose();
});

Deno.test("graph models checkpoint under PyTorch-style paths and reload to the same outputs", async () => {
  const { seed } = testRng();
  const model = new UNet({ baseFilters: 2, rng: new Rng(seed) });
  const names = [...model.namedParameters(), ...model.namedBuffers()].map(([name]) => name);
  for (
    const name of [
      "enc1.conv1.weight",
      "enc1.bn1.weight",
      "bottleneck.conv2.bias",
      "up3.weight",
      "dec1.conv2.weight",
      "head.bias",
      "enc2.bn2.running_mean",
      "dec3.bn1.running_var",
    ]
  ) {
    assert.ok(names.includes(name), `${name} in ${names.join(", ")}`);
  }
  model.eval();
  const loaded = loadModel(await saveModel(model));
  loaded.eval();
  const x = Tensor.uniform([1, 8, 8, 1], 0, 1, new Rng(seed));
  const [a, b] = noGrad(() => [model.forward(x), loaded.forward(x) as Tensor]);
  assert.deepEqual(Array.from(await b.data()), Array.from(await a.data()), `seed ${seed}`);
  for (const t of [model, loaded, x, a, b]) t.dispose();
});

/**
 * One SGD step on a fixed batch: every parameter gets a finite, non-zero gradient of its own
 * shape, and the loss on the same batch falls.
 */
/**
 * Whether `name` is the bias of a layer a BatchNorm follows (convN → bnN, name → name_bn). The
 * BatchNorm subtracts the batch mean, so that bias's gradient is zero up to rounding (exactly
 * zero for some inputs).
 */
function feedsBatchNorm(name: string, names: Set<string>): boolean {
  const match = name.match(/^(.*?)([^.]+)\.bias$/);
  if (!match) return false;
  const [, prefix, layer] = match;
  const bn = layer.startsWith("conv") ? `${prefix}bn${layer.slice(4)}` : null;
  return (bn !== null && names.has(`${bn}.bias`)) || names.has(`${prefix}${layer}_bn.bias`);
}

async function checkStep(
  what: string,
  model: Module,
  input: Shape,
  loss: (y: Tensor) => Tensor,
  rng: Rng,
): Promise<void> {
  const x = Tensor.uniform(input, 0, 1, rng);
  const lossOf = () => tidy(() => loss(model.forward(x)));
  const before = lossOf();
  before.backward();
  const names = new Set(model.namedParameters().map(([name]) => name));
  for (const [name, p] of model.namedParameters()) {
    assert.ok(p.grad, `${what}: ${name} has no gradient`);
    assert.deepEqual(p.grad.shape, p.shape, `${what}: ${name}`);
    const g = await p.grad.data();
    assert.ok(g.every(Number.isFinite), `${what}: ${name} gradient is not finite`);
    if (feedsBatchNorm(name, names)) {
      assert.ok(g.every((v) => Math.abs(v) < 1e-4), `${what}: ${name} gradient is not ≈ 0`);
    } else {
      assert.ok(g.some((v) => v !== 0), `${what}: ${name} gradient is all 0`);
    }
  }
  // A small step along −g: at 0.05 a U-Net (BatchNorm in training mode) overshot on seed 885426.
  const optimizer = new SGD(model.parameters(), { lr: 0.01 });
  optimizer.step();
  model.zeroGrad();
  const after = noGrad(lossOf);
  const [l0, l1] = [await before.item(), await after.item()];
  assert.ok(l1 < l0, `${what}: loss ${l0} → ${l1} after one step`);
  for (const t of [optimizer, model, x, before, after]) t.dispose();
}

Deno.test("each conv model takes a forward/backward step on tiny inputs and its loss falls", async () => {
  const { rng, seed } = testRng();
  const labels = (n: number, classes: number) =>
    Tensor.from(Array.from({ length: n }, () => rng.int(classes)), [n], "i32");
  const mask = (shape: Shape) =>
    Tensor.from(Array.from({ length: sizeOf(shape) }, () => rng.int(2)), shape);
  const cnnLabels = labels(2, 10);
  const cases: [string, Module, Shape, (y: Tensor) => Tensor][] = [
    [
      "CNN",
      classicCnn({ inputShape: [8, 8, 3], rng }),
      [2, 8, 8, 3],
      (y) => softmaxCrossEntropy(y, cnnLabels),
    ],
    [
      "mini-ResNet",
      new MiniResNet({ rng }),
      [2, 8, 8, 3],
      (y) => softmaxCrossEntropy(y, cnnLabels),
    ],
    [
      "mini-ResNet BN",
      new MiniResNet({ batchNorm: true, rng }),
      [2, 8, 8, 3],
      (y) => softmaxCrossEntropy(y, cnnLabels),
    ],
  ];
  const segmentation = mask([2, 8, 8, 1]);
  const volumes = mask([2, 1]);
  cases.push(
    [
      "U-Net",
      new UNet({ baseFilters: 4, rng }),
      [2, 8, 8, 1],
      (y) => binaryCrossEntropy(y, segmentation),
    ],
    [
      "Conv3D",
      conv3dModel({ inputShape: [8, 8, 8, 1], filters: 4, rng }),
      [2, 8, 8, 8, 1],
      (y) => binaryCrossEntropy(y, volumes),
    ],
  );
  for (const [what, model, input, loss] of cases) {
    await checkStep(`${what} (seed ${seed})`, model, input, loss, rng);
  }
  for (const t of [cnnLabels, segmentation, volumes]) t.dispose();
});

Deno.test("model construction and input errors name the model and what it expects", () => {
  assert.throws(
    () => new ResidualBlock(3, 32),
    /ResidualBlock: the identity shortcut adds 3 input channels to 32 filters; the handout block projects only when stride > 1/,
  );
  const unet = new UNet({ baseFilters: 2 });
  assert.throws(
    () => unet.forward(Tensor.zeros([1, 12, 8, 1])),
    /UNet: input \[1, 12, 8, 1\], expected \[batch, height, width, 1\] with height and width multiples of 2\^depth = 8/,
  );
  assert.throws(() => new UNet({ depth: 0 }), /UNet: depth 0, expected an integer ≥ 1/);
  unet.dispose();
});
