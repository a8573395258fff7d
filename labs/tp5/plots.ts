// Vega-Lite specs for TP5's figures (lines with shaded spans, heatmaps, bar panels) and the one
// way a figure reaches MLflow: the PNG plus the raw arrays behind it as JSON (tests read those).
import type { Run } from "../../tracking/run.ts";
import { figureFrame, renderPng, type VegaLiteSpec } from "../figures.ts";

export interface Line {
  name: string;
  x: readonly number[];
  y: readonly number[];
  dashed?: boolean;
}

/** A shaded x-range [from, to] (inclusive ends, in x units). */
export interface Band {
  from: number;
  to: number;
  color: string;
  label?: string;
}

export interface LinePanel {
  title: string;
  xTitle: string;
  yTitle: string;
  lines: readonly Line[];
  bands?: readonly Band[];
  /** A dashed horizontal reference line (e.g. uniform attention 1/T). */
  rule?: { y: number; label: string };
  logX?: boolean;
  logY?: boolean;
  /** Start the y axis at 0 (weights: ripples around 1/T must not look like peaks). */
  yZero?: boolean;
  width?: number;
  height?: number;
}

function linePanel(panel: LinePanel): VegaLiteSpec {
  const width = panel.width ?? 360;
  const height = panel.height ?? 220;
  const layers: VegaLiteSpec[] = [];
  if (panel.bands?.length) {
    layers.push({
      data: { values: panel.bands.map((b) => ({ ...b, label: b.label ?? "" })) },
      mark: { type: "rect", opacity: 0.18 },
      encoding: {
        x: { field: "from", type: "quantitative" },
        x2: { field: "to" },
        color: { field: "color", type: "nominal", scale: null },
      },
    });
  }
  const names = panel.lines.map((l) => l.name);
  layers.push({
    data: {
      values: panel.lines.flatMap((l) =>
        l.y.map((y, i) => ({ x: l.x[i], y, series: l.name, dash: l.dashed ? "dashed" : "solid" }))
      ),
    },
    mark: { type: "line", strokeWidth: 1.6 },
    encoding: {
      x: {
        field: "x",
        type: "quantitative",
        title: panel.xTitle,
        scale: panel.logX ? { type: "log" } : { zero: false, nice: false },
      },
      y: {
        field: "y",
        type: "quantitative",
        title: panel.yTitle,
        scale: panel.logY ? { type: "log" } : { zero: panel.yZero ?? false },
      },
      color: {
        field: "series",
        type: "nominal",
        title: null,
        sort: names,
        legend: names.length > 1
          ? { orient: "bottom", symbolType: "stroke", symbolStrokeWidth: 2 }
          : null,
      },
      strokeDash: {
        field: "dash",
        type: "nominal",
        scale: { domain: ["solid", "dashed"], range: [[1, 0], [5, 3]] },
        legend: null,
      },
      detail: { field: "series" },
    },
  });
  if (panel.rule) {
    layers.push({
      data: { values: [panel.rule] },
      mark: { type: "rule", strokeDash: [4, 4], color: "#555" },
      encoding: { y: { field: "y", type: "quantitative" } },
    });
  }
  return { title: panel.title, width, height, layer: layers };
}

/** Line panels in a grid of `columns`; `sharedY` puts every panel on one y scale. */
export function linePanelsSpec(
  title: string,
  panels: readonly LinePanel[],
  columns = 2,
  sharedY = false,
): VegaLiteSpec {
  return {
    ...figureFrame(title),
    columns,
    concat: panels.map(linePanel),
    resolve: {
      scale: {
        color: "independent",
        strokeDash: "independent",
        ...(sharedY ? { y: "shared" } : {}),
      },
    },
  };
}

export interface Heatmap {
  title: string;
  /** rows × cols, row-major. */
  values: ArrayLike<number>;
  rows: number;
  cols: number;
  xTitle: string;
  yTitle: string;
  /** Label of row r (default r). */
  rowLabel?: (r: number) => number;
  colorTitle?: string;
  width?: number;
  height?: number;
}

