// `/runs/:runId`: one run — its params, metric charts (live while it runs), artifacts and tags.
import { artifactSection } from "../artifacts.tsx";
import { attentionArtifacts } from "../attention_maps.ts";
import { Island } from "../island.tsx";
import { formatDuration, formatTime } from "../islands/series.ts";
import { runMetrics } from "../metrics_data.ts";
import { found, param, type Route } from "../route.ts";

function KeyValues({ values }: { values: Record<string, string> }) {
  const keys = Object.keys(values).sort();
  if (keys.length === 0) return <p class="empty">None.</p>;
  return (
    <table class="kv-table">
      <tbody>
        {keys.map((k) => (
          <tr key={k}>
            <th class="mono">{k}</th>
            <td class="mono">{values[k]}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export const route: Route = {
  pattern: "/runs/:runId",
  async handle(request) {
    const runId = param(request, "runId");
    const { store } = request.ui;
    const run = await found(store.getRun(runId), "run");
    const experiment = await found(store.getExperiment(run.info.experimentId), "experiment");
    const { info } = run;
    const epochs = Number(run.params.epochs);
    const artifacts = await artifactSection(store, runId);
    const hasAttention = (await attentionArtifacts(store, runId)).length > 0;
    const userTags = Object.fromEntries(
      Object.entries(run.tags).filter(([k]) => !k.startsWith("mlflow.")),
    );
    const systemTags = Object.fromEntries(
      Object.entries(run.tags).filter(([k]) => k.startsWith("mlflow.")),
    );
    const end = info.endTime ?? (info.status === "RUNNING" ? Date.now() : null);
    return {
      title: info.runName,
      body: (
        <section>
          <p class="crumbs">
            <a href="/">experiments</a> /{" "}
            <a href={`/experiments/${experiment.experimentId}`}>{experiment.name}</a> /
          </p>
          <div class="run-title">
            <h1>{info.runName}</h1>
            <Island name="RunStatus" props={{ status: run.stale ? "STALE" : info.status }} />
          </div>
          <p>
            <span class="mono">{info.runId}</span> · started {formatTime(info.startTime)} UTC
            {info.startTime !== null && end !== null &&
              ` · ${formatDuration(end - info.startTime)}`}
            {hasAttention && (
              <>
                {" · "}
                <a href={`/runs/${runId}/attention`}>attention explorer</a>
              </>
            )}
          </p>
          <h2>Parameters</h2>
          <KeyValues values={run.params} />
          <h2>Metrics</h2>
          <Island
            name="MetricCharts"
            props={{
              runs: [{ runId, runName: info.runName }],
              metrics: { [runId]: runMetrics(run) },
              live: { epochs: Number.isInteger(epochs) && epochs > 0 ? epochs : null },
            }}
          />
          <h2>Artifacts</h2>
          {artifacts}
          <h2>Tags</h2>
          <KeyValues values={userTags} />
          <details>
            <summary>MLflow system tags ({Object.keys(systemTags).length})</summary>
            <KeyValues values={systemTags} />
          </details>
        </section>
      ),
    };
  },
};
