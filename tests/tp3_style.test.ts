// TP3 Exercise 4: the VGG16 base (parameter count, Keras names, the six extractor outputs from a
// pass that stops early), its weight file (round trip, errors naming the tensor), caffe
// preprocessing, PNG/JPEG reading, the Gram and variation losses against host references, and
// the Gatys loop end to end on random weights at 64×64 (losses fall, gradients reach the pixels
// and only them, the MLflow run and its artifacts), plus the refusal without weights.
import assert from "node:assert/strict";
import * as path from "node:path";
import { encode as encodePngFile } from "fast-png";
import { encode as encodeJpeg } from "jpeg-js";
import { loadModelState, type ModelState, modelState } from "../engine/io/checkpoint.ts";
import { encodeSafetensors, type TensorEntryInput } from "../engine/io/safetensors.ts";
import { Rng } from "../engine/random.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { noGrad } from "../engine/autograd.ts";
import {
  caffeDeprocess,
  caffePreprocess,
  CONTENT_LAYERS,
  loadVgg16Weights,
  STYLE_LAYERS,
  Vgg16,
  VGG16_PARAMS,
} from "../models/vgg16.ts";
import { encodePng, type Tile } from "../labs/images.ts";
import { UsageError } from "../labs/registry.ts";
import type { Tp3Options } from "../labs/tp3/common.ts";
import {
  DEFAULT_STYLE_WEIGHTS,
  gramMatrix,
  styleTargets,
  styleTransferLoss,
  totalVariation,
} from "../labs/tp3/gatys.ts";
import { decodeImage, readImage, resizeBilinear } from "../labs/tp3/image_io.ts";
import {
  COMPARISON_ARTIFACT,
  CONTENT_ARTIFACT,
  RESULT_ARTIFACT,
  runStyleExercise,
  shapesScene,
  stripesTexture,
  STYLE_ARTIFACT,
  STYLE_EXPERIMENT,
} from "../labs/tp3/style.ts";
import { openStore } from "../tracking/store.ts";
import { assertClose, randomData, setup } from "./helpers.ts";

await setup();

const KERAS_LAYERS = [
  "block1_conv1",
  "block1_conv2",
  "block1_pool",
  "block2_conv1",
  "block2_conv2",
  "block2_pool",
  "block3_conv1",
  "block3_conv2",
  "block3_conv3",
  "block3_pool",
  "block4_conv1",
  "block4_conv2",
  "block4_conv3",
  "block4_pool",
  "block5_conv1",
  "block5_conv2",
  "block5_conv3",
  "block5_pool",
];

function options(overrides: Partial<Tp3Options>): Tp3Options {
  const lines: string[] = [];
  return {
    seed: 1,
    quick: true,
    resume: false,
    checkpointDir: "unused",
    dataset: "fashion-mnist",
    plan: "tp3 test",
    unit: false,
    out: { isTTY: false, write: (text) => lines.push(text) },
    ...overrides,
  };
}

Deno.test("VGG16 base: 14,714,688 parameters, Keras layer names, six outputs from one early-stopping pass", async () => {
  const vgg = new Vgg16({ rng: new Rng(3) });
  try {
    assert.equal(vgg.trainableCount(), VGG16_PARAMS);
    assert.equal(vgg.nonTrainableCount(), 0);
    assert.deepEqual(vgg.layers.map(([name]) => name), KERAS_LAYERS);
    assert.deepEqual(vgg.namedParameters().slice(0, 2).map(([n, t]) => [n, t.shape]), [
      ["block1_conv1.weight", [3, 3, 3, 64]],
      ["block1_conv1.bias", [64]],
    ]);
    // block5_conv3 and block5_pool are past the last output asked for: they must not run.
    const [, conv53] = vgg.layers.find(([name]) => name === "block5_conv3")!;
    const forward = conv53.forward;
    conv53.forward = () => {
      throw new Error("block5_conv3 ran");
    };
    const x = Tensor.uniform([1, 32, 32, 3], -120, 120, new Rng(4));
    const shapes = noGrad(() =>
      tidy(() => vgg.features(x, [...STYLE_LAYERS, ...CONTENT_LAYERS]).map((f) => f.shape))
    );
    assert.deepEqual(shapes, [
      [1, 32, 32, 64],
      [1, 16, 16, 128],
      [1, 8, 8, 256],
      [1, 4, 4, 512],
      [1, 2, 2, 512],
      [1, 2, 2, 512],
    ]);
    conv53.forward = forward;
    const pooled = noGrad(() => vgg.forward(x));
    assert.deepEqual(pooled.shape, [1, 1, 1, 512]);
    assert.ok((await pooled.data()).every(Number.isFinite));
    assert.throws(() => vgg.features(x, ["block6_conv1"]), /no layer block6_conv1/);
    pooled.dispose();
    x.dispose();
  } finally {
    vgg.dispose();
  }
});

