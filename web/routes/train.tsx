// `/train?run=<runId>`: the demo lab's two-spirals MLP trains in the page on WebGPU, with the
// chosen demo run's architecture (its model/config.json) and settings (its params), on the
// lab's own data, through the engine's `fit`.
import { Island } from "../island.tsx";
import { labRuns, RunPicker } from "../lab_runs.tsx";
import { NotFound, type Route } from "../route.ts";

const MAX_EPOCHS = 1000;

export const route: Route = {
  pattern: "/train",
  async handle(request) {
    const { runs, run } = await labRuns(
      request.ui.store,
      { lab: "demo" },
      request.url.searchParams.get("run"),
    );
    const param = (name: string) => Number(run?.params[name]);
    // `?epochs=` trains longer (or shorter) than the run did.
    const epochs = Number(request.url.searchParams.get("epochs") ?? param("epochs"));
    if (!Number.isInteger(epochs) || epochs < 1 || epochs > MAX_EPOCHS) {
      throw new NotFound(`epochs: expected an integer in [1, ${MAX_EPOCHS}]`);
    }
    return {
      title: "Train in the page",
      body: (
        <section>
          <h1>Train in the page: two spirals</h1>
          {run === null
            ? <p class="empty">No demo run in this store yet: `deno task train demo --quick`.</p>
            : (
              <>
                <RunPicker action="/train" label="demo run" runs={runs} current={run.info.runId} />
                <Island
                  name="TrainSpirals"
                  props={{
                    runName: run.info.runName,
                    configUrl: `/runs/${run.info.runId}/artifacts/model/config.json`,
                    dataUrl: `/api/spirals?points=${param("points_per_class")}&seed=${
                      param("seed")
                    }`,
                    settings: {
                      epochs,
                      batchSize: param("batch_size"),
                      lr: param("learning_rate"),
                      validationSplit: param("validation_split"),
                      seed: param("seed"),
                    },
                  }}
                />
              </>
            )}
        </section>
      ),
    };
  },
};
