// Conv, pooling and merge layers: Keras output shapes ("same"/"valid", strides, dilation,
// transpose), Glorot-uniform init statistics, the layer's weights reaching the op (against the
// float64 reference), TensorFlow's padding pinned by hand-computed fixtures, config round trips,
// and errors that name the layer.
import assert from "node:assert/strict";
import { buildModel, modelConfig } from "../engine/io/config.ts";
import { loadModelState } from "../engine/io/checkpoint.ts";
import { Conv2D, Conv2DTranspose, Conv3D } from "../engine/nn/conv.ts";
import { Add, Concatenate } from "../engine/nn/merge.ts";
import type { AnyModule } from "../engine/nn/module.ts";
import { AvgPool2D, AvgPool3D, GlobalAvgPool2D, MaxPool2D, MaxPool3D } from "../engine/nn/pool.ts";
import { Rng } from "../engine/random.ts";
import { type Shape, sizeOf, Tensor } from "../engine/tensor.ts";
import { assertClose, randomData, type Ref, ref, setup, testRng } from "./helpers.ts";
import { convRef, convTransposeRef } from "./reference/conv.ts";

await setup();

/** Sets every parameter of a layer from host values (name → values), in its own shapes. */
function setWeights(layer: AnyModule, values: Record<string, ArrayLike<number>>): void {
  const shapes = new Map(layer.namedParameters());
  loadModelState(
    layer,
    Object.fromEntries(
      Object.entries(values).map(([name, data]) => [name, {
        dtype: "F32" as const,
        shape: [...shapes.get(name)!.shape],
        data: Float32Array.from(data),
      }]),
    ),
  );
}

function outShape(layer: AnyModule, inShape: Shape): number[] {
  const x = Tensor.zeros(inShape);
  const y = layer.forward(x) as Tensor;
  const shape = [...y.shape];
  x.dispose();
  y.dispose();
  return shape;
}

// ---- output shapes --------------------------------------------------------------------------

/** Keras' conv output length: "same" → ceil(n / s); "valid" → floor((n − d(k − 1) − 1) / s) + 1. */
function kerasLength(n: number, k: number, s: number, d: number, padding: "same" | "valid") {
  return padding === "same" ? Math.ceil(n / s) : Math.floor((n - d * (k - 1) - 1) / s) + 1;
}

Deno.test("Conv2D / Conv3D: Keras output shapes for 'same' and 'valid', strides, dilation", () => {
  const cases: [number[], number, number, number, "same" | "valid"][] = [
    // input [N, H, W, C], kernel, stride, dilation, padding
    [[2, 9, 8, 3], 3, 1, 1, "same"],
    [[2, 9, 8, 3], 3, 1, 1, "valid"],
    [[1, 9, 8, 3], 3, 2, 1, "same"],
    [[1, 9, 8, 3], 3, 2, 1, "valid"],
    [[1, 8, 8, 3], 2, 2, 1, "same"], // even kernel
    [[1, 11, 7, 2], 3, 1, 2, "valid"],
    [[1, 11, 7, 2], 3, 1, 2, "same"],
    [[1, 7, 7, 5], 1, 2, 1, "valid"], // 1×1 stride 2 samples even indices
  ];
  for (const [shape, k, s, d, padding] of cases) {
    const layer = new Conv2D(shape[3], 4, k, { strides: s, dilation: d, padding });
    const expected = [
      shape[0],
      kerasLength(shape[1], k, s, d, padding),
      kerasLength(shape[2], k, s, d, padding),
      4,
    ];
    assert.deepEqual(outShape(layer, shape), expected, JSON.stringify([shape, k, s, d, padding]));
    layer.dispose();
  }
  const volume = new Conv3D(2, 5, [3, 2, 1], { strides: [2, 1, 1], padding: "valid" });
  assert.deepEqual(outShape(volume, [1, 7, 5, 4, 2]), [1, 3, 4, 4, 5]);
  const same3d = new Conv3D(1, 16, 3, { padding: "same" });
  assert.deepEqual(outShape(same3d, [2, 6, 5, 4, 1]), [2, 6, 5, 4, 16]);
  for (const layer of [volume, same3d]) layer.dispose();
});

