// TP3's figures beyond the learning curves: the confusion matrix and per-class accuracy of the
// test set, a grid of misclassified test images, and the first conv layer's filters with the
// feature maps they give for one image.
import { barPanelsSpec } from "../tp5/plots.ts";
import { figureFrame, type VegaLiteSpec } from "../figures.ts";
import { greyTile, gridPng, imageTile, type Tile } from "../images.ts";

/** counts[true·C + predicted]. */
export function confusionMatrix(labels: Int32Array, predicted: Int32Array, classes: number) {
  const counts = new Int32Array(classes * classes);
  for (const [i, label] of labels.entries()) counts[label * classes + predicted[i]]++;
  return counts;
}

/** Correct over total per true class (NaN for a class with no test image). */
export function perClassAccuracy(counts: Int32Array, classes: number): number[] {
  return Array.from({ length: classes }, (_, t) => {
    let total = 0;
    for (let p = 0; p < classes; p++) total += counts[t * classes + p];
    return counts[t * classes + t] / total;
  });
}

export function confusionSpec(
  title: string,
  classes: readonly string[],
  counts: Int32Array,
): VegaLiteSpec {
  const values = [];
  for (const [t, truth] of classes.entries()) {
    for (const [p, predicted] of classes.entries()) {
      values.push({ truth, predicted, count: counts[t * classes.length + p] });
    }
  }
  const order = [...classes];
  const axis = (field: string, title: string) => ({
    field,
    type: "nominal",
    title,
    sort: order,
  });
  return {
    ...figureFrame(title),
    width: 40 * classes.length,
    height: 40 * classes.length,
    data: { values },
    encoding: {
      x: { ...axis("predicted", "predicted class"), axis: { labelAngle: -40 } },
      y: axis("truth", "true class"),
    },
    layer: [
      {
        mark: "rect",
        encoding: {
          color: {
            field: "count",
            type: "quantitative",
            scale: { type: "symlog", scheme: "blues" },
            title: "test images",
          },
        },
      },
      {
        mark: { type: "text", fontSize: 10 },
        encoding: {
          text: { field: "count", type: "quantitative" },
          color: { condition: { test: "datum.count > 300", value: "white" }, value: "black" },
        },
      },
    ],
  };
}

export function perClassSpec(
  title: string,
  classes: readonly string[],
  accuracy: readonly number[],
): VegaLiteSpec {
  return barPanelsSpec(title, [{
    title: "test accuracy per true class",
    yTitle: "accuracy",
    bars: classes.map((name, i) => ({ name, value: accuracy[i] })),
  }]);
}

export interface Misclassified {
  index: number;
  label: number;
  predicted: number;
  /** Probability given to the predicted class. */
  confidence: number;
}

/** Up to `count` misclassified test images, most confident mistakes first. */
export function worstMistakes(
  labels: Int32Array,
  probabilities: Float32Array,
  classes: number,
  count: number,
): Misclassified[] {
  const mistakes: Misclassified[] = [];
  for (const [index, label] of labels.entries()) {
    const row = probabilities.subarray(index * classes, (index + 1) * classes);
    let predicted = 0;
    for (let c = 1; c < classes; c++) if (row[c] > row[predicted]) predicted = c;
    if (predicted !== label) {
      mistakes.push({ index, label, predicted, confidence: row[predicted] });
    }
  }
  return mistakes.sort((a, b) => b.confidence - a.confidence).slice(0, count);
}

export function mistakesPng(
  title: string,
  images: Float32Array,
  shape: readonly number[],
  classes: readonly string[],
  mistakes: readonly Misclassified[],
  perRow = 5,
): Promise<Uint8Array> {
  const rows = [];
  for (let start = 0; start < mistakes.length; start += perRow) {
    const slice = mistakes.slice(start, start + perRow);
    rows.push({
      label: "",
      tiles: slice.map((m) => imageTile(images, m.index, shape)),
      captions: slice.map((m) =>
        `${classes[m.label]} → ${classes[m.predicted]} ${(100 * m.confidence).toFixed(0)}%`
      ),
    });
  }
  return gridPng({
    title,
    columns: [],
    rows,
    cell: 150,
    footer: "caption: true class → predicted class, with the probability the model gave it",
  });
}

/** The tile of filter `f` of a [kh, kw, in, out] kernel, scaled over its own range. */
function filterTile(kernel: Float32Array, shape: readonly number[], f: number): Tile {
  const [kh, kw, cin, cout] = shape;
  const values = new Float32Array(kh * kw * cin);
  for (let i = 0; i < kh * kw * cin; i++) values[i] = kernel[i * cout + f];
  const low = Math.min(...values), high = Math.max(...values);
  const range = { low, high: high > low ? high : low + 1 };
  // An RGB filter shows as colour; any other channel count as its first input channel in grey.
  return cin === 3 ? imageTile(values, 0, [kh, kw, 3], range) : greyTile(
    values.filter((_, i) => i % cin === 0),
    kw,
    kh,
    range,
  );
}

/** Map `f` of a [1, h, w, filters] activation, scaled over its own range. */
function mapTile(maps: Float32Array, [, h, w, filters]: readonly number[], f: number): Tile {
  const values = Float32Array.from({ length: h * w }, (_, p) => maps[p * filters + f]);
  const low = Math.min(...values), high = Math.max(...values);
  return greyTile(values, w, h, { low, high: high > low ? high : low + 1 });
}

export interface FirstLayer {
  image: Float32Array;
  imageShape: readonly number[];
  caption: string;
  kernel: Float32Array;
  kernelShape: readonly number[];
  maps: Float32Array;
  mapShape: readonly number[];
}

/** The input image, then each filter above the feature map it gives, eight per row. */
export function firstLayerPng(title: string, layer: FirstLayer, perRow = 8): Promise<Uint8Array> {
  const filters = layer.kernelShape[3];
  const rows = [{
    label: "input",
    tiles: [imageTile(layer.image, 0, layer.imageShape)],
    captions: [layer.caption],
  }];
  for (let start = 0; start < filters; start += perRow) {
    const ids = Array.from({ length: Math.min(perRow, filters - start) }, (_, i) => start + i);
    rows.push(
      {
        label: "filter",
        tiles: ids.map((f) => filterTile(layer.kernel, layer.kernelShape, f)),
        captions: ids.map((f) => `#${f}`),
      },
      {
        label: "map",
        tiles: ids.map((f) => mapTile(layer.maps, layer.mapShape, f)),
        captions: ids.map(() => ""),
      },
    );
  }
  return gridPng({
    title,
    columns: [],
    rows,
    cell: 72,
    footer: "filters and maps each scaled over their own range (dark = low, light = high)",
  });
}
