// Params against a chosen metric across the compared runs: pick the param (x) and the metric (y);
// numeric params get a quantitative axis, others a categorical one.
import { useSignal } from "@preact/signals";
import { VegaChart } from "./VegaChart.tsx";

export interface ScatterRun {
  runName: string;
  params: Record<string, string>;
  metrics: Record<string, number>;
}

export interface ParamScatterProps {
  runs: ScatterRun[];
  paramKeys: string[];
  metricKeys: string[];
}

export function ParamScatter(props: ParamScatterProps) {
  const param = useSignal(props.paramKeys[0] ?? "");
  const metric = useSignal(props.metricKeys[0] ?? "");
  if (!param.value || !metric.value) return <p class="empty">No params or metrics to plot.</p>;
  const points = props.runs
    .filter((r) => r.params[param.value] !== undefined && r.metrics[metric.value] !== undefined)
    .map((r) => ({ run: r.runName, x: r.params[param.value], y: r.metrics[metric.value] }));
  const numeric = points.every((p) => p.x.trim() !== "" && Number.isFinite(Number(p.x)));
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: 420,
    height: 260,
    data: { values: points.map((p) => ({ ...p, x: numeric ? Number(p.x) : p.x })) },
    mark: { type: "point", filled: true, size: 90, tooltip: true },
    encoding: {
      x: {
        field: "x",
        type: numeric ? "quantitative" : "nominal",
        title: param.value,
        scale: numeric ? { zero: false } : undefined,
      },
      y: { field: "y", type: "quantitative", title: metric.value, scale: { zero: false } },
      color: { field: "run", type: "nominal" },
    },
  };
  const choose = (name: string, keys: string[], value: string, set: (v: string) => void) => (
    <label>
      {name}{" "}
      <select name={name} value={value} onChange={(e) => set(e.currentTarget.value)}>
        {keys.map((k) => <option key={k} value={k}>{k}</option>)}
      </select>
    </label>
  );
  return (
    <div class="param-scatter">
      <div class="controls">
        {choose("param", props.paramKeys, param.value, (v) => param.value = v)}
        {choose("metric", props.metricKeys, metric.value, (v) => metric.value = v)}
      </div>
      <VegaChart spec={spec} label={`${param.value} against ${metric.value}`} />
    </div>
  );
}
