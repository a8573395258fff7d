// Convolutions against float64 references: every pass (forward, dX, dW, bias) through the
// finite-difference check on odd shapes, stride 2, dilation 2, "same" with even kernels, 1×1
// kernels, batch 1, C = 3 (scalar lanes) and C % 4 = 0 (vec4 lanes), Conv3D, Conv2DTranspose;
// TensorFlow's padding rule pinned by a hand-computed fixture; errors before any dispatch.
import assert from "node:assert/strict";
import {
  conv2d,
  conv2dBackpropFilter,
  conv2dBackpropInput,
  conv2dTranspose,
  conv3d,
  type ConvOptions,
  type ConvTransposeOptions,
} from "../engine/ops/conv.ts";
import { CONV_TILES } from "../engine/shaders/conv.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { checkOp, setup } from "./helpers.ts";
import { convRef, type ConvRefOptions, convTransposeRef } from "./reference/conv.ts";

const rt = await setup();

type Case = [x: number[], kernel: number[], options: ConvOptions & ConvRefOptions];

// [N, H, W, Cin], [kh, kw, Cin, Cout]
const CASES_2D: Case[] = [
  [[1, 7, 9, 3], [3, 3, 3, 5], {}],
  [[2, 7, 9, 3], [3, 3, 3, 5], { padding: "same" }],
  [[2, 8, 7, 4], [3, 3, 4, 8], { padding: "same" }],
  [[2, 9, 7, 4], [3, 3, 4, 8], { strides: 2, padding: "same" }],
  [[1, 9, 10, 3], [3, 2, 3, 4], { strides: [2, 1] }],
  [[2, 6, 7, 5], [2, 2, 5, 3], { padding: "same" }], // even kernel: extra pad at bottom/right
  [[2, 8, 8, 4], [4, 4, 4, 4], { strides: 2, padding: "same" }],
  [[1, 9, 9, 4], [3, 3, 4, 4], { dilation: 2, padding: "same" }],
  [[2, 10, 8, 3], [3, 3, 3, 2], { dilation: [2, 1] }],
  [[2, 5, 6, 7], [1, 1, 7, 6], {}], // 1×1
  [[1, 5, 5, 8], [3, 3, 8, 12], { padding: "same", activation: "relu" }],
  [[2, 5, 5, 4], [3, 3, 4, 4], { padding: "same", activation: "gelu" }],
  [[2, 6, 5, 3], [3, 3, 3, 5], { strides: 2, activation: "tanh" }],
];

async function check2d([xs, ks, options]: Case, withBias: boolean): Promise<void> {
  const cout = ks[3];
  const inputs = [{ shape: xs }, { shape: ks }];
  if (withBias) inputs.push({ shape: [cout] });
  await checkOp({
    name: `conv2d ${JSON.stringify(xs)} * ${JSON.stringify(ks)} ${JSON.stringify(options)}`,
    inputs,
    gpu: (x, k, b) => conv2d(x, k, { ...options, bias: b }),
    ref: (x, k, b) => convRef(x, k, b ?? null, options),
    gradAtol: 2e-4,
    gradRtol: 2e-3,
  });
}

Deno.test("conv2d: forward, dX, dW and bias against the float64 reference (both tile tables)", async () => {
  for (const [name, tiles] of Object.entries(CONV_TILES.table)) {
    CONV_TILES.set(tiles);
    try {
      for (const [i, c] of CASES_2D.entries()) await check2d(c, i % 2 === 0);
    } catch (e) {
      throw new Error(`${name} tiles: ${(e as Error).message}`);
    } finally {
      CONV_TILES.set(null);
    }
  }
});

