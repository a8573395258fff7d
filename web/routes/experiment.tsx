// `/experiments/:experimentId`: the experiment's runs table (sortable, filterable, selectable
// for the compare page).
import { Island } from "../island.tsx";
import { found, param, type Route } from "../route.ts";
import { columnKeys, defaultColumns } from "../run_rows.ts";
import { formatTime } from "../islands/series.ts";

export const route: Route = {
  pattern: "/experiments/:experimentId",
  async handle(request) {
    const id = param(request, "experimentId");
    const { store } = request.ui;
    const experiment = await found(store.getExperiment(id), "experiment");
    const { rows, readAt } = await found(request.ui.runs.runs(id), "experiment");
    const keys = columnKeys(rows);
    return {
      title: experiment.name,
      body: (
        <section>
          <p class="crumbs">
            <a href="/">experiments</a> /
          </p>
          <h1>{experiment.name}</h1>
          <p class="hint">Runs as read at {formatTime(readAt)} UTC (re-read every few seconds).</p>
          <Island name="RunsTable" props={{ rows, ...keys, shown: defaultColumns(keys) }} />
        </section>
      ),
    };
  },
};
