// The table of one benchmark result file's rows: rendered on the server by the benchmarks page
// and live in the browser by the in-page benchmark island.
import { fmt, type ResultRow } from "../bench/lib/report.ts";

export function BenchTable({ rows }: { rows: readonly ResultRow[] }) {
  return (
    <div class="table-scroll">
      <table class="bench">
        <thead>
          <tr>
            <th>kernel</th>
            <th>shape</th>
            <th class="number">ms</th>
            <th class="number">GFLOP/s</th>
            <th class="number">GB/s</th>
            <th class="number">% of roofline</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.name}>
              <td>{r.kernel}</td>
              <td class="mono">{r.shape}</td>
              <td class="number">{r.error ? "failed" : fmt(r.ms?.avg)}</td>
              <td class="number">{fmt(r.gflops)}</td>
              <td class="number">{fmt(r.gbps)}</td>
              <td class="number">
                {r.percent === undefined ? "" : `${fmt(r.percent)} (${r.bound})`}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
