// `/compare?runs=<id>,<id>,…`: runs side by side — overlaid metric curves, a param and latest
// metric table with the rows that differ highlighted, and params against a chosen metric.
import { Island } from "../island.tsx";
import { formatNumber } from "../islands/series.ts";
import { runMetrics } from "../metrics_data.ts";
import { found, NotFound, type Route } from "../route.ts";
import { columnKeys, runRow } from "../run_rows.ts";

const MAX_COMPARED = 20;

export const route: Route = {
  pattern: "/compare",
  async handle({ url, ui }) {
    const ids = [...new Set((url.searchParams.get("runs") ?? "").split(",").filter(Boolean))];
    if (ids.length === 0 || ids.length > MAX_COMPARED) {
      throw new NotFound(`compare takes 1 to ${MAX_COMPARED} run ids (?runs=a,b)`);
    }
    const runs = await Promise.all(ids.map((id) => found(ui.store.getRun(id), "run")));
    const rows = runs.map(runRow);
    const paramKeys = [...new Set(rows.flatMap((r) => Object.keys(r.params)))].sort();
    const metricKeys = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].sort();
    const cells = (values: (string | undefined)[]) => ({
      values,
      differs: new Set(values).size > 1,
    });
    const table = [
      ...paramKeys.map((k) => ({ kind: "param", key: k, ...cells(rows.map((r) => r.params[k])) })),
      ...metricKeys.map((k) => ({
        kind: "metric",
        key: k,
        ...cells(
          rows.map((r) => r.metrics[k] === undefined ? undefined : formatNumber(r.metrics[k])),
        ),
      })),
    ];
    return {
      title: "Compare runs",
      body: (
        <section>
          <p class="crumbs">
            <a href="/">experiments</a> /
          </p>
          <h1>Compare {runs.length} runs</h1>
          <h2>Metrics</h2>
          <Island
            name="MetricCharts"
            props={{
              runs: runs.map((r) => ({ runId: r.info.runId, runName: r.info.runName })),
              metrics: Object.fromEntries(runs.map((r) => [r.info.runId, runMetrics(r)])),
            }}
          />
          <h2>Params and latest metrics</h2>
          <p class="hint">Highlighted rows differ between the runs.</p>
          <div class="table-scroll">
            <table class="diff">
              <thead>
                <tr>
                  <th />
                  <th />
                  {rows.map((r) => (
                    <th key={r.runId}>
                      <a href={`/runs/${r.runId}`}>{r.runName}</a>
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {table.map((row) => (
                  <tr key={`${row.kind}.${row.key}`} class={row.differs ? "differs" : ""}>
                    <td class="hint">{row.kind}</td>
                    <th class="mono">{row.key}</th>
                    {row.values.map((v, i) => <td key={i} class="mono">{v ?? "—"}</td>)}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <h2>Params against a metric</h2>
          <Island
            name="ParamScatter"
            props={{
              runs: rows.map((r) => ({ runName: r.runName, params: r.params, metrics: r.metrics })),
              ...columnKeys(rows),
            }}
          />
        </section>
      ),
    };
  },
};