Deno.test("conv3d: forward and gradients (odd volumes, stride 2, same, vec4 and scalar lanes)", async () => {
  const cases: Case[] = [
    [[1, 5, 6, 7, 1], [3, 3, 3, 1, 4], {}],
    [[2, 5, 4, 6, 4], [3, 3, 3, 4, 4], { padding: "same" }],
    [[2, 6, 5, 5, 3], [2, 3, 3, 3, 2], { strides: 2, padding: "same" }],
    [[1, 4, 5, 5, 4], [3, 3, 3, 4, 8], { dilation: [1, 2, 1], padding: "same" }],
  ];
  for (const [i, [xs, ks, options]] of cases.entries()) {
    const inputs = [{ shape: xs }, { shape: ks }];
    if (i % 2) inputs.push({ shape: [ks[4]] });
    await checkOp({
      name: `conv3d ${JSON.stringify(xs)} * ${JSON.stringify(ks)} ${JSON.stringify(options)}`,
      inputs,
      gpu: (x, k, b) => conv3d(x, k, { ...options, bias: b }),
      ref: (x, k, b) => convRef(x, k, b ?? null, options),
      gradAtol: 2e-4,
      gradRtol: 2e-3,
    });
  }
});

Deno.test("conv2dTranspose: Keras output sizes, forward and gradients", async () => {
  // [N, H, W, Cin], [kh, kw, Cout, Cin]
  const cases: [number[], number[], ConvTransposeOptions, number[]][] = [
    [[2, 4, 5, 4], [2, 2, 4, 4], { strides: 2, padding: "same" }, [2, 8, 10, 4]], // U-Net's
    [[1, 3, 4, 3], [3, 3, 5, 3], { strides: 2 }, [1, 7, 9, 5]],
    [[2, 3, 3, 4], [3, 3, 2, 4], { strides: 2, padding: "same" }, [2, 6, 6, 2]],
    [[1, 4, 3, 2], [3, 2, 3, 2], {}, [1, 6, 4, 3]],
    [[1, 3, 3, 4], [3, 3, 4, 4], { strides: 2, padding: "same", outputPadding: [0, 1] }, [
      1,
      5,
      6,
      4,
    ]],
    [[2, 3, 4, 4], [2, 2, 8, 4], { strides: 2, activation: "relu" }, [2, 6, 8, 8]],
  ];
  for (const [i, [xs, ks, options, expected]] of cases.entries()) {
    const inputs = [{ shape: xs }, { shape: ks }];
    if (i % 2 === 0) inputs.push({ shape: [ks[2]] });
    const refOptions = {
      ...options,
      strides: options.strides as number | number[] | undefined,
      outputPadding: options.outputPadding as number[] | undefined,
    };
    await checkOp({
      name: `conv2dTranspose ${JSON.stringify(xs)} * ${JSON.stringify(ks)} ${
        JSON.stringify(options)
      }`,
      inputs,
      gpu: (x, k, b) => {
        const y = conv2dTranspose(x, k, { ...options, bias: b });
        assert.deepEqual(y.shape, expected);
        return y;
      },
      ref: (x, k, b) => convTransposeRef(x, k, b ?? null, refOptions),
      gradAtol: 2e-4,
      gradRtol: 2e-3,
    });
  }
});

Deno.test("conv2d 'same': TensorFlow puts the odd padding cell at the bottom/right (fixture)", async () => {
  // x = 0…15 on a 4×4 image, a 2×2 kernel of ones, stride 1 "same": total padding 1 per axis,
  // all of it after (TF). Each output sums x[i..i+1, j..j+1] clipped at the bottom/right edge.
  const x = Tensor.from(Array.from({ length: 16 }, (_, i) => i), [1, 4, 4, 1]);
  const k = Tensor.ones([2, 2, 1, 1]);
  const y = conv2d(x, k, { padding: "same" });
  assert.deepEqual(Array.from(await y.data()), [
    10,
    14,
    18,
    10, //
    26,
    30,
    34,
    18,
    42,
    46,
    50,
    26,
    25,
    27,
    29,
    15,
  ]);
  // Stride 2, 3×3 kernel on 5×5: out 3, total padding (3−1)·2 + 3 − 5 = 2, one before.
  const x5 = Tensor.ones([1, 5, 5, 1]);
  const y5 = conv2d(x5, Tensor.ones([3, 3, 1, 1]), { strides: 2, padding: "same" });
  assert.deepEqual(Array.from(await y5.data()), [4, 6, 4, 6, 9, 6, 4, 6, 4]);
});

