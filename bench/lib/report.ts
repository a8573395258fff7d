// Report maths: joins `deno bench --json` with the work the benches declared, derives throughput
// and each kernel's share of its roofline bound, formats tables and compares two result files.
import type { AdapterReport } from "../../engine/device.ts";
import type { Work } from "./work.ts";

/** Environment through which bench/run.ts talks to the bench processes. */
export const BENCH_ENV = {
  /** File the benches append `BenchRecord` lines to. */
  records: "DENOGRAD_BENCH_RECORDS",
  /** Target length of one timed region in ms (ops are repeated until it is reached). */
  regionMs: "DENOGRAD_BENCH_REGION_MS",
  /** Timed regions per case. */
  iterations: "DENOGRAD_BENCH_ITERATIONS",
  /** Set to "after" for the second measurement of the ceilings, once every kernel has run. */
  ceilingPass: "DENOGRAD_BENCH_CEILING_PASS",
} as const;

export type CeilingKind = "bandwidth" | "compute";

/** What a case declares, as the runner reads it back. */
export interface WorkRecord extends Work {
  type: "work";
  name: string;
  kernel: string;
  variant?: string;
  shape: string;
  /** Ops per timed region: per-op time is the region time divided by this. */
  reps: number;
  ceiling?: CeilingKind;
}

export interface AdapterRecord {
  type: "adapter";
  report: AdapterReport;
  backend: string;
}

export type BenchRecord = WorkRecord | AdapterRecord;

/** The adapter's measured ceilings. */
export interface Ceilings {
  /** Copy bandwidth, GB/s counting read and write. */
  gbps: number;
  /** FMA throughput, GFLOP/s. */
  gflops: number;
}

export interface Roofline {
  gflops?: number;
  gbps?: number;
  /** Which side of the roofline bounds this kernel: its FLOPs or its bytes. */
  bound?: "compute" | "memory";
  /** Measured throughput as a share of min(compute ceiling, intensity × bandwidth ceiling), %. */
  percent?: number;
}

/**
 * Throughput of one op of `work` taking `ms`, and its share of the roofline. The bound time is
 * max(FLOPs / compute ceiling, bytes / bandwidth ceiling) — the same as throughput against
 * min(compute, intensity × bandwidth) — so a kernel declaring only FLOPs or only bytes still
 * gets a share against the ceiling it declared work for.
 */
export function roofline(work: Work, ms: number, ceilings: Ceilings | null): Roofline {
  const out: Roofline = {};
  if (work.flops) out.gflops = work.flops / (ms * 1e6);
  if (work.bytes) out.gbps = work.bytes / (ms * 1e6);
  if (!ceilings || !(work.flops || work.bytes)) return out;
  const computeMs = (work.flops ?? 0) / (ceilings.gflops * 1e6);
  const memoryMs = (work.bytes ?? 0) / (ceilings.gbps * 1e6);
  out.bound = computeMs >= memoryMs ? "compute" : "memory";
  out.percent = 100 * Math.max(computeMs, memoryMs) / ms;
  return out;
}

/** Statistics of one timed region, as `deno bench --json` reports them (nanoseconds). */
export interface RegionStats {
  n: number;
  min: number;
  max: number;
  avg: number;
  p75: number;
  p99: number;
}

/** The parts of `deno bench --json` the report reads. */
export interface DenoBenchJson {
  runtime: string;
  cpu: string;
  benches: {
    origin: string;
    group: string | null;
    name: string;
    results: ({ ok: RegionStats } | { failed: unknown })[];
  }[];
}

