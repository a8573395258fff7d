// Learning-curve figures: a Vega-Lite spec, compiled and rendered headless by Vega to SVG, then
// rasterised to PNG by resvg (WebAssembly, no native dependency). resvg in wasm sees no system
// fonts, so DejaVu Sans from the npm package dejavu-fonts-ttf is handed to it; the JSON import
// puts that package in the module graph so Deno installs it (as labs/data/mnist.ts does).
import "dejavu-fonts-ttf/package.json" with { type: "json" };
import { initWasm, Resvg } from "@resvg/resvg-wasm";
import * as vega from "vega";
import * as vegaLite from "vega-lite";
import type { History } from "../engine/train/fit.ts";

/** A Vega-Lite spec (kept loose: the compiler validates it). */
export type VegaLiteSpec = Record<string, unknown>;

/** One curve: a name (legend entry) and its value per epoch. */
export interface Series {
  name: string;
  values: readonly number[];
}

export interface PanelOptions {
  title: string;
  /** y-axis title. */
  y: string;
  series: readonly Series[];
}

const FONT = "DejaVu Sans";
const PANEL_WIDTH = 360;
const PANEL_HEIGHT = 240;

/** The top level every lab figure shares: schema, title, white background, the font. */
export function figureFrame(title: string): VegaLiteSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: { text: title, fontSize: 15, offset: 12 },
    background: "white",
    config: { font: FONT, view: { stroke: "#ddd" } },
  };
}

/** One line chart per panel, side by side; epochs on x counted from 1, as Keras prints them. */
export function curvesSpec(title: string, panels: readonly PanelOptions[]): VegaLiteSpec {
  return {
    ...figureFrame(title),
    hconcat: panels.map((panel) => ({
      title: panel.title,
      width: PANEL_WIDTH,
      height: PANEL_HEIGHT,
      data: {
        values: panel.series.flatMap((s) =>
          s.values.map((value, i) => ({ epoch: i + 1, value, series: s.name }))
        ),
      },
      mark: { type: "line", point: true },
      encoding: {
        x: { field: "epoch", type: "quantitative", title: "epoch", axis: { tickMinStep: 1 } },
        y: { field: "value", type: "quantitative", title: panel.y, scale: { zero: false } },
        color: {
          field: "series",
          type: "nominal",
          title: null,
          sort: panel.series.map((s) => s.name),
          legend: { orient: "bottom" },
        },
      },
    })),
  };
}

/** Keras-style learning curves: accuracy and loss, training vs validation. */
export function learningCurvesSpec(title: string, history: History): VegaLiteSpec {
  const h = history.history;
  const pick = (names: [string, string][]) =>
    names.filter(([key]) => h[key]).map(([key, name]) => ({ name, values: h[key] }));
  return curvesSpec(title, [
    {
      title: "Accuracy",
      y: "accuracy",
      series: pick([["accuracy", "training"], ["val_accuracy", "validation"]]),
    },
    { title: "Loss", y: "loss", series: pick([["loss", "training"], ["val_loss", "validation"]]) },
  ]);
}

/** Compiles a Vega-Lite spec and renders it to an SVG string, headless. */
export async function toSvg(spec: VegaLiteSpec): Promise<string> {
  const compiled = vegaLite.compile(spec as unknown as vegaLite.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

let fontBuffers: Uint8Array[] | null = null;
let wasmReady: Promise<void> | null = null;

async function prepareResvg(): Promise<Uint8Array[]> {
  wasmReady ??= (async () => {
    const wasm = new URL("index_bg.wasm", import.meta.resolve("@resvg/resvg-wasm"));
    await initWasm(await Deno.readFile(wasm));
  })();
  await wasmReady;
  if (!fontBuffers) {
    const dir = new URL("ttf/", import.meta.resolve("dejavu-fonts-ttf/package.json"));
    fontBuffers = await Promise.all(
      ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"].map((f) => Deno.readFile(new URL(f, dir))),
    );
  }
  return fontBuffers;
}

/** Rasterises an SVG to PNG bytes at `scale` × its size. */
export async function svgToPng(svg: string, scale = 2): Promise<Uint8Array> {
  const fonts = await prepareResvg();
  const resvg = new Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    font: { fontBuffers: fonts, defaultFontFamily: FONT, sansSerifFamily: FONT },
  });
  try {
    const image = resvg.render();
    try {
      return image.asPng();
    } finally {
      image.free();
    }
  } finally {
    resvg.free();
  }
}

/** Vega-Lite spec → PNG bytes. */
export async function renderPng(spec: VegaLiteSpec): Promise<Uint8Array> {
  return svgToPng(await toSvg(spec));
}
