// TP4's pieces without training: the seeded disc and volume generators, the overlap metrics and
// losses against hand-computed fixtures (values and the Dice gradient), Keras-style per-batch
// averaging against the dataset-level Dice, the Keras to_json() of the Conv3D model against the
// students' file, the PNG encoder, Exercise 2's table and the software-adapter default.
import assert from "node:assert/strict";
import * as path from "node:path";
import { gpu } from "../engine/device.ts";
import { Module } from "../engine/nn/module.ts";
import {
  bceDiceLoss,
  binaryCrossEntropy,
  diceCoefficient,
  diceLoss,
  jaccardIndex,
} from "../engine/ops/loss.ts";
import { Tensor } from "../engine/tensor.ts";
import { evaluate } from "../engine/train/fit.ts";
import {
  diceFromCounts,
  diceMetric,
  iouFromCounts,
  iouMetric,
  overlapCounts,
  pixelwiseIou,
  sumCounts,
} from "../engine/train/metrics.ts";
import { discImages, discRanges } from "../labs/data/discs.ts";
import { insideShape, shapeVolumes } from "../labs/data/volumes.ts";
import { encodePng, errorTile } from "../labs/images.ts";
import { kerasModelJson, pythonJson } from "../labs/tp4/keras_json.ts";
import { discMask, kerasVersusDataset, sensitivityRows } from "../labs/tp4/metrics_table.ts";
import { defaultBaseFilters, unetRunName } from "../labs/tp4/unet.ts";
import { conv3dModel } from "../models/conv3d.ts";
import { assertClose, setup } from "./helpers.ts";

await setup();

const FIXTURE = path.resolve(
  import.meta.dirname!,
  "fixtures/tracking/mlruns-sample/mlflow-3.x-sqlite-backend_bouiyoda-tp4-artifacts-only/store/1",
  "441ca074dcb344e9b39d586c7e21fff4/artifacts/artifacts/model_architecture.json",
);

const scalar = async (t: Tensor) => (await t.data())[0];

Deno.test("discImages (BJ): one disc per image inside the spec's ranges, strict mask, clipped noise, seeded", () => {
  const set = discImages(7, 300);
  assert.equal(set.x.length, 300 * 128 * 128);
  assert.equal(set.y.length, 300 * 128 * 128);
  const seen = { cx: new Set<number>(), r: new Set<number>() };
  const inside: number[] = [];
  const outside: number[] = [];
  for (let n = 0; n < set.count; n++) {
    assert.equal(set.discs[n].length, 1);
    const { cx, cy, radius } = set.discs[n][0];
    assert.ok(cx >= 20 && cx <= 107 && cy >= 20 && cy <= 107, `centre (${cx}, ${cy})`);
    assert.ok(radius >= 10 && radius <= 24, `radius ${radius}`);
    seen.cx.add(cx);
    seen.r.add(radius);
    for (let i = 0; i < 128 * 128; i++) {
      const [row, col] = [Math.floor(i / 128), i % 128];
      const want = (row - cy) ** 2 + (col - cx) ** 2 < radius ** 2 ? 1 : 0;
      const k = n * 128 * 128 + i;
      assert.equal(set.y[k], want);
      assert.ok(set.x[k] >= 0 && set.x[k] <= 1);
      (want ? inside : outside).push(set.x[k]);
    }
  }
  // Both ends of numpy's randint(20, 108) and randint(10, 25) are drawn.
  assert.ok(seen.cx.has(20) && seen.cx.has(107), "centre range ends");
  assert.ok(seen.r.has(10) && seen.r.has(24), "radius range ends");
  // clip(N(0, 0.1)) has mean 0.1/√(2π) ≈ 0.0399; clip(1 + N(0, 0.1)) mirrors it.
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  assert.ok(Math.abs(mean(outside) - 0.0399) < 0.002, `background mean ${mean(outside)}`);
  assert.ok(Math.abs(mean(inside) - 0.9601) < 0.002, `disc mean ${mean(inside)}`);
  assert.deepEqual(discImages(7, 300).x, set.x);
  assert.notDeepEqual(discImages(8, 3).y, discImages(7, 3).y);
  assert.deepEqual(discRanges(128, "single"), { centre: [20, 107], radius: [10, 24] });
  assert.deepEqual(discRanges(32, "single"), { centre: [5, 26], radius: [3, 6] });
  assert.throws(
    () => discImages(0, 2, { size: 8 }),
    /discImages: size 8, expected an integer ≥ 16/,
  );
});

