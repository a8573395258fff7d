// TP3 Exercise 4 (spec labs/TP1-TP4.md §4.5, issue #16 item 5): neural style transfer, finished.
// The students loaded VGG16, froze it and built the six-output extractor, then stopped; here the
// extractor drives the Gatys loop (labs/tp3/gatys.ts) on the user's VGG16 ImageNet weights
// (`--weights FILE`, safetensors; models/vgg16.ts says how to convert Keras' or PyTorch's). The
// content and style images are PNG or JPEG files (`--content`, `--style`), stretched to
// `--image-size` (default 256); without them, two generated images stand in: a scene of plain
// shapes (sky, sun, hills, a house) as content and a colourful wavy-stripe texture as style.
// MLflow: experiment TP3_Style_Transfer, one run with the settings as params, the weighted
// losses per step as metrics (total_loss, content_loss, style_loss, tv_loss) and the images as
// artifacts (content.png, style.png as optimised, result.png, comparison.png).
import * as path from "node:path";
import { noGrad } from "../../engine/autograd.ts";
import { Rng } from "../../engine/random.ts";
import { formatDuration } from "../../engine/train/progress.ts";
import { Tensor, tidy } from "../../engine/tensor.ts";
import {
  caffeDeprocess,
  caffePreprocess,
  CONTENT_LAYERS,
  loadVgg16Weights,
  STYLE_LAYERS,
  Vgg16,
  VGG16_PARAMS,
} from "../../models/vgg16.ts";
import { withRun } from "../../tracking/run.ts";
import { openStore } from "../../tracking/store.ts";
import { type Check, type ExerciseResult, tupleText } from "../checks.ts";
import { logUnitResult, unitTags } from "../unit_runs.ts";
import { encodePng, gridPng, type Tile } from "../images.ts";
import { UsageError } from "../registry.ts";
import type { Tp3Options } from "./common.ts";
import {
  DEFAULT_PIXEL_ADAM,
  DEFAULT_STYLE_WEIGHTS,
  type LossValues,
  transferStyle,
} from "./gatys.ts";
import { readImage, resizeBilinear } from "./image_io.ts";

export const STYLE_EXPERIMENT = "TP3_Style_Transfer";
export const CONTENT_ARTIFACT = "content.png";
export const STYLE_ARTIFACT = "style.png";
export const RESULT_ARTIFACT = "result.png";
export const COMPARISON_ARTIFACT = "comparison.png";
/** What to tell a user who has no weights file. */
export const MISSING_WEIGHTS_MESSAGE =
  "exercise 4 (style transfer) needs the VGG16 ImageNet weights as a safetensors file: " +
  "--weights FILE, with tensors block1_conv1.weight [3, 3, 3, 64], block1_conv1.bias [64] … " +
  "block5_conv3.bias [512]; the header of models/vgg16.ts converts Keras' " +
  "VGG16(include_top=False) or torchvision's vgg16 weights in a few lines of Python";

/** The unit name of the style transfer (`--unit style`). */
export const STYLE_UNIT = "style";

/** What the run logs for the closing table (unit_result.json). */
export type StyleResult = Pick<ExerciseResult, "title" | "checks">;

export interface StyleConfig {
  weightsFile: string;
  contentImage?: string;
  styleImage?: string;
  steps: number;
  imageSize: number;
  quick: boolean;
}

export function styleConfig(options: Tp3Options): StyleConfig {
  if (options.weights === undefined) throw new UsageError(MISSING_WEIGHTS_MESSAGE);
  const positive = (flag: string, value: number | undefined, fallback: number, min: number) => {
    const v = value ?? fallback;
    if (!Number.isInteger(v) || v < min) {
      throw new UsageError(`${flag} ${v}: expected an integer ≥ ${min}`);
    }
    return v;
  };
  return {
    weightsFile: options.weights,
    contentImage: options.contentImage,
    styleImage: options.styleImage,
    steps: positive("--steps", options.steps, options.quick ? 10 : 200, 1),
    // Five 2×2 pools before block5_conv1 would leave nothing of a smaller image.
    imageSize: positive("--image-size", options.imageSize, options.quick ? 64 : 256, 32),
    quick: options.quick,
  };
}

