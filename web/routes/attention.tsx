// `/runs/:runId/attention`: the attention explorer over the weights a TP5 run logged.
import { attentionSources } from "../attention_maps.ts";
import { Island } from "../island.tsx";
import { found, NotFound, param, type Route } from "../route.ts";

export const route: Route = {
  pattern: "/runs/:runId/attention",
  async handle(request) {
    const runId = param(request, "runId");
    const { store } = request.ui;
    const run = await found(store.getRun(runId), "run");
    const experiment = await found(store.getExperiment(run.info.experimentId), "experiment");
    const sources = await attentionSources(store, runId);
    if (sources.length === 0) throw new NotFound("this run logged no attention weights");
    return {
      title: `Attention · ${run.info.runName}`,
      body: (
        <section>
          <p class="crumbs">
            <a href="/">experiments</a> /{" "}
            <a href={`/experiments/${run.info.experimentId}`}>{experiment.name}</a> /{" "}
            <a href={`/runs/${runId}`}>{run.info.runName}</a> /
          </p>
          <h1>Attention explorer</h1>
          <Island name="AttentionExplorer" props={{ sources }} />
        </section>
      ),
    };
  },
};
