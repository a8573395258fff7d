// Benchmark result files (`deno task bench` writes them to bench/results) for the benchmarks
// page: listed and read from that one folder only, and the roofline plot of one file.
import { pathInside, READ_LIMITS, readTextBounded } from "../tracking/files.ts";
import type { ResultFile } from "../bench/lib/report.ts";
import type { VegaLiteSpec } from "./islands/VegaChart.tsx";

const RESULT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*\.json$/;

/** Result file names in `dir`, newest date last (names end with the date). */
export async function listResultFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && RESULT_NAME.test(entry.name)) names.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

/** The newest file of each adapter and backend (names are `<adapter>-<backend>-<date>.json`). */
export function latestPerAdapter(names: readonly string[]): string[] {
  const latest = new Map<string, string>();
  for (const name of [...names].sort()) {
    latest.set(name.replace(/-\d{4}-\d{2}-\d{2}\.json$/, ""), name);
  }
  return [...latest.values()];
}

/** One result file by name, or null when the name is not a result file of `dir`. */
export async function readResultFile(dir: string, name: string): Promise<ResultFile | null> {
  if (!RESULT_NAME.test(name)) return null;
  const file = await pathInside(dir, [name]);
  const text = file && await readTextBounded(file, READ_LIMITS.artifact);
  return text ? JSON.parse(text) as ResultFile : null;
}

/**
 * Measured GFLOP/s against arithmetic intensity (FLOPs per byte) on log axes, under the roofline
 * min(compute ceiling, intensity × bandwidth ceiling) of the adapter's measured ceilings.
 */
export function rooflineSpec(result: ResultFile): VegaLiteSpec | null {
  const points = result.results
    .filter((r) => r.flops && r.bytes && r.gflops && !r.error)
    .map((r) => ({
      family: r.file.replace(/\.bench\.ts$/, ""),
      kernel: r.kernel,
      shape: r.shape,
      intensity: r.flops! / r.bytes!,
      gflops: r.gflops!,
      percent: r.percent === undefined ? null : Math.round(r.percent),
    }));
  const c = result.ceilings;
  if (points.length === 0 || !c) return null;
  const xs = points.map((p) => p.intensity);
  const [lo, hi] = [Math.min(...xs) / 2, Math.max(...xs) * 2];
  const ridge = c.gflops / c.gbps;
  const roof = [lo, ...(ridge > lo && ridge < hi ? [ridge] : []), hi]
    .map((x) => ({ intensity: x, gflops: Math.min(c.gflops, x * c.gbps) }));
  const x = {
    field: "intensity",
    type: "quantitative",
    scale: { type: "log" },
    title: "FLOPs per byte",
  };
  const y = { field: "gflops", type: "quantitative", scale: { type: "log" }, title: "GFLOP/s" };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: 420,
    height: 280,
    layer: [
      { data: { values: roof }, mark: { type: "line", color: "#999" }, encoding: { x, y } },
      {
        data: { values: points },
        mark: { type: "point", filled: true, tooltip: true },
        encoding: {
          x,
          y,
          // One colour per bench file (matmul, conv…): one per kernel would be ~60.
          color: { field: "family", type: "nominal", title: "bench" },
          tooltip: [
            { field: "kernel" },
            { field: "shape" },
            { field: "gflops", format: ".3~g" },
            { field: "intensity", format: ".3~g" },
            { field: "percent", title: "% of roofline" },
          ],
        },
      },
    ],
  };
}
