// A JSON artifact's numeric arrays as the chart they came from (the labs log the arrays behind
// each figure): 1-D arrays become lines over their sibling x array (epoch, step, frames…) or
// their index, rectangular 2-D arrays become heatmaps. Null when the JSON holds neither.
import type { VegaLiteSpec } from "./islands/VegaChart.tsx";

const X_KEYS = ["epoch", "epochs", "step", "steps", "frames", "x", "gaps"];
const MAX_LINES = 12;
const MAX_HEATMAPS = 2;
const MAX_CELLS = 20_000;

type Line = { name: string; x: number[] | null; y: number[] };
/** `rowLabels`/`colLabels`: a sibling array as long as the rows or the columns (query steps…). */
type Grid = { name: string; rows: number[][]; rowLabels?: number[]; colLabels?: number[] };

const isNumbers = (v: unknown): v is number[] =>
  Array.isArray(v) && v.length >= 2 && v.every((x) => typeof x === "number");

const isGrid = (v: unknown): v is number[][] =>
  Array.isArray(v) && v.length >= 2 && v.every(isNumbers) &&
  v.every((row) => row.length === (v[0] as number[]).length);

function collect(value: unknown, name: string, lines: Line[], grids: Grid[]): void {
  if (isGrid(value)) {
    grids.push({ name, rows: value });
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => collect(item, `${name}[${i}]`, lines, grids));
  } else if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    const xKey = X_KEYS.find((k) => isNumbers((value as Record<string, unknown>)[k]));
    const x = xKey ? (value as Record<string, number[]>)[xKey] : null;
    const siblingGrids = entries.map(([, item]) => item).filter(isGrid);
    const labels = new Set<string>();
    for (const grid of siblingGrids) {
      const rowLabels = entries.find(([, v]) => isNumbers(v) && v.length === grid.length);
      const colLabels = entries.find(([, v]) => isNumbers(v) && v.length === grid[0].length);
      if (rowLabels) labels.add(rowLabels[0]);
      if (colLabels) labels.add(colLabels[0]);
    }
    for (const [key, item] of entries) {
      const path = name ? `${name}.${key}` : key;
      if (key === xKey || labels.has(key)) continue;
      if (isGrid(item)) {
        const label = (n: number) =>
          entries.find(([k, v]) => labels.has(k) && isNumbers(v) && v.length === n)?.[1] as
            | number[]
            | undefined;
        grids.push({
          name: path,
          rows: item,
          rowLabels: label(item.length),
          colLabels: label(item[0].length),
        });
      } else if (isNumbers(item)) {
        lines.push({ name: path, x: x?.length === item.length ? x : null, y: item });
      } else collect(item, path, lines, grids);
    }
  }
}

function lineSpec(lines: Line[]): VegaLiteSpec {
  const values = lines.flatMap((l) => l.y.map((y, i) => ({ series: l.name, x: l.x?.[i] ?? i, y })));
  return {
    width: 520,
    height: 240,
    data: { values },
    mark: { type: "line", point: values.length <= 200, tooltip: true },
    encoding: {
      x: { field: "x", type: "quantitative", title: lines[0].x ? "x" : "index" },
      y: { field: "y", type: "quantitative", scale: { zero: false } },
      color: { field: "series", type: "nominal", legend: lines.length > 1 ? {} : null },
    },
  };
}

function heatmapSpec(grid: Grid): VegaLiteSpec {
  const values = grid.rows.flatMap((row, r) =>
    row.map((v, c) => ({ row: grid.rowLabels?.[r] ?? r, col: grid.colLabels?.[c] ?? c, v }))
  );
  return {
    title: grid.name,
    width: 520,
    height: Math.min(320, 12 * grid.rows.length),
    data: { values },
    mark: { type: "rect", tooltip: true },
    encoding: {
      x: { field: "col", type: "ordinal", axis: { labelOverlap: true } },
      y: { field: "row", type: "ordinal", axis: { labelOverlap: true } },
      color: { field: "v", type: "quantitative", scale: { scheme: "viridis" } },
    },
  };
}

export function jsonChartSpec(value: unknown): VegaLiteSpec | null {
  const lines: Line[] = [], grids: Grid[] = [];
  collect(value, "", lines, grids);
  const charts = [
    ...(lines.length ? [lineSpec(lines.slice(0, MAX_LINES))] : []),
    ...grids.filter((g) => g.rows.length * g.rows[0].length <= MAX_CELLS).slice(0, MAX_HEATMAPS)
      .map(heatmapSpec),
  ];
  if (charts.length === 0) return null;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    ...(charts.length === 1 ? charts[0] : { vconcat: charts }),
  };
}