/** HSV (h in turns, s and v in [0, 1]) → RGB bytes. */
function hsv(h: number, s: number, v: number): [number, number, number] {
  const f = (n: number) => {
    const k = (n + h * 6) % 6;
    return Math.round(255 * (v - v * s * Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return [f(5), f(3), f(1)];
}

function paint(size: number, colour: (x: number, y: number) => [number, number, number]): Tile {
  const rgb = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) rgb.set(colour(x / size, y / size), (y * size + x) * 3);
  }
  return { width: size, height: size, rgb };
}

/** The stand-in content: sky gradient, sun, two hills and a red house with a roof and a door. */
export function shapesScene(size: number): Tile {
  return paint(size, (x, y) => {
    const inHouse = x > 0.22 && x < 0.5 && y > 0.5 && y < 0.78;
    if (inHouse && x > 0.32 && x < 0.4 && y > 0.62) return [90, 55, 30];
    if (inHouse) return [200, 50, 40];
    if (y > 0.28 && y <= 0.5 && Math.abs(x - 0.36) < (y - 0.28) * 0.8) return [70, 40, 40];
    if (y > 0.62 + 0.06 * Math.sin(7 * x)) return [60, 150 + Math.round(60 * y), 70];
    if (y > 0.56 + 0.1 * Math.cos(5 * x + 1)) return [40, 110, 60];
    if ((x - 0.75) ** 2 + (y - 0.2) ** 2 < 0.01) return [250, 210, 60];
    return [Math.round(110 + 120 * y), Math.round(160 + 80 * y), 240];
  });
}

/** The stand-in style: saturated diagonal stripes of cycling hue, waved, with dark seams. */
export function stripesTexture(size: number): Tile {
  return paint(size, (x, y) => {
    const phase = 4 * (x + y) + 0.3 * Math.sin(2 * Math.PI * 3 * (x - y));
    const seam = phase - Math.floor(phase) < 0.08;
    return hsv(phase / 6, 0.85, seam ? 0.2 : 0.95);
  });
}

async function inputImage(
  file: string | undefined,
  flag: string,
  stand: (size: number) => Tile,
  size: number,
): Promise<{ tile: Tile; name: string }> {
  if (file === undefined) return { tile: stand(size), name: `generated: ${stand.name}` };
  try {
    await Deno.stat(file);
  } catch {
    throw new UsageError(`${flag} ${file}: no such file (a PNG or JPEG image)`);
  }
  return { tile: resizeBilinear(await readImage(file), size, size), name: path.basename(file) };
}

async function readWeights(file: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`--weights ${file}: no such file; ${MISSING_WEIGHTS_MESSAGE}`);
    }
    throw error;
  }
}

const toTensor = (tile: Tile) =>
  Tensor.from(caffePreprocess(tile.rgb), [1, tile.height, tile.width, 3]).keep();

const e3 = (x: number) => x.toExponential(3);
const lossLine = (l: LossValues) =>
  `total ${e3(l.total)}, content ${e3(l.content)}, style ${e3(l.style)}, tv ${
    e3(l.totalVariation)
  }`;

/** §4.5's extractor as UD's demo ran it: the six output shapes for this image size. */
function extractorShapes(vgg: Vgg16, image: Tensor): string[] {
  const names = [...STYLE_LAYERS, ...CONTENT_LAYERS];
  const features = noGrad(() => tidy(() => vgg.features(image, names)));
  const shapes = features.map((f, i) => `${names[i]} ${tupleText(f.shape.slice(1))}`);
  for (const f of features) f.dispose();
  return shapes;
}