function heatmapPanel(h: Heatmap): VegaLiteSpec {
  if (h.values.length !== h.rows * h.cols) {
    throw new Error(`heatmapSpec: ${h.values.length} values, expected ${h.rows}×${h.cols}`);
  }
  const values = [];
  for (let r = 0; r < h.rows; r++) {
    for (let c = 0; c < h.cols; c++) {
      values.push({ row: h.rowLabel ? h.rowLabel(r) : r, col: c, w: h.values[r * h.cols + c] });
    }
  }
  return {
    title: h.title,
    width: h.width ?? 420,
    height: h.height ?? 240,
    data: { values },
    mark: { type: "rect" },
    encoding: {
      x: {
        field: "col",
        type: "ordinal",
        title: h.xTitle,
        axis: { labelAngle: 0, values: ticks(h.cols) },
      },
      y: { field: "row", type: "ordinal", title: h.yTitle, sort: "ascending" },
      color: {
        field: "w",
        type: "quantitative",
        title: h.colorTitle ?? "weight",
        scale: { scheme: "viridis" },
      },
    },
  };
}

/** Every 10th index as an axis tick (ordinal axes label every column otherwise). */
function ticks(n: number): number[] {
  const step = n > 40 ? 10 : 5;
  return Array.from({ length: Math.ceil(n / step) }, (_, i) => i * step);
}

/** One or more heatmaps (viridis, colour bar) side by side. */
export function heatmapSpec(title: string, maps: readonly Heatmap[]): VegaLiteSpec {
  return {
    ...figureFrame(title),
    hconcat: maps.map(heatmapPanel),
    resolve: { scale: { color: "independent" } },
  };
}

export interface BarPanel {
  title: string;
  yTitle: string;
  bars: readonly { name: string; value: number; std?: number }[];
  logY?: boolean;
}

/** Bar panels side by side, with ± std error bars where given. */
export function barPanelsSpec(title: string, panels: readonly BarPanel[]): VegaLiteSpec {
  return {
    ...figureFrame(title),
    hconcat: panels.map(barPanel),
  };
}

function barPanel(p: BarPanel): VegaLiteSpec {
  // A log axis has no zero: bars start at a power of ten below the smallest value and error
  // bars are clipped there.
  const positive = p.bars.map((b) => b.value).filter((v) => v > 0);
  const floor = p.logY && positive.length ? 10 ** Math.floor(Math.log10(Math.min(...positive))) : 0;
  const y = {
    field: "value",
    type: "quantitative",
    title: p.yTitle,
    scale: p.logY ? { type: "log", domainMin: floor } : {},
  };
  return {
    title: p.title,
    width: 260,
    height: 220,
    data: {
      values: p.bars.map((b) => ({
        name: b.name,
        value: b.value,
        lo: Math.max(b.value - (b.std ?? 0), floor),
        hi: b.value + (b.std ?? 0),
      })),
    },
    layer: [
      {
        mark: { type: "bar" },
        encoding: {
          x: { field: "name", type: "nominal", title: null, sort: null, axis: { labelAngle: -30 } },
          y,
          ...(p.logY ? { y2: { datum: floor } } : {}),
          color: { field: "name", type: "nominal", legend: null, sort: null },
        },
      },
      {
        mark: { type: "rule", color: "black" },
        encoding: {
          x: { field: "name", type: "nominal", sort: null },
          y: { field: "lo", type: "quantitative" },
          y2: { field: "hi" },
        },
      },
    ],
  };
}

/** Logs `<name>.png` (the rendered spec) and `<name>.json` (the raw arrays behind it). */
export async function logFigure(
  run: Run,
  name: string,
  spec: VegaLiteSpec,
  raw: unknown,
): Promise<void> {
  const png = await renderPng(spec);
  await run.logArtifact(`${name}.png`, png);
  await run.logDict(`${name}.json`, raw);
}
