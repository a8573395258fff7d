// The finished runs of one lab (tagged `denograd.lab`) or one experiment, newest first, and the
// one a page was asked for: the engine pages (playground, in-page training, attention demo) pick
// their run this way.
import type { RunRecord } from "../tracking/store.ts";
import { found, type ReadOnlyStore } from "./route.ts";

export async function labRuns(
  store: ReadOnlyStore,
  which: { lab: string } | { experiment: string },
  chosen: string | null,
): Promise<{ runs: RunRecord[]; run: RunRecord | null }> {
  const experimentIds = (await store.listExperiments())
    .filter((e) => !("experiment" in which) || e.name === which.experiment)
    .map((e) => e.experimentId);
  const runs = experimentIds.length === 0 ? [] : await store.searchRuns({
    experimentIds,
    statuses: ["FINISHED"],
    where: "lab" in which ? [{ field: "tags.denograd.lab", op: "=", value: which.lab }] : undefined,
    maxResults: 100,
  });
  const id = chosen ?? runs[0]?.info.runId;
  return { runs, run: id ? await found(store.getRun(id), "run") : null };
}

/** A GET form that reloads the page with another of the lab's runs. */
export function RunPicker(
  props: { action: string; label: string; runs: RunRecord[]; current: string },
) {
  return (
    <form method="get" action={props.action}>
      <label>
        {props.label}{" "}
        <select name="run">
          {props.runs.map((r) => (
            <option
              key={r.info.runId}
              value={r.info.runId}
              selected={r.info.runId === props.current}
            >
              {r.info.runName}
            </option>
          ))}
        </select>
      </label>{" "}
      <button type="submit">load</button>
    </form>
  );
}
