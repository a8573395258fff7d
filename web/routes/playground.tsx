// `/playground?run=<runId>`: draw a digit and watch a TP1 model (the chosen run's, or the newest
// one's) classify it in the page on WebGPU, next to the server's answer for the same image.
import { Island } from "../island.tsx";
import { labRuns, RunPicker } from "../lab_runs.tsx";
import { found, NotFound, type Route } from "../route.ts";
import { TP1_MODEL_ARTIFACT } from "./run_predict.ts";

export const route: Route = {
  pattern: "/playground",
  async handle(request) {
    const { store } = request.ui;
    const { runs, run } = await labRuns(store, { lab: "tp1" }, request.url.searchParams.get("run"));
    if (run) {
      const dir = TP1_MODEL_ARTIFACT.split("/")[0];
      const files = await found(store.listArtifacts(run.info.runId, dir), "TP1 model");
      if (!files.some((f) => f.path === TP1_MODEL_ARTIFACT)) {
        throw new NotFound("this run saved no TP1 model");
      }
    }
    return {
      title: "Playground",
      body: (
        <section>
          <h1>Playground</h1>
          {run === null
            ? <p class="empty">No TP1 run in this store yet: `deno task train tp1 --quick`.</p>
            : (
              <>
                <RunPicker
                  action="/playground"
                  label="TP1 run"
                  runs={runs}
                  current={run.info.runId}
                />
                <Island
                  name="Playground"
                  props={{
                    runName: run.info.runName,
                    modelUrl: `/runs/${run.info.runId}/artifacts/${TP1_MODEL_ARTIFACT}`,
                    serverPredictUrl: `/runs/${run.info.runId}/predict`,
                  }}
                />
              </>
            )}
        </section>
      ),
    };
  },
};
