// Metric curves of one run or several overlaid (one chart per metric key), with TensorBoard's
// controls: smoothing, step or wall-time axis, log scale. For a RUNNING run it polls the
// metrics API and redraws as points arrive, until the run ends.
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { formatNumber, formatTime, type Series, smooth } from "./series.ts";
import { polledStatus } from "./RunStatus.tsx";
import { VegaChart, type VegaLiteSpec } from "./VegaChart.tsx";

export interface ChartRun {
  runId: string;
  runName: string;
}

/** What the metrics API answers for one run (web/routes/api_metrics.ts). */
export interface RunMetrics {
  status: string;
  series: Record<string, Series>;
}

export interface MetricChartsProps {
  runs: ChartRun[];
  /** runId → its metrics. */
  metrics: Record<string, RunMetrics>;
  /** Poll the first run while it is RUNNING; `epochs` (its param, when set) gives progress. */
  live?: { epochs: number | null };
}

const POLL_MS = 1500;

type Axis = "step" | "time";

function chartSpec(
  key: string,
  props: MetricChartsProps,
  metrics: Record<string, RunMetrics>,
  view: { smoothing: number; axis: Axis; log: boolean },
): VegaLiteSpec {
  const values = props.runs.flatMap(({ runId, runName }) => {
    const s = metrics[runId]?.series[key];
    if (!s) return [];
    const smoothed = smooth(s.value, view.smoothing);
    const t0 = s.time[0] ?? 0;
    return s.value.map((value, i) => ({
      run: runName,
      x: view.axis === "step" ? s.step[i] : (s.time[i] - t0) / 1000,
      value,
      smoothed: smoothed[i],
    })).filter((p) => Number.isFinite(p.value) && (!view.log || p.value > 0));
  });
  const few = values.length <= 40 * props.runs.length;
  const y = {
    type: "quantitative",
    scale: { type: view.log ? "log" : "linear", zero: false },
    axis: { format: "~g" },
  };
  const x = {
    field: "x",
    type: "quantitative",
    title: view.axis === "step" ? "step" : "wall time (s since the first point)",
    // Vega's default formats a one-point domain as "0.000000".
    axis: view.axis === "step" ? { format: "d", tickMinStep: 1 } : { format: "~g" },
  };
  const color = { field: "run", type: "nominal", legend: props.runs.length > 1 ? {} : null };
  const line = (field: string, opacity: number) => ({
    mark: { type: "line", point: few, tooltip: true, opacity },
    encoding: { x, y: { ...y, field, title: key }, color },
  });
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: key,
    width: 300,
    height: 170,
    data: { values },
    layer: view.smoothing > 0 ? [line("value", 0.25), line("smoothed", 1)] : [line("value", 1)],
  };
}

function progressText(status: string, metrics: RunMetrics, epochs: number | null): string {
  const all = Object.values(metrics.series);
  const lastStep = Math.max(...all.map((s) => s.step.at(-1) ?? -Infinity));
  const lastTime = Math.max(...all.map((s) => s.time.at(-1) ?? -Infinity));
  if (!Number.isFinite(lastStep)) return `${status}: no metrics yet`;
  if (status !== "RUNNING") return `${status}: last point ${formatTime(lastTime)} UTC`;
  const epochPart = epochs ? ` (epoch ${Math.min(lastStep + 1, epochs)} of ${epochs})` : "";
  return `${status}: step ${lastStep}${epochPart}, last point ${formatTime(lastTime)} UTC`;
}

export function MetricCharts(props: MetricChartsProps) {
  const metrics = useSignal(props.metrics);
  const smoothing = useSignal(0);
  const axis = useSignal<Axis>("step");
  const log = useSignal(false);
  const liveRun = props.runs[0]?.runId;
  const status = metrics.value[liveRun]?.status;

  useEffect(() => {
    if (!props.live || status !== "RUNNING") return;
    const timer = setInterval(async () => {
      const response = await fetch(`/api/runs/${encodeURIComponent(liveRun)}/metrics`);
      if (!response.ok) return;
      const polled: RunMetrics = await response.json();
      metrics.value = { ...metrics.value, [liveRun]: polled };
      polledStatus.value = polled.status;
    }, POLL_MS);
    return () => clearInterval(timer);
  }, [status]);

  const keys = [
    ...new Set(props.runs.flatMap((r) => Object.keys(metrics.value[r.runId]?.series ?? {}))),
  ].sort();
  // Values logged once (final scores, summaries) read better in a table than as a lone dot.
  const seriesOf = (runId: string, key: string) => metrics.value[runId]?.series[key];
  const single = (key: string) =>
    props.runs.every((r) => (seriesOf(r.runId, key)?.total ?? 0) <= 1);
  const curveKeys = keys.filter((k) => !single(k));
  const valueKeys = keys.filter(single);
  const view = { smoothing: smoothing.value, axis: axis.value, log: log.value };
  const live = props.live ? metrics.value[liveRun] : undefined;
  return (
    <div class="metric-charts">
      {live && (
        <p class="progress" id="run-progress">
          {progressText(live.status, live, props.live!.epochs)}
        </p>
      )}
      <div class="controls" hidden={curveKeys.length === 0}>
        <label>
          smoothing{" "}
          <input
            type="range"
            name="smoothing"
            min="0"
            max="0.99"
            step="0.01"
            value={smoothing.value}
            onInput={(e) => smoothing.value = Number(e.currentTarget.value)}
          />{" "}
          {smoothing.value.toFixed(2)}
        </label>
        <label>
          x axis{" "}
          <select
            name="axis"
            value={axis.value}
            onChange={(e) => axis.value = e.currentTarget.value as Axis}
          >
            <option value="step">step</option>
            <option value="time">wall time</option>
          </select>
        </label>
        <label>
          <input
            type="checkbox"
            name="log"
            checked={log.value}
            onChange={(e) => log.value = e.currentTarget.checked}
          />{" "}
          log scale
        </label>
      </div>
      {keys.length === 0 && <p class="empty">No metrics logged.</p>}
      <div class="chart-grid">
        {curveKeys.map((key) => (
          <div class="chart" data-metric={key} key={key}>
            <VegaChart spec={chartSpec(key, props, metrics.value, view)} label={key} />
          </div>
        ))}
      </div>
      {valueKeys.length > 0 && (
        <table class="single-values">
          <thead>
            <tr>
              <th>logged once</th>
              {props.runs.length > 1 && props.runs.map((r) => <th key={r.runId}>{r.runName}</th>)}
              {props.runs.length === 1 && <th class="number">value</th>}
            </tr>
          </thead>
          <tbody>
            {valueKeys.map((key) => (
              <tr key={key} data-metric={key}>
                <th class="mono">{key}</th>
                {props.runs.map((r) => {
                  const v = seriesOf(r.runId, key)?.value[0];
                  return (
                    <td key={r.runId} class="number">{v === undefined ? "—" : formatNumber(v)}</td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
