// `/attention-demo?run=<runId>`: a TP5 Part 1 model (GRU + attention pooling) runs in the page
// on WebGPU over freshly generated sequences of its task, its attention weights drawn live.
import { PART1_EXPERIMENT } from "../../labs/tp5/part1.ts";
import { Island } from "../island.tsx";
import { labRuns, RunPicker } from "../lab_runs.tsx";
import { NotFound, type Route } from "../route.ts";

/** Where Part 1 logs its model's state (labs/tp5/part1.ts). */
const WEIGHTS_ARTIFACT = "model/weights.safetensors";

export const route: Route = {
  pattern: "/attention-demo",
  async handle(request) {
    const { runs, run } = await labRuns(
      request.ui.store,
      { experiment: PART1_EXPERIMENT },
      request.url.searchParams.get("run"),
    );
    const p = run?.params ?? {};
    if (run && !(p.task === "sum" || p.task === "burst")) {
      throw new NotFound("this run is not a TP5 Part 1 model");
    }
    return {
      title: "Attention, live",
      body: (
        <section>
          <h1>Attention, live: TP5 Part 1 in the page</h1>
          {run === null
            ? (
              <p class="empty">
                No TP5 Part 1 run in this store yet: `deno task train tp5 --quick --unit
                burst_simple`.
              </p>
            )
            : (
              <>
                <RunPicker
                  action="/attention-demo"
                  label="Part 1 run"
                  runs={runs}
                  current={run.info.runId}
                />
                <Island
                  name="AttentionLive"
                  props={{
                    runName: run.info.runName,
                    weightsUrl: `/runs/${run.info.runId}/artifacts/${WEIGHTS_ARTIFACT}`,
                    task: p.task as "sum" | "burst",
                    attention: p.attention === "scaled" ? "scaled" : "simple",
                    steps: Number(p.time_steps),
                    features: Number(p.features),
                    units: Number(p.gru_units),
                    modelSeed: Number(p.model_seed),
                  }}
                />
              </>
            )}
        </section>
      ),
    };
  },
};