Deno.test("Conv2DTranspose: Keras output sizes, the U-Net's 2×2 stride-2 block doubling", async () => {
  // Keras deconv_output_length: "same" → n·s; "valid" → n·s + max(k − s, 0); with
  // output_padding p: (n − 1)·s + k − 2·⌊k/2⌋·[same] + p.
  const cases: [number[], number, number, "same" | "valid", number | undefined, number[]][] = [
    [[1, 5, 4, 3], 2, 2, "same", undefined, [1, 10, 8, 6]],
    [[1, 5, 4, 3], 3, 2, "same", undefined, [1, 10, 8, 6]],
    [[1, 5, 4, 3], 3, 2, "valid", undefined, [1, 11, 9, 6]],
    [[1, 5, 4, 3], 2, 3, "valid", undefined, [1, 15, 12, 6]],
    [[1, 5, 4, 3], 3, 1, "valid", undefined, [1, 7, 6, 6]],
    [[1, 5, 4, 3], 3, 2, "same", 0, [1, 9, 7, 6]],
    [[1, 5, 4, 3], 3, 2, "valid", 1, [1, 12, 10, 6]],
  ];
  for (const [shape, k, s, padding, outputPadding, expected] of cases) {
    const layer = new Conv2DTranspose(3, 6, k, { strides: s, padding, outputPadding });
    assert.deepEqual(outShape(layer, shape), expected, JSON.stringify([shape, k, s, padding]));
    layer.dispose();
  }
  // k = 2, s = 2, "same", ones kernel: every input pixel fills its own 2×2 block, no overlap.
  const up = new Conv2DTranspose(1, 1, 2, { strides: 2, padding: "same", useBias: false });
  setWeights(up, { weight: [1, 1, 1, 1] });
  const y = up.forward(Tensor.from([1, 2, 3, 4], [1, 2, 2, 1]));
  assert.deepEqual(await y.toArray(), [[[[1], [1], [2], [2]], [[1], [1], [2], [2]], [
    [3],
    [3],
    [4],
    [4],
  ], [[3], [3], [4], [4]]]]);
  up.dispose();
});

// ---- weights ----------------------------------------------------------------------------------

/** Mean and variance of a host array. */
function moments(values: ArrayLike<number>): { mean: number; variance: number } {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  const mean = sum / values.length;
  let sq = 0;
  for (let i = 0; i < values.length; i++) sq += (values[i] - mean) ** 2;
  return { mean, variance: sq / values.length };
}

Deno.test("conv layers: Keras layout, Glorot-uniform kernels (fans = field · channels), zero bias", async () => {
  const { seed } = testRng();
  const cases: [AnyModule & { weight: Tensor; bias: Tensor | null }, number[], number][] = [
    // layer, kernel shape, fan_in + fan_out
    [new Conv2D(64, 96, 3, { rng: new Rng(seed) }), [3, 3, 64, 96], 9 * (64 + 96)],
    [new Conv3D(16, 32, 3, { rng: new Rng(seed + 1) }), [3, 3, 3, 16, 32], 27 * (16 + 32)],
    [
      new Conv2DTranspose(128, 64, [2, 3], { rng: new Rng(seed + 2) }),
      [2, 3, 64, 128],
      6 * (128 + 64),
    ],
  ];
  for (const [layer, shape, fans] of cases) {
    const what = `${layer.constructor.name} (seed ${seed})`;
    assert.deepEqual(layer.weight.shape, shape, what);
    assert.deepEqual(layer.namedParameters().map(([name]) => name), ["weight", "bias"]);
    const limit = Math.sqrt(6 / fans);
    const w = await layer.weight.data();
    const { mean, variance } = moments(w);
    assert.ok(w.every((v) => Math.abs(v) <= limit), `${what}: |w| ≤ ${limit}`);
    // U(−l, l): mean 0 and variance l²/3; n ≥ 49k draws put both well inside these bounds.
    assert.ok(Math.abs(mean) < 0.02 * limit, `${what}: mean ${mean}`);
    assert.ok(Math.abs(variance / (limit ** 2 / 3) - 1) < 0.03, `${what}: variance ${variance}`);
    const filters = layer instanceof Conv2DTranspose ? shape[2] : shape[shape.length - 1];
    assert.deepEqual(Array.from(await layer.bias!.data()), new Array(filters).fill(0), what);
    layer.dispose();
  }
  const noBias = new Conv2D(3, 4, 3, { useBias: false });
  assert.equal(noBias.bias, null);
  assert.deepEqual(noBias.namedParameters().map(([name]) => name), ["weight"]);
  noBias.dispose();
});

