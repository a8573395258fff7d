// `/experiments/:experimentId`: the experiment's runs table (sortable, filterable, selectable
// for the compare page).
import { Island } from "../island.tsx";
import { found, param, type Route } from "../route.ts";
import { columnKeys, runRow } from "../run_rows.ts";

export const route: Route = {
  pattern: "/experiments/:experimentId",
  async handle(request) {
    const id = param(request, "experimentId");
    const { store } = request.ui;
    const experiment = await found(store.getExperiment(id), "experiment");
    const runs = await found(store.searchRuns({ experimentIds: [id] }), "experiment");
    const rows = runs.map(runRow);
    return {
      title: experiment.name,
      body: (
        <section>
          <p class="crumbs">
            <a href="/">experiments</a> /
          </p>
          <h1>{experiment.name}</h1>
          <Island name="RunsTable" props={{ rows, ...columnKeys(rows) }} />
        </section>
      ),
    };
  },
};
