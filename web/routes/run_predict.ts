// `/runs/:runId/predict?image=<784 bytes, base64url>`: the TP1 model of a run answers on the
// server through the predict API's own handler (`POST /predict` of web/predict.ts, the same
// Predictor, micro-batcher, image checks and JSON). The playground shows its answer beside the
// page's. A GET, because the UI is read-only: the query holds the whole image (about 1 KB).
import { init } from "../../engine/tensor.ts";
import { engineOptionsFromEnv } from "../../host/env.ts";
import { createHandler, IMAGE_VALUES, MicroBatcher, Predictor } from "../predict.ts";
import { found, NotFound, param, type Route } from "../route.ts";

/** Where TP1 logs its model (labs/tp1.ts). */
export const TP1_MODEL_ARTIFACT = "mnist-model/model.safetensors";

type PredictApi = { handle: (request: Request) => Promise<Response>; predictor: Predictor };

/** Loaded models by run id; the oldest is freed beyond this many. */
const CACHED_MODELS = 4;
const apis = new Map<string, Promise<PredictApi>>();

function predictApi(runId: string, bytes: () => Promise<Uint8Array>): Promise<PredictApi> {
  let loading = apis.get(runId);
  if (loading) return loading;
  loading = (async () => {
    await init(engineOptionsFromEnv());
    const predictor = Predictor.load(await bytes(), `run ${runId}`);
    const batcher = new MicroBatcher(
      (pixels, rows) => predictor.predict(pixels, rows),
      IMAGE_VALUES,
      predictor.classes,
    );
    return { handle: createHandler(predictor, batcher), predictor };
  })();
  loading.catch(() => apis.delete(runId));
  apis.set(runId, loading);
  if (apis.size > CACHED_MODELS) {
    const [oldest, evicted] = apis.entries().next().value!;
    apis.delete(oldest);
    evicted.then((api) => api.predictor.dispose(), () => {});
  }
  return loading;
}

/** The image as the predict API's JSON body, or null when the query does not hold one. */
function imageBody(encoded: string | null): string | null {
  if (!encoded) return null;
  let bytes: string;
  try {
    bytes = atob(encoded.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    return null;
  }
  return JSON.stringify({ image: Array.from(bytes, (c) => c.charCodeAt(0)) });
}

export const route: Route = {
  pattern: "/runs/:runId/predict",
  async handle(request) {
    const runId = param(request, "runId");
    const { store } = request.ui;
    await found(store.getRun(runId), "run");
    const body = imageBody(request.url.searchParams.get("image"));
    if (body === null) {
      return new Response(
        JSON.stringify({ error: `expected ?image=<${IMAGE_VALUES} bytes, base64url>` }),
        { status: 400, headers: { "content-type": "application/json; charset=utf-8" } },
      );
    }
    const api = await predictApi(
      runId,
      () => found(store.readArtifact(runId, TP1_MODEL_ARTIFACT), "TP1 model in this run"),
    ).catch((e) => {
      throw e instanceof NotFound ? e : new NotFound(`this run's model: ${(e as Error).message}`);
    });
    return api.handle(
      new Request("http://ui.local/predict", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      }),
    );
  },
};
