// The kernel benchmarks in a browser (`deno task web:build` bundles this file into
// /static/build/bench.js for the benchmark page): the bench files' own cases, which collect in
// KERNEL_BENCHES where there is no Deno.bench, timed like `deno task bench` (the same warm-up,
// regions of about regionMs ops with the device sync inside, `iterations` regions per case) and
// joined with their declared work by the same report code into a result file of
// bench/results/'s schema.
import {
  benchName,
  benchSettings,
  KERNEL_BENCHES,
  type KernelBench,
  rt,
  timeRegion,
  warmUp,
} from "./lib/kernel.ts";
import {
  buildRows,
  ceilingsOf,
  type DenoBenchJson,
  type RegionStats,
  type ResultFile,
  type ResultRow,
  withRoofline,
  type WorkRecord,
} from "./lib/report.ts";

/**
 * The bench files, loaded one after the other so that each case knows its file. Not
 * step.bench.ts: it times whole training steps with Deno.bench itself and declares no work.
 */
const BENCH_FILES: [string, () => Promise<unknown>][] = [
  ["ceiling.bench.ts", () => import("./ceiling.bench.ts")],
  ["matmul.bench.ts", () => import("./matmul.bench.ts")],
  ["elementwise.bench.ts", () => import("./elementwise.bench.ts")],
  ["reduce.bench.ts", () => import("./reduce.bench.ts")],
  ["conv.bench.ts", () => import("./conv.bench.ts")],
  ["pool.bench.ts", () => import("./pool.bench.ts")],
  ["attention.bench.ts", () => import("./attention.bench.ts")],
  ["rnn.bench.ts", () => import("./rnn.bench.ts")],
  ["decode.bench.ts", () => import("./decode.bench.ts")],
  ["optim.bench.ts", () => import("./optim.bench.ts")],
];

export interface BrowserBenchOptions {
  /** Cases whose name contains this text run (the ceilings always do), as `--filter`. */
  filter: string | null;
  regionMs: number;
  iterations: number;
  /** The rows so far, after each case. */
  onProgress?: (rows: ResultRow[]) => void;
}

let loading: Promise<{ spec: KernelBench; file: string }[]> | null = null;

/** Every case with its file, loading the bench files once (nothing runs yet). */
export function benchCases(): Promise<{ spec: KernelBench; file: string }[]> {
  return loading ??= (async () => {
    const cases: { spec: KernelBench; file: string }[] = [];
    for (const [file, load] of BENCH_FILES) {
      const before = KERNEL_BENCHES.length;
      await load();
      for (const spec of KERNEL_BENCHES.slice(before)) cases.push({ spec, file });
    }
    return cases;
  })();
}

/** Statistics of the region times, in nanoseconds, as `deno bench --json` reports them. */
function regionStats(ms: number[]): RegionStats {
  const ns = ms.map((t) => t * 1e6).sort((a, b) => a - b);
  const at = (q: number) => ns[Math.min(ns.length - 1, Math.floor(q * ns.length))];
  return {
    n: ns.length,
    min: ns[0],
    max: ns.at(-1)!,
    avg: ns.reduce((a, b) => a + b, 0) / ns.length,
    p75: at(0.75),
    p99: at(0.99),
  };
}

function browserVersion(): string {
  const brands = (navigator as { userAgentData?: { brands: { brand: string; version: string }[] } })
    .userAgentData?.brands ?? [];
  const brand = brands.find((b) => !/not.a.brand/i.test(b.brand));
  return brand ? `${brand.brand} ${brand.version}` : navigator.userAgent;
}

export async function runBrowserBench(options: BrowserBenchOptions): Promise<ResultFile> {
  benchSettings.regionMs = options.regionMs;
  benchSettings.iterations = options.iterations;
  const selected = (await benchCases()).filter(({ spec }) => {
    const name = benchName(spec);
    return name.startsWith("ceiling ") || !options.filter || name.includes(options.filter);
  });
  const json: DenoBenchJson = { runtime: browserVersion(), cpu: "", benches: [] };
  const records: WorkRecord[] = [];
  const rows = () => {
    const built = buildRows(json, records);
    return withRoofline(built, ceilingsOf(built));
  };
  for (const { spec, file } of selected) {
    const bench: DenoBenchJson["benches"][number] = {
      origin: `browser:///bench/${file}`,
      group: spec.kernel,
      name: benchName(spec),
      results: [],
    };
    try {
      const { op, record } = await warmUp(spec);
      records.push(record);
      const regions: number[] = [];
      for (let i = 0; i < options.iterations; i++) regions.push(await timeRegion(op, record.reps));
      bench.results.push({ ok: regionStats(regions) });
    } catch (e) {
      bench.results.push({ failed: (e as Error).message });
    }
    json.benches.push(bench);
    options.onProgress?.(rows());
  }
  const results = rows();
  const cores = navigator.hardwareConcurrency ?? 0;
  return {
    schema: 1,
    date: new Date().toISOString(),
    adapter: { ...rt.ctx.report, backend: "browser" },
    deno: { deno: `none (${browserVersion()})`, v8: "", typescript: "" },
    host: {
      os: (navigator as { platform?: string }).platform ?? "",
      arch: "",
      cpu: "",
      cores,
      // A page cannot read the load average.
      loadavg: { before: [], after: [] },
    },
    settings: {
      filter: options.filter,
      regionMs: options.regionMs,
      iterations: options.iterations,
    },
    ceilings: ceilingsOf(results),
    results,
  };
}