Deno.test("discImages (KR multi): 1–3 inclusive discs at 0.9 on N(0.5, 0.1), unclipped", () => {
  const set = discImages(3, 200, { variant: "multi" });
  const counts = new Set(set.discs.map((d) => d.length));
  assert.deepEqual([...counts].sort(), [1, 2, 3]);
  const background: number[] = [];
  for (let n = 0; n < set.count; n++) {
    for (const { cx, cy, radius } of set.discs[n]) {
      assert.ok(cx >= 20 && cx <= 99 && radius >= 5 && radius <= 14);
      // Inclusive: the pixel exactly `radius` away along a row is in.
      if (cx + radius < 128) assert.equal(set.y[n * 16384 + cy * 128 + cx + radius], 1);
    }
    for (let i = 0; i < 16384; i++) {
      const k = n * 16384 + i;
      if (set.y[k]) assert.equal(set.x[k], Math.fround(0.9));
      else background.push(set.x[k]);
    }
  }
  const mean = background.reduce((a, b) => a + b, 0) / background.length;
  const std = Math.sqrt(background.reduce((a, b) => a + (b - mean) ** 2, 0) / background.length);
  assert.ok(Math.abs(mean - 0.5) < 0.002 && Math.abs(std - 0.1) < 0.002, `${mean} ± ${std}`);
});

Deno.test("shapeVolumes: balanced, seeded, equal volumes, depth extents 2R vs 4R/3, every depth slice a disc", () => {
  const set = shapeVolumes(11, 60);
  assert.equal(set.x.length, 60 * 32 ** 3);
  assert.deepEqual([...set.y].filter((v) => v === 1).length, 30);
  assert.deepEqual(shapeVolumes(11, 60).x, set.x);
  assert.notDeepEqual(shapeVolumes(12, 60).x, set.x);
  for (const v of set.x) assert.ok(v >= 0 && v <= 1);
  for (const s of set.shapes) {
    assert.ok(s.radius >= 5 && s.radius <= 9);
    for (const c of s.centre) assert.ok(Math.abs(c - 15.5) <= 4);
    // Same radius, same volume: both within 12 % of (4/3)πR³ once rasterised.
    const ideal = (4 / 3) * Math.PI * s.radius ** 3;
    assert.ok(Math.abs(s.voxels / ideal - 1) < 0.12, `${s.label}: ${s.voxels} vs ${ideal}`);
  }
  // Depth extent and per-slice radius, from the membership rule itself.
  const centre = [15.5, 15.5, 15.5];
  const R = 8;
  const depths = (label: 0 | 1) =>
    Array.from({ length: 32 }, (_, d) => d).filter((d) =>
      Array.from({ length: 32 * 32 }).some((_, i) =>
        insideShape(label, R, centre, d, Math.floor(i / 32), i % 32)
      )
    );
  assert.equal(depths(0).length, 16); // |d − 15.5| ≤ 8
  assert.equal(depths(1).length, 10); // |d − 15.5| ≤ 16/3
  for (const label of [0, 1] as const) {
    for (let d = 0; d < 32; d++) {
      for (let h = 0; h < 32; h++) {
        for (let w = 0; w < 32; w++) {
          if (insideShape(label, R, centre, d, h, w)) {
            assert.ok((h - 15.5) ** 2 + (w - 15.5) ** 2 <= R * R);
          }
        }
      }
    }
  }
  assert.throws(() => shapeVolumes(0, 1, { radiusMax: 14 }), /does not fit a 32³ volume/);
});

// Fixture: p = [0.9, 0.1, 0.8, 0.3], t = [1, 0, 1, 1]. I = 2.0, Σp = 2.1, Σt = 3.
const P = [0.9, 0.1, 0.8, 0.3];
const T = [1, 0, 1, 1];

