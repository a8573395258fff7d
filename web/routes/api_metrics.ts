// `/api/runs/:runId/metrics`: a run's status and downsampled metric histories as JSON, polled by
// the run page while the run is RUNNING.
import { runMetrics } from "../metrics_data.ts";
import { found, json, param, type Route } from "../route.ts";

export const route: Route = {
  pattern: "/api/runs/:runId/metrics",
  async handle(request) {
    const run = await found(request.ui.store.getRun(param(request, "runId")), "run");
    return json(runMetrics(run));
  },
};