/** `deno bench --json` prints the benches' own console output first, then one JSON document. */
export function splitBenchOutput(stdout: string): { json: DenoBenchJson; logs: string } {
  const start = stdout.search(/^\{\s*"version"/m);
  if (start < 0) throw new Error(`bench: no JSON report in the output of deno bench:\n${stdout}`);
  return { json: JSON.parse(stdout.slice(start)), logs: stdout.slice(0, start).trimEnd() };
}

/** One bench's line in a result file. Times are per op (one region divided by its reps), in ms. */
export interface ResultRow extends Roofline, Work {
  name: string;
  kernel: string;
  shape: string;
  /** Bench file, relative to the bench folder. */
  file: string;
  /** Ops per timed region; 1 for benches that declare no work (their figure is per region). */
  reps: number;
  /** Timed regions measured. */
  n: number;
  ms?: { avg: number; min: number; p75: number; max: number };
  ceiling?: CeilingKind;
  /** Whether the bench declared its work through benchKernel. */
  declared: boolean;
  error?: string;
}

/**
 * Joins each bench with the work it declared (benches that declared none report time only);
 * the ceilings come first.
 */
export function buildRows(json: DenoBenchJson, records: BenchRecord[]): ResultRow[] {
  const work = new Map<string, WorkRecord>();
  for (const r of records) if (r.type === "work") work.set(r.name, r);
  const rows = json.benches.map((bench) => {
    const declared = work.get(bench.name);
    const result = bench.results[0];
    const reps = declared?.reps ?? 1;
    const row: ResultRow = {
      name: bench.name,
      kernel: declared ? [declared.kernel, declared.variant].filter(Boolean).join(" ") : bench.name,
      shape: declared?.shape ?? "",
      file: bench.origin.replace(/^.*\/bench\//, ""),
      reps,
      n: 0,
      declared: Boolean(declared),
      ...(declared?.flops ? { flops: declared.flops } : {}),
      ...(declared?.bytes ? { bytes: declared.bytes } : {}),
      ...(declared?.ceiling ? { ceiling: declared.ceiling } : {}),
    };
    if (!result || !("ok" in result)) {
      row.error = result ? JSON.stringify(result.failed) : "did not run";
      return row;
    }
    const perOp = (ns: number) => ns / 1e6 / reps;
    const s = result.ok;
    row.n = s.n;
    row.ms = { avg: perOp(s.avg), min: perOp(s.min), p75: perOp(s.p75), max: perOp(s.max) };
    return row;
  });
  return [...rows.filter((r) => r.ceiling), ...rows.filter((r) => !r.ceiling)];
}

/** The best copy bandwidth and FMA throughput among the ceiling benches; null if either is missing. */
export function ceilingsOf(rows: ResultRow[]): Ceilings | null {
  let gbps = 0, gflops = 0;
  for (const row of rows) {
    if (!row.ms) continue;
    if (row.ceiling === "bandwidth" && row.bytes) {
      gbps = Math.max(gbps, row.bytes / (row.ms.avg * 1e6));
    }
    if (row.ceiling === "compute" && row.flops) {
      gflops = Math.max(gflops, row.flops / (row.ms.avg * 1e6));
    }
  }
  return gbps && gflops ? { gbps, gflops } : null;
}

/** Adds throughput and roofline share (from the mean op time) to every measured row. */
export function withRoofline(rows: ResultRow[], ceilings: Ceilings | null): ResultRow[] {
  return rows.map((row) => (row.ms ? { ...row, ...roofline(row, row.ms.avg, ceilings) } : row));
}

export interface ResultFile {
  schema: 1;
  /** ISO time the run ended. */
  date: string;
  adapter: AdapterReport & { backend: string };
  deno: { deno: string; v8: string; typescript: string };
  host: {
    os: string;
    arch: string;
    cpu: string;
    cores: number;
    /** 1, 5 and 15-minute load averages before and after the run: software adapters share the CPU. */
    loadavg: { before: number[]; after: number[] };
  };
  settings: { filter: string | null; regionMs: number; iterations: number };
  ceilings: Ceilings | null;
  results: ResultRow[];
}

/** `bench/results/<adapter>-<backend>-<date>.json`: the adapter's name before any "(…)" detail. */
export function resultFileName(adapter: AdapterReport, backend: string, date: string): string {
  const name = adapter.description.split("(")[0].trim() ||
    [adapter.vendor, adapter.architecture, adapter.device].filter(Boolean).join(" ") ||
    "unknown";
  const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
  return `${slug(name)}-${slug(backend)}-${date.slice(0, 10)}.json`;
}

/** Three significant digits, without exponent notation for the ranges benchmarks produce. */
export function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return "";
  if (x === 0) return "0";
  const digits = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(x))));
  return x.toFixed(Math.min(digits, 4));
}