Deno.test("diceCoefficient, jaccardIndex, diceLoss, bceDiceLoss: hand-computed values (smooth 1 and 1e-6)", async () => {
  const p = Tensor.from(P, [1, 2, 2, 1]);
  const t = Tensor.from(T, [1, 2, 2, 1]);
  assertClose([await scalar(diceCoefficient(p, t))], [5 / 6.1]);
  assertClose([await scalar(jaccardIndex(p, t))], [3 / 4.1]);
  assertClose([await scalar(diceCoefficient(p, t, { smooth: 1e-6 }))], [4 / 5.1]);
  assertClose([await scalar(jaccardIndex(p, t, { smooth: 1e-6 }))], [2 / 3.1]);
  assertClose([await scalar(diceLoss(p, t))], [1 - 5 / 6.1]);
  const bce = -(Math.log(0.9) + Math.log(0.9) + Math.log(0.8) + Math.log(0.3)) / 4;
  assertClose([await scalar(binaryCrossEntropy(p, t))], [bce]);
  assertClose([await scalar(bceDiceLoss(p, t))], [bce + 1 - 5 / 6.1]);
  // Targets may come in any shape with the same number of elements (a [N, H, W] mask).
  assertClose([await scalar(diceCoefficient(p, Tensor.from(T, [1, 2, 2])))], [5 / 6.1]);
  assert.throws(
    () => diceCoefficient(p, Tensor.from([1, 0, 1], [3])),
    /diceCoefficient: pred \[1, 2, 2, 1\] \(f32\) and target \[3\] \(f32\)/,
  );
});

Deno.test("diceLoss gradient: ∂(1 − Dice)/∂p_i = −(2t_i·D − N)/D² with D = Σp + Σt + s, N = 2I + s", async () => {
  const p = Tensor.from(P, [4]).requireGrad();
  const t = Tensor.from(T, [4]);
  diceLoss(p, t).backward();
  const [D, N] = [6.1, 5];
  assertClose(await p.grad!.data(), T.map((ti) => -(2 * ti * D - N) / D ** 2), { atol: 1e-6 });
});

Deno.test("pixelwiseIou (the handout's form): per-pixel ratios averaged, background pixels count 1", async () => {
  const p = Tensor.from([1, 0, 0, 0], [4, 1]);
  const t = Tensor.from([1, 0, 1, 0], [4, 1]);
  assertClose([await scalar(pixelwiseIou(p, t, 1))], [(1 + 1 + 0.5 + 1) / 4]);
});

class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

Deno.test("Keras-style dice_coef / iou: per-batch values, batch-size-weighted; dataset-level from summed counts differs", async () => {
  // Three 1×2 "images"; batch size 2 → batches {0, 1} and {2}.
  const pred = [1, 0, 1, 1, 0, 0];
  const target = [1, 0, 1, 0, 0, 1];
  const logs = await evaluate(
    new Identity(),
    Tensor.from(pred, [3, 2]),
    Tensor.from(target, [3, 2]),
    {
      loss: (p, t) => diceLoss(p, t, { smooth: 0 }),
      metrics: [diceMetric({ smooth: 0 }), iouMetric({ smooth: 0 })],
      batchSize: 2,
    },
  );
  // Batch 1: I = 2, Σp = 3, Σt = 2 → Dice 4/5, IoU 2/3. Batch 2: I = 0, Σp = 0, Σt = 1 → 0, 0.
  assertClose([logs.dice_coef, logs.iou, logs.loss], [
    (2 * (4 / 5) + 0) / 3,
    (2 * (2 / 3) + 0) / 3,
    (2 * (1 / 5) + 1) / 3,
  ]);
  // The whole set: I = 2, Σp = 3, Σt = 3 → Dice 2/3, IoU 1/2.
  const counts = [0, 1, 2].map((n) =>
    overlapCounts(pred, target, { start: 2 * n, end: 2 * n + 2 })
  );
  assert.deepEqual(sumCounts(counts), { intersection: 2, predicted: 3, actual: 3 });
  assertClose([diceFromCounts(sumCounts(counts)), iouFromCounts(sumCounts(counts))], [
    2 / 3,
    1 / 2,
  ]);
  // Hard metrics binarise at the threshold first (p > 0.5).
  const hard = diceMetric({ threshold: 0.5, smooth: 0 });
  assert.equal(hard.name, "dice_coef");
  assertClose([
    await scalar(hard.fn(Tensor.from([0.6, 0.4, 0.5], [3]), Tensor.from([1, 1, 0], [3]))),
  ], [2 / 3]);
  assert.deepEqual(overlapCounts([0.6, 0.4, 0.5], [1, 1, 0]), {
    intersection: 1,
    predicted: 1,
    actual: 2,
  });
  // Empty against empty is a perfect match, not 0/0.
  assert.equal(diceFromCounts({ intersection: 0, predicted: 0, actual: 0 }), 1);
  assert.equal(iouFromCounts({ intersection: 0, predicted: 0, actual: 0 }), 1);
});