Deno.test("conv layers apply their kernel, bias and activation (float64 reference)", async () => {
  const { rng, seed } = testRng();
  const cases: {
    layer: Conv2D | Conv3D | Conv2DTranspose;
    input: number[];
    ref: (x: Ref, w: Ref, b: Ref) => Ref;
  }[] = [
    {
      layer: new Conv2D(3, 5, [3, 2], {
        strides: [2, 1],
        padding: "same",
        activation: "relu",
        rng,
      }),
      input: [2, 7, 6, 3],
      ref: (x, w, b) => convRef(x, w, b, { strides: [2, 1], padding: "same", activation: "relu" }),
    },
    {
      layer: new Conv2D(4, 3, 3, { dilation: 2, activation: "tanh", rng }),
      input: [1, 8, 7, 4],
      ref: (x, w, b) => convRef(x, w, b, { dilation: 2, activation: "tanh" }),
    },
    {
      layer: new Conv3D(2, 3, 3, { padding: "same", activation: "sigmoid", rng }),
      input: [1, 4, 5, 3, 2],
      ref: (x, w, b) => convRef(x, w, b, { padding: "same", activation: "sigmoid" }),
    },
    {
      layer: new Conv2DTranspose(3, 2, 3, { strides: 2, padding: "same", rng }),
      input: [2, 3, 4, 3],
      ref: (x, w, b) => convTransposeRef(x, w, b, { strides: 2, padding: "same" }),
    },
  ];
  for (const { layer, input, ref: reference } of cases) {
    const what = `${layer.constructor.name} (seed ${seed})`;
    setWeights(layer, {
      weight: randomData(layer.weight.size, rng),
      bias: randomData(layer.filters, rng),
    });
    const x = randomData(sizeOf(input), rng);
    const expected = reference(
      ref(input, x),
      ref(layer.weight.shape, await layer.weight.data()),
      ref([layer.filters], await layer.bias!.data()),
    );
    const y = layer.forward(Tensor.from(x, input));
    assert.deepEqual(y.shape, expected.shape, what);
    assertClose(await y.data(), expected.data, { what });
    layer.dispose();
  }
});

Deno.test("Conv2D 'same' with stride 2 pads TensorFlow's way: the odd cell bottom/right", async () => {
  // 4×4 input x[i][j] = 4i + j, 3×3 ones kernel, stride 2: 2×2 output, one padding row/column
  // after the input (PyTorch's symmetric padding = 1 would put it before). Windows cover rows
  // and columns {0, 1, 2} and {2, 3}: sums 45, 39 / 66, 50.
  const conv = new Conv2D(1, 1, 3, { strides: 2, padding: "same", useBias: false });
  setWeights(conv, { weight: new Array(9).fill(1) });
  const y = conv.forward(Tensor.from(Array.from({ length: 16 }, (_, i) => i), [1, 4, 4, 1]));
  assert.deepEqual(Array.from(await y.data()), [45, 39, 66, 50]);
  conv.dispose();
});

