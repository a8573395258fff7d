import assert from "../assert.ts";
import {
  conv2d,
  conv2dTranspose,
  conv3d,
  type ConvOptions,
  type ConvTransposeOptions,
} from "../../engine/ops/conv.ts";
import { CONV_TILES, type ConvTile } from "../../engine/shaders/conv.ts";
import type { MatmulTileOption } from "../../engine/shaders/matmul.ts";
import { checkOp } from "../helpers.ts";
import { convRef, type ConvRefOptions, convTransposeRef } from "../reference/conv.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("conv");

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

/** A conv kernel's specialisation: vec4 or scalar lanes in and out, bias, activation. */
function convVariant(cin: number, cout: number, bias: boolean, activation = ""): string {
  return `in${cin % 4 ? 1 : 4} out${cout % 4 ? 1 : 4} ${bias ? "bias" : ""} ${activation}`;
}

async function check2d([xs, ks, options]: Case, withBias: boolean, tiles: string): Promise<void> {
  const cout = ks[3];
  const inputs = [{ shape: xs }, { shape: ks }];
  if (withBias) inputs.push({ shape: [cout] });
  await checkOp({
    variant: `${tiles} ${convVariant(ks[2], cout, withBias, options.activation)}`,
    name: `conv2d ${JSON.stringify(xs)} * ${JSON.stringify(ks)} ${JSON.stringify(options)}`,
    inputs,
    gpu: (x, k, b) => conv2d(x, k, { ...options, bias: b }),
    ref: (x, k, b) => convRef(x, k, b ?? null, options),
    gradAtol: 2e-4,
    gradRtol: 2e-3,
  });
}

/**
 * The CPU table's layouts — rows on the SIMD axis, the weight pass split over pixels, two pixels
 * per step (odd chunks leave a tail) — at blocks small enough that every case takes them (on these
 * shapes the table itself picks other tiles).
 */
const CPU_LAYOUTS: MatmulTileOption<ConvTile>[] = [
  { tile: { wx: 1, wy: 8, tm: 8, tn: 8, rowsOnX: true }, speed: 1 },
  { tile: { wx: 1, wy: 1, tm: 8, tn: 8, splitK: 8, pixelsPerStep: 2 }, speed: 1 },
];

test("conv2d: forward, dX, dW and bias against the float64 reference (every tile layout)", async () => {
  const tables = { ...CONV_TILES.table, "cpu layouts, small blocks": CPU_LAYOUTS };
  for (const [name, tiles] of Object.entries(tables)) {
    CONV_TILES.set(tiles);
    try {
      for (const [i, c] of CASES_2D.entries()) await check2d(c, i % 2 === 0, name);
    } catch (e) {
      throw new Error(`${name} tiles: ${(e as Error).message}`);
    } finally {
      CONV_TILES.set(null);
    }
  }
});

test("conv3d: forward and gradients (odd volumes, stride 2, same, vec4 and scalar lanes)", async () => {
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
      variant: convVariant(ks[3], ks[4], i % 2 === 1),
      name: `conv3d ${JSON.stringify(xs)} * ${JSON.stringify(ks)} ${JSON.stringify(options)}`,
      inputs,
      gpu: (x, k, b) => conv3d(x, k, { ...options, bias: b }),
      ref: (x, k, b) => convRef(x, k, b ?? null, options),
      gradAtol: 2e-4,
      gradRtol: 2e-3,
    });
  }
});

test("conv2dTranspose: Keras output sizes, forward and gradients", async () => {
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
      variant: convVariant(ks[3], ks[2], i % 2 === 0, options.activation),
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

export const CONV_CHECKS: OpCheckTest[] = tests;