Deno.test("conv: shape errors name the op and the shapes, before any dispatch", () => {
  const x = Tensor.zeros([1, 5, 5, 3]);
  const [k3, k4, big] = [[3, 3, 3, 2], [3, 3, 4, 2], [7, 7, 3, 2]].map((s) => Tensor.zeros(s));
  const [x3, bias3, up] = [Tensor.zeros([5, 5, 3]), Tensor.zeros([3]), Tensor.zeros([2, 2, 4, 3])];
  const before = rt.poolStats();
  assert.throws(
    () => conv2d(x, k4),
    /conv2d: kernel \[3, 3, 4, 2\] takes 4 input channels but the input \[1, 5, 5, 3\] has 3/,
  );
  assert.throws(
    () => conv2d(x3, k3),
    /conv2d: input has shape \[5, 5, 3\]; expected \[N, H, W, C\]/,
  );
  assert.throws(() => conv2d(x, big), /smaller than the dilated kernel \(7\)/);
  assert.throws(() => conv2d(x, k3, { strides: 0 }), /strides 0 must be an integer ≥ 1/);
  assert.throws(() => conv2d(x, k3, { strides: 2, dilation: 2 }), /cannot be combined/);
  assert.throws(() => conv2d(x, k3, { bias: bias3 }), /bias has shape \[3\]; expected \[2\]/);
  assert.throws(() => conv3d(x, k3), /conv3d: input has shape \[1, 5, 5, 3\]/);
  assert.throws(
    () => conv2dTranspose(x, up, { strides: 2, outputPadding: 2 }),
    /outputPadding 2 must be smaller than its stride 2/,
  );
  const after = rt.poolStats();
  assert.equal(after.dispatches, before.dispatches);
  assert.equal(after.allocations, before.allocations);
});

Deno.test("conv: one dispatch per pass, and the pool stays flat over training steps", async () => {
  const x = Tensor.uniform([2, 9, 9, 4], -1, 1).keep();
  const k = Tensor.uniform([3, 3, 4, 8], -1, 1).keep().requireGrad();
  const b = Tensor.zeros([8]).keep().requireGrad();
  const clearGrads = () => {
    for (const p of [k, b]) {
      p.grad?.dispose();
      p.grad = null;
    }
  };
  const step = () =>
    tidy(() => conv2d(x, k, { padding: "same", bias: b, activation: "relu" }).sum().backward());
  rt.poison = false; // poisoning allocations would add dispatches
  try {
    const before = rt.poolStats().dispatches;
    tidy(() => void conv2d(x, k, { padding: "same" }));
    assert.equal(rt.poolStats().dispatches - before, 1);
  } finally {
    rt.poison = true;
  }
  step();
  clearGrads();
  await rt.sync();
  const live = rt.poolStats().liveBytes;
  for (let i = 0; i < 5; i++) {
    step();
    clearGrads();
  }
  await rt.sync();
  assert.equal(rt.poolStats().liveBytes, live);
});

Deno.test("conv2dBackpropInput / conv2dBackpropFilter equal the tape's gradients", async () => {
  const options = { strides: 2, padding: "same" as const };
  const x = Tensor.uniform([2, 9, 8, 4], -1, 1).requireGrad();
  const k = Tensor.uniform([3, 3, 4, 8], -1, 1).requireGrad();
  const y = conv2d(x, k, options);
  const dy = Tensor.uniform(y.shape, -1, 1);
  y.backward(dy);
  const dx = conv2dBackpropInput(dy, k, x.shape, options);
  const dk = conv2dBackpropFilter(x, dy, k.shape, options);
  assert.deepEqual(Array.from(await dx.data()), Array.from(await x.grad!.data()));
  assert.deepEqual(Array.from(await dk.data()), Array.from(await k.grad!.data()));
  assert.throws(
    () => conv2dBackpropInput(Tensor.zeros([2, 5, 5, 8]), k, x.shape, options),
    /conv2dBackpropInput: dy has shape \[2, 5, 5, 8\]; expected \[2, 5, 4, 8\]/,
  );
});