// ---- pooling and merge layers ---------------------------------------------------------------

Deno.test("pooling layers: Keras defaults (pool 2 = strides, 'valid'), 3-D, global average", async () => {
  assert.deepEqual(outShape(new MaxPool2D(), [2, 7, 6, 3]), [2, 3, 3, 3]);
  assert.deepEqual(outShape(new AvgPool2D(3, { strides: 1, padding: "same" }), [1, 5, 4, 2]), [
    1,
    5,
    4,
    2,
  ]);
  assert.deepEqual(outShape(new MaxPool3D(), [1, 32, 32, 32, 16]), [1, 16, 16, 16, 16]);
  assert.deepEqual(outShape(new AvgPool3D([1, 2, 2]), [1, 5, 6, 7, 2]), [1, 5, 3, 3, 2]);
  const pool = new MaxPool2D([2, 3]);
  assert.deepEqual([pool.poolSize, pool.strides, pool.padding], [[2, 3], [2, 3], "valid"]);

  // [1, 2, 2, 2]: channel 0 holds 1..4, channel 1 holds 10, 20, 30, 40.
  const x = Tensor.from([1, 10, 2, 20, 3, 30, 4, 40], [1, 2, 2, 2]);
  const gap = new GlobalAvgPool2D().forward(x);
  assert.deepEqual(gap.shape, [1, 2]);
  assert.deepEqual(Array.from(await gap.data()), [2.5, 25]);
  assert.throws(
    () => new GlobalAvgPool2D().forward(Tensor.zeros([2, 3])),
    /GlobalAvgPool2D: input \[2, 3\], expected \[batch, height, width, channels\]/,
  );
});

Deno.test("Add sums same-shaped inputs and passes the gradient to each; Concatenate joins channels", async () => {
  const a = Tensor.from([1, 2, 3, 4], [1, 2, 1, 2]).requireGrad();
  const b = Tensor.from([10, 20, 30, 40], [1, 2, 1, 2]).requireGrad();
  const sum = new Add().forward(a, b);
  assert.deepEqual(Array.from(await sum.data()), [11, 22, 33, 44]);
  sum.backward(Tensor.from([1, 2, 3, 4], [1, 2, 1, 2]));
  assert.deepEqual(Array.from(await a.grad!.data()), [1, 2, 3, 4]);
  assert.deepEqual(Array.from(await b.grad!.data()), [1, 2, 3, 4]);

  // Keras' U-Net order: [upsampled, skip] along the channels.
  const joined = new Concatenate().forward(a, Tensor.from([7, 8], [1, 2, 1, 1]));
  assert.deepEqual(joined.shape, [1, 2, 1, 3]);
  assert.deepEqual(Array.from(await joined.data()), [1, 2, 7, 3, 4, 8]);

  // The handout's mini-ResNet defect: a 3-channel input added to a 32-channel path.
  assert.throws(
    () => new Add().forward(Tensor.zeros([1, 4, 4, 3]), Tensor.zeros([1, 4, 4, 32])),
    /Add: input shapes \[1, 4, 4, 3\], \[1, 4, 4, 32\] differ; expected all the same/,
  );
  assert.throws(() => new Add().forward(a), /Add: 1 input\(s\), expected at least 2/);
});

// ---- configs and errors -----------------------------------------------------------------------