Deno.test("Exercise 2: IoU = Dice/(2 − Dice) on every case, small masks lose more, Keras mean vs set Dice", async () => {
  assert.equal(discMask(4).reduce((a, b) => a + b, 0), 45); // integer points with x² + y² < 16
  const rows = await sensitivityRows();
  assert.equal(rows.length, 16);
  for (const r of rows) {
    assert.ok(Math.abs(r.iou - r.dice / (2 - r.dice)) < 1e-5, JSON.stringify(r));
    assert.ok(r.pixelwiseIou > 0.9, "the handout's IoU stays near 1");
  }
  const dilated = rows.filter((r) => r.perturbation === "dilate_1px").map((r) => r.dice);
  assert.deepEqual([...dilated].sort((a, b) => a - b), dilated, "Dice rises with the radius");
  const gap = kerasVersusDataset();
  assert.equal(gap.keras, 0.5);
  assert.ok(gap.dataset > 0.99);
});

Deno.test("Conv3D to_json(): byte for byte the students' Keras 3 model_architecture.json", async () => {
  const json = kerasModelJson(conv3dModel(), [32, 32, 32, 1]);
  // What Run.logDict writes for {"model_config": json}: 2-space indent, no trailing newline.
  assert.equal(JSON.stringify({ model_config: json }, null, 2), await Deno.readTextFile(FIXTURE));
  assert.equal(
    pythonJson({ a: [1, null, true], b: 'x"y' }),
    '{"a": [1, null, true], "b": "x\\"y"}',
  );
  assert.throws(() => pythonJson(0.5), /pythonJson: 0.5 is not an integer/);
});

Deno.test("encodePng: a valid RGB PNG whose pixels decompress back", async () => {
  const tile = errorTile([0.9, 0.9, 0.1, 0.1], [1, 0, 1, 0], 2, 2);
  assert.deepEqual([...tile.rgb], [235, 235, 235, 220, 50, 47, 38, 139, 210, 0, 0, 0]);
  const png = await encodePng(tile);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const view = new DataView(png.buffer);
  assert.equal(new TextDecoder().decode(png.subarray(12, 16)), "IHDR");
  assert.deepEqual([view.getUint32(16), view.getUint32(20)], [2, 2]);
  const idatLength = view.getUint32(33);
  assert.equal(new TextDecoder().decode(png.subarray(37, 41)), "IDAT");
  const raw = new Uint8Array(
    await new Response(
      new Blob([png.slice(41, 41 + idatLength)]).stream().pipeThrough(
        new DecompressionStream("deflate"),
      ),
    ).arrayBuffer(),
  );
  assert.deepEqual([...raw], [0, ...tile.rgb.subarray(0, 6), 0, ...tile.rgb.subarray(6)]);
});

Deno.test("U-Net defaults: the handout size on a GPU, 8 base filters announced on a software adapter", async () => {
  const software = (await gpu()).report.isFallbackAdapter;
  const chosen = await defaultBaseFilters(undefined, false);
  assert.equal(chosen.baseFilters, software ? 8 : 32);
  if (software) assert.match(chosen.announcement!, /--base-filters 32 trains the handout's/);
  else assert.equal(chosen.announcement, null);
  assert.deepEqual(await defaultBaseFilters(16, false), { baseFilters: 16, announcement: null });
  assert.equal(
    unetRunName({ loss: "bce_dice", optimizer: "adam", imageSize: 128, baseFilters: 32 }),
    "unet_bce_dice_adam_img128_f32",
  );
});