/** A Markdown table padded to line up in a terminal too. */
export function markdownTable(header: string[], rows: string[][], rightAligned: boolean[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) =>
    `| ${
      cells.map((s, c) => (rightAligned[c] ? s.padStart(widths[c]) : s.padEnd(widths[c]))).join(
        " | ",
      )
    } |`;
  const rule = `| ${
    widths.map((w, c) => (rightAligned[c] ? "-".repeat(w - 1) + ":" : "-".repeat(w))).join(" | ")
  } |`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

export function formatResults(rows: ResultRow[]): string {
  return markdownTable(
    ["kernel", "shape", "ms", "GFLOP/s", "GB/s", "% of roofline"],
    rows.map((r) => [
      r.kernel,
      r.shape,
      r.error ? "failed" : fmt(r.ms?.avg),
      fmt(r.gflops),
      fmt(r.gbps),
      r.percent === undefined ? "" : `${fmt(r.percent)} (${r.bound})`,
    ]),
    [false, false, true, true, true, true],
  );
}

/** One line of the header above a table: the adapter, backend, date and load. */
export function describeRun(file: ResultFile): string {
  const load = file.host.loadavg.before.map((x) => x.toFixed(2)).join(" ");
  const c = file.ceilings;
  return `${file.adapter.description || "unknown adapter"}, backend ${file.adapter.backend}, ` +
    `${file.date.slice(0, 10)}, Deno ${file.deno.deno}, load ${load} on ${file.host.cores} cores` +
    (c ? `; ceilings ${fmt(c.gbps)} GB/s, ${fmt(c.gflops)} GFLOP/s` : "");
}

export interface ComparedRow {
  name: string;
  kernel: string;
  shape: string;
  aMs?: number;
  bMs?: number;
  /** a time / b time: above 1, b is faster. */
  speedup?: number;
  aPercent?: number;
  bPercent?: number;
}

/** Per-kernel ratios between two result files (two adapters, or two commits on one). */
export function compareResults(a: ResultFile, b: ResultFile): ComparedRow[] {
  const bByName = new Map(b.results.map((r) => [r.name, r]));
  const rows: ComparedRow[] = a.results.map((ra) => {
    const rb = bByName.get(ra.name);
    bByName.delete(ra.name);
    const aMs = ra.ms?.avg, bMs = rb?.ms?.avg;
    return {
      name: ra.name,
      kernel: ra.kernel,
      shape: ra.shape,
      aMs,
      bMs,
      speedup: aMs && bMs ? aMs / bMs : undefined,
      aPercent: ra.percent,
      bPercent: rb?.percent,
    };
  });
  for (const rb of bByName.values()) {
    rows.push({
      name: rb.name,
      kernel: rb.kernel,
      shape: rb.shape,
      bMs: rb.ms?.avg,
      bPercent: rb.percent,
    });
  }
  return rows;
}

export function formatComparison(rows: ComparedRow[]): string {
  const pct = (p?: number) => (p === undefined ? "" : `${fmt(p)}%`);
  return markdownTable(
    ["kernel", "shape", "A ms", "B ms", "B speed-up", "A % roofline", "B % roofline"],
    rows.map((r) => [
      r.kernel,
      r.shape,
      r.aMs === undefined ? "-" : fmt(r.aMs),
      r.bMs === undefined ? "-" : fmt(r.bMs),
      r.speedup === undefined ? "" : `${fmt(r.speedup)}×`,
      pct(r.aPercent),
      pct(r.bPercent),
    ]),
    [false, false, true, true, true, true, true],
  );
}