Deno.test("VGG16 weights: a safetensors round trip, and errors naming the tensor and both shapes", async () => {
  const dir = await Deno.makeTempDir();
  const source = new Vgg16({ rng: new Rng(5) });
  const target = new Vgg16({ rng: new Rng(6) });
  try {
    const state = await modelState(source);
    const file = path.join(dir, "vgg16.safetensors");
    await Deno.writeFile(file, encodeSafetensors(state));
    loadVgg16Weights(target, await Deno.readFile(file));
    const loaded = await modelState(target);
    for (const name of ["block1_conv1.weight", "block3_conv2.bias", "block5_conv3.weight"]) {
      assert.deepEqual(loaded[name].data, state[name].data, name);
    }
    const withChanges = (change: (s: Record<string, TensorEntryInput>) => void) => {
      const copy: Record<string, TensorEntryInput> = { ...state };
      change(copy);
      return encodeSafetensors(copy);
    };
    assert.throws(
      () => loadVgg16Weights(target, withChanges((s) => delete s["block3_conv2.bias"]), "x.st"),
      /x\.st.*'block3_conv2\.bias' is missing \(expected \[256\]\)/,
    );
    // A PyTorch kernel left in [out, in, kh, kw].
    const torchLayout = { ...state["block1_conv1.weight"], shape: [64, 3, 3, 3] };
    assert.throws(
      () => loadVgg16Weights(target, withChanges((s) => s["block1_conv1.weight"] = torchLayout)),
      /'block1_conv1\.weight' has shape \[64, 3, 3, 3\], expected \[3, 3, 3, 64\]/,
    );
    // Nothing was written by the failed loads.
    assert.deepEqual(
      (await modelState(target))["block1_conv1.weight"].data,
      state["block1_conv1.weight"].data,
    );
  } finally {
    source.dispose();
    target.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("caffe preprocessing: RGB → BGR minus the means, and back with clipping", () => {
  const rgb = Uint8Array.from(randomData(4 * 5 * 3, new Rng(7), 0, 255).map(Math.round));
  rgb.set([10, 20, 30], 0);
  const bgr = caffePreprocess(rgb);
  assertClose(bgr.subarray(0, 3), [30 - 103.939, 20 - 116.779, 10 - 123.68], { atol: 1e-4 });
  assert.deepEqual(caffeDeprocess(bgr), rgb);
  assert.deepEqual([...caffeDeprocess([-200, 200, 0])], [124, 255, 0]);
});

Deno.test("PNG (RGB, RGBA 16-bit, grey) and JPEG files read back as RGB; bilinear resize", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const tile = shapesScene(24);
    const write = async (name: string, bytes: Uint8Array) => {
      await Deno.writeFile(path.join(dir, name), bytes);
      return readImage(path.join(dir, name));
    };
    assert.deepEqual(await write("rgb.png", await encodePng(tile)), tile);
    const rgba16 = new Uint16Array(24 * 24 * 4);
    for (let i = 0; i < 24 * 24; i++) {
      for (let c = 0; c < 3; c++) rgba16[4 * i + c] = tile.rgb[3 * i + c] * 257;
      rgba16[4 * i + 3] = 1000;
    }
    const png16 = encodePngFile({ width: 24, height: 24, data: rgba16, depth: 16, channels: 4 });
    assert.deepEqual(await write("rgba16.png", png16), tile);
    const grey = encodePngFile({ width: 2, height: 1, data: Uint8Array.of(0, 200), channels: 1 });
    assert.deepEqual([...(await write("grey.png", grey)).rgb], [0, 0, 0, 200, 200, 200]);
    const rgba = new Uint8Array(24 * 24 * 4);
    for (let i = 0; i < 24 * 24; i++) {
      rgba.set([...tile.rgb.subarray(3 * i, 3 * i + 3), 255], 4 * i);
    }
    const jpeg = encodeJpeg({ width: 24, height: 24, data: rgba }, 95).data;
    const fromJpeg = await write("scene.jpg", jpeg);
    assert.equal(fromJpeg.width, 24);
    assert.equal(fromJpeg.height, 24);
    const meanError = fromJpeg.rgb.reduce((s, v, i) => s + Math.abs(v - tile.rgb[i]), 0) /
      tile.rgb.length;
    assert.ok(meanError < 6, `JPEG mean error ${meanError}`);
    assert.throws(
      () => decodeImage(new TextEncoder().encode("GIF89a..."), "x.gif"),
      /x\.gif: not a PNG or JPEG/,
    );

    assert.deepEqual(resizeBilinear(tile, 24, 24), tile);
    const two: Tile = { width: 2, height: 1, rgb: Uint8Array.of(0, 0, 0, 200, 100, 40) };
    // Output centres at 0.125, 0.375, 0.625, 0.875 of the width → input x −0.25, 0.25, 0.75, 1.25.
    assert.deepEqual([...resizeBilinear(two, 4, 1).rgb], [
      0,
      0,
      0,
      50,
      25,
      10,
      150,
      75,
      30,
      200,
      100,
      40,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Gram matrix (÷ positions) and total variation match host references", async () => {
  const [h, w, c] = [3, 4, 5];
  const data = randomData(h * w * c, new Rng(8));
  const x = Tensor.from(data, [1, h, w, c]);
  const [gram, variation] = noGrad(() => [gramMatrix(x), totalVariation(x)]);
  const expected = new Float64Array(c * c);
  for (let i = 0; i < c; i++) {
    for (let j = 0; j < c; j++) {
      for (let p = 0; p < h * w; p++) {
        expected[i * c + j] += data[p * c + i] * data[p * c + j] / (h * w);
      }
    }
  }
  assert.deepEqual(gram.shape, [1, c, c]);
  assertClose(await gram.data(), expected, { what: "gram" });
  let tv = 0;
  const at = (y: number, xx: number, k: number) => data[(y * w + xx) * c + k];
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < w; xx++) {
      for (let k = 0; k < c; k++) {
        if (y + 1 < h) tv += Math.abs(at(y + 1, xx, k) - at(y, xx, k));
        if (xx + 1 < w) tv += Math.abs(at(y, xx + 1, k) - at(y, xx, k));
      }
    }
  }
  assertClose([await variation.item()], [tv], { what: "total variation" });
  for (const t of [x, gram, variation]) t.dispose();
});

/**
 * Random weights with He's variance (√((in + out)/in) × Glorot's): Glorot's, which Keras draws,
 * shrink the activations layer after layer until the style and content terms vanish beside the
 * total variation; trained weights keep them large, and so does this.
 */
async function heScaled(vgg: Vgg16): Promise<ModelState> {
  const state = await modelState(vgg);
  for (const [name, entry] of Object.entries(state)) {
    if (!name.endsWith(".weight")) continue;
    const [, , fanIn, fanOut] = entry.shape;
    entry.data = (entry.data as Float32Array).map((w) => w * Math.sqrt((fanIn + fanOut) / fanIn));
  }
  loadModelState(vgg, state);
  return state;
}

Deno.test("style transfer on random VGG16 weights at 64×64: gradients reach the pixels only, losses fall, the MLflow run", async () => {
  const dir = await Deno.makeTempDir();
  const vgg = new Vgg16({ rng: new Rng(9) });
  const savedUri = Deno.env.get("MLFLOW_TRACKING_URI");
  try {
    const weights = path.join(dir, "vgg16_random.safetensors");
    await Deno.writeFile(weights, encodeSafetensors(await heScaled(vgg)));
    vgg.freeze();
    const toTensor = (tile: Tile) => Tensor.from(caffePreprocess(tile.rgb), [1, 64, 64, 3]);
    const content = toTensor(shapesScene(64));
    const style = toTensor(stripesTexture(64));
    const targets = styleTargets(vgg, content, style);
    const image = noGrad(() => content.add(0)).requireGrad();
    tidy(() => styleTransferLoss(vgg, image, targets, DEFAULT_STYLE_WEIGHTS).total.backward());
    const grad = await image.grad!.data();
    assert.ok(grad.every(Number.isFinite), "finite pixel gradients");
    assert.ok(
      grad.filter((g) => g !== 0).length > grad.length / 2,
      "most pixel gradients non-zero",
    );
    assert.ok(vgg.parameters().every((p) => p.grad === null), "the frozen VGG16 gets no gradient");
    for (const t of [content, style, image, ...targets.styleGrams, targets.content]) t.dispose();

    const mlruns = path.join(dir, "mlruns");
    Deno.env.set("MLFLOW_TRACKING_URI", `file:${mlruns}`);
    const lines: string[] = [];
    const started = performance.now();
    const result = await runStyleExercise(options({
      weights,
      out: { isTTY: false, write: (text) => lines.push(text) },
    }));
    console.log(
      `10 quick steps at 64×64: ${((performance.now() - started) / 1000).toFixed(1)} s in all`,
    );
    const output = lines.join("");
    assert.equal(result.exercise, 4);
    assert.ok(result.checks.every((c) => c.pass || c.informational), output);
    assert.match(output, /^step 0\/10 - total .*, content 0\.000e\+0, style .*, tv /m);
    assert.match(output, /^step 10\/10 - total /m);

    const store = openStore(`file:${mlruns}`);
    const experiment = await store.getExperimentByName(STYLE_EXPERIMENT);
    assert.ok(experiment);
    const [run, ...others] = await store.searchRuns({ experimentIds: [experiment.experimentId] });
    assert.equal(others.length, 0);
    assert.equal(run.info.runName, "gatys_vgg16_img64_steps10");
    assert.equal(run.info.status, "FINISHED");
    assert.equal(run.params.image_size, "64");
    assert.equal(run.params.content_image, "generated: shapesScene");
    assert.equal(run.params.style_layers, STYLE_LAYERS.join(","));
    const series = (key: string) => run.metrics[key].map((p) => p.value);
    for (const key of ["total_loss", "content_loss", "style_loss", "tv_loss"]) {
      assert.deepEqual(run.metrics[key].map((p) => p.step), [...Array(11).keys()], key);
    }
    const total = series("total_loss");
    const styleLoss = series("style_loss");
    assert.ok(total.at(-1)! < total[0], `total loss ${total.join(", ")}`);
    assert.ok(styleLoss.at(-1)! < 0.95 * styleLoss[0], `style loss ${styleLoss.join(", ")}`);
    const parts = ["content_loss", "style_loss", "tv_loss"].map(series);
    assertClose([total.at(-1)!], [parts.reduce((s, p) => s + p.at(-1)!, 0)], { what: "sum" });
    for (const file of [CONTENT_ARTIFACT, STYLE_ARTIFACT, RESULT_ARTIFACT, COMPARISON_ARTIFACT]) {
      const png = decodeImage(await store.readArtifact(run.info.runId, file), file);
      if (file !== COMPARISON_ARTIFACT) assert.deepEqual([png.width, png.height], [64, 64], file);
    }
    const resultPng = decodeImage(await store.readArtifact(run.info.runId, RESULT_ARTIFACT), "r");
    assert.notDeepEqual(resultPng.rgb, shapesScene(64).rgb, "the pixels moved");
    const shapes = new TextDecoder().decode(
      await store.readArtifact(run.info.runId, "extractor_shapes.txt"),
    );
    assert.match(shapes, /^block5_conv2 \(4, 4, 512\)$/m);
  } finally {
    if (savedUri === undefined) Deno.env.delete("MLFLOW_TRACKING_URI");
    else Deno.env.set("MLFLOW_TRACKING_URI", savedUri);
    vgg.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without --weights (or with a missing file) exercise 4 stops with a UsageError saying what to supply", async () => {
  await assert.rejects(
    () => runStyleExercise(options({})),
    (e) =>
      e instanceof UsageError && /safetensors/.test(e.message) &&
      /block1_conv1\.weight \[3, 3, 3, 64\]/.test(e.message) && /models\/vgg16\.ts/.test(e.message),
  );
  await assert.rejects(
    () => runStyleExercise(options({ weights: "/nonexistent/vgg16.safetensors" })),
    (e) =>
      e instanceof UsageError &&
      /--weights \/nonexistent\/vgg16\.safetensors: no such file/.test(e.message),
  );
  await assert.rejects(
    () => runStyleExercise(options({ weights: "w", contentImage: "/nonexistent/a.png" })),
    (e) =>
      e instanceof UsageError && /--content \/nonexistent\/a\.png: no such file/.test(e.message),
  );
});
