// `/`: the experiments, newest first, with their run counts and a link to each runs table.
import type { Route } from "../route.ts";
import { formatTime } from "../islands/series.ts";

export const route: Route = {
  pattern: "/",
  async handle({ ui }) {
    const experiments = await ui.store.listExperiments();
    const counts = await Promise.all(
      experiments.map((e) => ui.runs.runs(e.experimentId).then((s) => s.rows.length)),
    );
    return {
      title: "Experiments",
      body: (
        <section>
          <h1>Experiments</h1>
          {experiments.length === 0
            ? (
              <p class="empty">
                No experiments in this store yet: run a lab (`deno task train demo`).
              </p>
            )
            : (
              <table class="experiments">
                <thead>
                  <tr>
                    <th>name</th>
                    <th>runs</th>
                    <th>id</th>
                    <th>created (UTC)</th>
                  </tr>
                </thead>
                <tbody>
                  {experiments.map((e, i) => (
                    <tr key={e.experimentId}>
                      <td>
                        <a href={`/experiments/${e.experimentId}`}>{e.name}</a>
                      </td>
                      <td class="number">{counts[i]}</td>
                      <td class="mono">{e.experimentId}</td>
                      <td>{formatTime(e.creationTime)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
        </section>
      ),
    };
  },
};
