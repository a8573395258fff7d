// The kernel benchmarks on the visitor's GPU: bench/'s cases run in the page (bench/browser.ts)
// with the same timing as `deno task bench`, the table and the roofline fill in as each case
// finishes, and the result downloads as a bench/results/ file that `deno task bench:compare` and
// the benchmarks page read.
import { useSignal } from "@preact/signals";
import { fmt, type ResultFile, resultFileName, type ResultRow } from "../../bench/lib/report.ts";
import { BenchTable } from "../bench_table.tsx";
import { loadBench, loadEngine } from "./engine.ts";

export interface BenchRunnerProps {
  filter: string;
  regionMs: number;
  iterations: number;
}

const W = 420, H = 280, PAD = 40;

/** GFLOP/s against FLOPs per byte on log axes, under the roof of the measured ceilings. */
function Roofline({ rows }: { rows: ResultRow[] }) {
  const points = rows.filter((r) => r.flops && r.bytes && r.gflops && !r.error);
  const bandwidth = Math.max(
    0,
    ...rows.filter((r) => r.ceiling === "bandwidth").map((r) => r.gbps ?? 0),
  );
  const compute = Math.max(
    0,
    ...rows.filter((r) => r.ceiling === "compute").map((r) => r.gflops ?? 0),
  );
  if (points.length === 0) return null;
  const xs = points.map((p) => p.flops! / p.bytes!);
  const ys = [...points.map((p) => p.gflops!), compute || 1];
  const [x0, x1] = [Math.log10(Math.min(...xs) / 2), Math.log10(Math.max(...xs) * 2)];
  const [y0, y1] = [Math.log10(Math.min(...ys) / 2), Math.log10(Math.max(...ys) * 2)];
  const px = (x: number) => PAD + ((Math.log10(x) - x0) / (x1 - x0)) * (W - 2 * PAD);
  const py = (y: number) => H - PAD - ((Math.log10(y) - y0) / (y1 - y0)) * (H - 2 * PAD);
  const roof = bandwidth && compute
    ? [10 ** x0, compute / bandwidth, 10 ** x1].filter((x) => x >= 10 ** x0 && x <= 10 ** x1)
      .map((x) => `${px(x)},${py(Math.min(compute, x * bandwidth))}`).join(" ")
    : "";
  return (
    <svg width={W} height={H} role="img" aria-label="roofline" class="bench-roofline">
      <line x1={PAD} y1={H - PAD} x2={W - PAD} y2={H - PAD} stroke="#999" />
      <line x1={PAD} y1={PAD} x2={PAD} y2={H - PAD} stroke="#999" />
      <text x={W / 2} y={H - 8} font-size="11" text-anchor="middle">FLOPs per byte (log)</text>
      <text x={4} y={PAD - 8} font-size="11">GFLOP/s (log)</text>
      {roof && <polyline points={roof} fill="none" stroke="#999" stroke-width="2" />}
      {points.map((p) => (
        <circle key={p.name} cx={px(p.flops! / p.bytes!)} cy={py(p.gflops!)} r="4" fill="#2f6fde">
          <title>{`${p.kernel} ${p.shape}: ${fmt(p.gflops)} GFLOP/s`}</title>
        </circle>
      ))}
    </svg>
  );
}

export function BenchRunner(props: BenchRunnerProps) {
  const status = useSignal("");
  const rows = useSignal<ResultRow[]>([]);
  const result = useSignal<ResultFile | null>(null);
  const running = useSignal(false);
  const filter = useSignal(props.filter);

  async function run() {
    running.value = true;
    result.value = null;
    try {
      const problem = await (await loadEngine()).webGpuProblem();
      if (problem) {
        status.value = problem;
        return;
      }
      status.value = "loading the benchmarks…";
      const bench = await loadBench();
      status.value = "running (each case warms up, then times its regions)…";
      result.value = await bench.runBrowserBench({
        filter: filter.value || null,
        regionMs: props.regionMs,
        iterations: props.iterations,
        onProgress: (r) => rows.value = r,
      });
      rows.value = result.value.results;
      const failed = result.value.results.filter((r) => r.error).length;
      status.value = `done: ${result.value.results.length} cases` +
        (failed ? `, ${failed} failed` : "");
      document.documentElement.dataset.benchDone = "true";
    } catch (e) {
      status.value = `error: ${(e as Error).message}`;
    } finally {
      running.value = false;
    }
  }

  function download() {
    const file = result.value!;
    const blob = new Blob([JSON.stringify(file, null, 2) + "\n"], { type: "application/json" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = resultFileName(file.adapter, file.adapter.backend, file.date);
    link.click();
    URL.revokeObjectURL(link.href);
  }

  return (
    <div class="bench-runner">
      <p>
        <label>
          filter{" "}
          <input
            name="filter"
            value={filter.value}
            onInput={(e) => filter.value = (e.target as HTMLInputElement).value}
          />
        </label>{" "}
        <button type="button" data-run disabled={running.value} onClick={run}>run</button>{" "}
        <button type="button" data-download disabled={!result.value} onClick={download}>
          download results JSON
        </button>{" "}
        <span data-status>{status.value}</span>
      </p>
      <p class="hint">
        Regions of about {props.regionMs} ms, {props.iterations}{" "}
        per case, the device synced inside each, as `deno task bench`. The ceilings always run.
      </p>
      <div style="display: flex; gap: 2rem; flex-wrap: wrap; align-items: flex-start">
        <BenchTable rows={rows.value} />
        <Roofline rows={rows.value} />
      </div>
    </div>
  );
}