Deno.test("layer configs hold Keras' arguments per axis and rebuild the same layer", () => {
  const layers: [AnyModule, Record<string, unknown>, number[]][] = [
    [
      new Conv2D(3, 8, [3, 2], {
        strides: [2, 1],
        padding: "same",
        useBias: false,
        activation: "relu",
      }),
      {
        inChannels: 3,
        filters: 8,
        kernelSize: [3, 2],
        strides: [2, 1],
        padding: "same",
        useBias: false,
        activation: "relu",
        dilation: [1, 1],
      },
      [1, 5, 4, 3],
    ],
    [
      new Conv3D(2, 4, 3, { dilation: [1, 2, 1] }),
      {
        inChannels: 2,
        filters: 4,
        kernelSize: [3, 3, 3],
        strides: [1, 1, 1],
        padding: "valid",
        useBias: true,
        activation: null,
        dilation: [1, 2, 1],
      },
      [1, 4, 6, 4, 2],
    ],
    [
      new Conv2DTranspose(4, 2, 3, { strides: 2, outputPadding: 1 }),
      {
        inChannels: 4,
        filters: 2,
        kernelSize: [3, 3],
        strides: [2, 2],
        padding: "valid",
        useBias: true,
        activation: null,
        outputPadding: [1, 1],
      },
      [1, 3, 3, 4],
    ],
    [new MaxPool3D([1, 2, 2]), { poolSize: [1, 2, 2], strides: [1, 2, 2], padding: "valid" }, [
      1,
      2,
      4,
      4,
      1,
    ]],
    [new AvgPool2D(3, { strides: 2, padding: "same" }), {
      poolSize: [3, 3],
      strides: [2, 2],
      padding: "same",
    }, [1, 5, 5, 2]],
  ];
  for (const [layer, config, input] of layers) {
    const saved = modelConfig(layer);
    assert.deepEqual(saved.config, config, saved.class);
    const rebuilt = buildModel(JSON.parse(JSON.stringify(saved)));
    assert.deepEqual(modelConfig(rebuilt), saved);
    assert.deepEqual(outShape(rebuilt, input), outShape(layer, input), saved.class);
    const [names, shapes] = [rebuilt, layer].map((m) =>
      m.namedParameters().map(([name, t]) => `${name} ${t.shape}`)
    );
    assert.deepEqual(names, shapes);
    layer.dispose();
    rebuilt.dispose();
  }
});

Deno.test("conv and pooling layers reject bad arguments and inputs by name", () => {
  const conv = new Conv2D(3, 8, 3);
  const cases: [() => unknown, RegExp][] = [
    [
      () => conv.forward(Tensor.zeros([1, 5, 5, 4])),
      /Conv2D: input \[1, 5, 5, 4\], expected \[batch, height, width, 3\] \(channels-last, inChannels = 3\)/,
    ],
    [
      () => new Conv3D(1, 2, 3).forward(Tensor.zeros([1, 5, 5, 1])),
      /Conv3D: input \[1, 5, 5, 1\], expected \[batch, depth, height, width, 1\]/,
    ],
    [() => new Conv2D(0, 8, 3), /Conv2D: inChannels 0, expected an integer ≥ 1/],
    [
      () => new Conv2D(3, 8, [3, 3, 3]),
      /Conv2D: kernelSize \[3,3,3\], expected an integer ≥ 1 or 2 of them/,
    ],
    [
      () => new Conv3D(3, 8, 3, { strides: [1, 2] }),
      /Conv3D: strides \[1,2\], expected an integer ≥ 1 or 3 of them/,
    ],
    [
      () => new Conv2DTranspose(3, 8, 3, { outputPadding: -1 }),
      /Conv2DTranspose: outputPadding -1, expected an integer ≥ 0 or 2 of them/,
    ],
    [
      () => new Conv2D(3, 8, 3, { padding: "full" as never }),
      /Conv2D: padding 'full', expected 'valid' or 'same'/,
    ],
    [
      () => new MaxPool3D([2, 2]),
      /MaxPool3D: poolSize \[2,2\], expected an integer ≥ 1 or 3 of them/,
    ],
    [() => new AvgPool2D(2, { padding: "causal" as never }), /AvgPool2D: padding 'causal'/],
  ];
  for (const [call, message] of cases) assert.throws(call, message);
  conv.dispose();
});