export async function runStyleExercise(options: Tp3Options): Promise<ExerciseResult> {
  const started = performance.now();
  const config = styleConfig(options);
  options.out.write("\n== TP3 Exercise 4 — neural style transfer (VGG16, Gatys loop) ==\n");
  const size = config.imageSize;
  const content = await inputImage(config.contentImage, "--content", shapesScene, size);
  const style = await inputImage(config.styleImage, "--style", stripesTexture, size);
  // A generator of its own: the initial weights are overwritten, the global stream stays put.
  const vgg = new Vgg16({ rng: new Rng(options.seed) });
  const tensors = { content: toTensor(content.tile), style: toTensor(style.tile) };
  try {
    loadVgg16Weights(vgg, await readWeights(config.weightsFile), config.weightsFile);
    const params = vgg.trainableCount();
    const shapes = extractorShapes(vgg, tensors.content);
    const expectedShapes = [1, 2, 4, 8, 16, 16].map((f, i) =>
      tupleText([Math.floor(size / f), Math.floor(size / f), [64, 128, 256, 512, 512, 512][i]])
    );
    const runName = `gatys_vgg16_img${size}_steps${config.steps}`;
    const outcome = await withRun(openStore(), STYLE_EXPERIMENT, {
      runName,
      tags: {
        "denograd.lab": "tp3",
        "denograd.exercise": "4",
        ...unitTags(options.plan, STYLE_UNIT),
      },
    }, async (run) => {
      await run.logParams({
        weights_file: path.basename(config.weightsFile),
        content_image: content.name,
        style_image: style.name,
        image_size: size,
        steps: config.steps,
        preprocessing: "caffe (RGB→BGR, minus ImageNet means, no scaling)",
        init: "content image",
        content_layers: CONTENT_LAYERS.join(","),
        style_layers: STYLE_LAYERS.join(","),
        content_weight: DEFAULT_STYLE_WEIGHTS.content,
        style_weight: DEFAULT_STYLE_WEIGHTS.style,
        total_variation_weight: DEFAULT_STYLE_WEIGHTS.totalVariation,
        gram_normalisation: "positions (H·W)",
        optimizer: "adam",
        learning_rate: DEFAULT_PIXEL_ADAM.lr,
        beta_1: DEFAULT_PIXEL_ADAM.beta1,
        epsilon: DEFAULT_PIXEL_ADAM.epsilon,
        quick: config.quick,
      });
      await run.logText("extractor_shapes.txt", shapes.join("\n") + "\n");
      await run.logArtifact(CONTENT_ARTIFACT, await encodePng(content.tile));
      await run.logArtifact(STYLE_ARTIFACT, await encodePng(style.tile));
      const every = Math.max(1, Math.round(config.steps / 10));
      let stepsStarted = performance.now();
      const transfer = await transferStyle(vgg, tensors.content, tensors.style, {
        steps: config.steps,
        onStep: async (step, losses) => {
          if (step === 0) stepsStarted = performance.now();
          await run.logMetrics({
            total_loss: losses.total,
            content_loss: losses.content,
            style_loss: losses.style,
            tv_loss: losses.totalVariation,
          }, step);
          if (step % every === 0 || step === config.steps) {
            const perStep = step ? (performance.now() - stepsStarted) / 1000 / step : 0;
            options.out.write(
              `step ${step}/${config.steps} - ${lossLine(losses)}` +
                (step ? ` - ${perStep.toFixed(2)} s/step\n` : "\n"),
            );
          }
        },
      });
      const secondsPerStep = (performance.now() - stepsStarted) / 1000 / config.steps;
      const result: Tile = { width: size, height: size, rgb: caffeDeprocess(transfer.pixels) };
      await run.logArtifact(RESULT_ARTIFACT, await encodePng(result));
      await run.logArtifact(
        COMPARISON_ARTIFACT,
        await gridPng({
          title: `Style transfer: ${config.steps} Adam steps on the pixels (VGG16)`,
          columns: ["content", "style", "result"],
          rows: [{ label: "", tiles: [content.tile, style.tile, result] }],
          cell: Math.max(128, size),
        }),
      );
      await run.logMetrics({ seconds_per_step: secondsPerStep });
      options.out.write(
        `${runName}: ${lossLine(transfer.losses[0])} → ${lossLine(transfer.losses.at(-1)!)}; ` +
          `${formatDuration(secondsPerStep * config.steps)}; MLflow run ${run.id}\n`,
      );
      const [first, last] = [transfer.losses[0], transfer.losses.at(-1)!];
      const noStudent = "— (no student wrote the loop)";
      const checks: Check[] = [
        {
          name: "Style transfer: total loss fell",
          value: `${e3(first.total)} → ${e3(last.total)}`,
          students: noStudent,
          target: "final < initial",
          pass: last.total < first.total,
        },
        {
          name: "VGG16 base: parameters",
          value: params.toLocaleString("en-US"),
          students: "Keras VGG16(include_top=False)",
          target: "= 14,714,688",
          pass: params === VGG16_PARAMS,
        },
        {
          name: "Extractor: six output shapes",
          value: shapes.map((s) => s.split(" ")[1]).join(" "),
          students: "UD printed them (512×512 input)",
          target: `§4.5 scaled to ${size}×${size}`,
          pass: shapes.every((s, i) => s.endsWith(expectedShapes[i])),
        },
        ...([["content", "content"], ["style", "style"], [
          "total variation",
          "totalVariation",
        ]] as const)
          .map(([label, key]): Check => ({
            name: `Style transfer: ${label} loss (weighted)`,
            value: `${e3(first[key])} → ${e3(last[key])}`,
            students: noStudent,
            target: "reported",
            pass: true,
            informational: true,
          })),
      ];
      const unitResult: StyleResult = {
        title: `Neural style transfer (${secondsPerStep.toFixed(2)} s/step)`,
        checks,
      };
      await logUnitResult(run, unitResult);
      return { id: run.id, unitResult };
    });
    return {
      exercise: 4,
      ...outcome.unitResult,
      runs: [`${runName} (${outcome.id})`],
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
    vgg.dispose();
  }
}
