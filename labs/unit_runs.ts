// How a lab's unit runs are found again: each unit's run carries the unit's name and its plan's
// key (the lab settings every unit of one sweep shares), so `--summarize` picks, per unit, the
// latest FINISHED run of the same plan — whichever process, node or retry wrote it.
import type { Run } from "../tracking/run.ts";
import type { RunRecord, TrackingStore } from "../tracking/store.ts";

export const UNIT_TAG = "denograd.unit";
export const PLAN_TAG = "denograd.plan";
/** The unit's results, as its lab's summary reads them back (JSON). */
export const UNIT_RESULT_ARTIFACT = "unit_result.json";

/** A plan's key from the settings its units share, e.g. `tp5 quick=true seed=0 seeds=1`. */
export function planKey(lab: string, settings: Record<string, string | number | boolean>): string {
  return [lab, ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)].join(" ");
}

/** The tags that mark a run as unit `unit` of plan `plan`. */
export function unitTags(plan: string, unit: string): Record<string, string> {
  return { [PLAN_TAG]: plan, [UNIT_TAG]: unit };
}

/** Logs what the summary will need of this unit. */
export function logUnitResult(run: Run, result: unknown): Promise<void> {
  return run.logDict(UNIT_RESULT_ARTIFACT, result);
}

export interface FoundUnit<T> {
  run: RunRecord;
  result: T;
}

/**
 * The latest FINISHED run of each of `units` in plan `plan` of experiment `experiment`, with its
 * logged result; `missing` names the units that have none.
 */
export async function findUnitRuns<T>(
  store: TrackingStore,
  experiment: string,
  plan: string,
  units: readonly string[],
): Promise<{ found: Map<string, FoundUnit<T>>; missing: string[] }> {
  const found = new Map<string, FoundUnit<T>>();
  const exp = await store.getExperimentByName(experiment);
  const runs = exp
    ? await store.searchRuns({
      experimentIds: [exp.experimentId],
      statuses: ["FINISHED"],
      where: [{ field: `tags.${PLAN_TAG}`, op: "=", value: plan }],
      orderBy: [{ field: "attributes.start_time", descending: true }],
    })
    : [];
  for (const unit of units) {
    const run = runs.find((r) => r.tags[UNIT_TAG] === unit);
    if (!run) continue;
    const bytes = await store.readArtifact(run.info.runId, UNIT_RESULT_ARTIFACT);
    found.set(unit, { run, result: JSON.parse(new TextDecoder().decode(bytes)) as T });
  }
  return { found, missing: units.filter((u) => !found.has(u)) };
}

/** Seconds the units' runs took, start to end, added up (a run missing either time adds 0). */
export function unitSeconds(found: ReadonlyMap<string, FoundUnit<unknown>>): number {
  let seconds = 0;
  for (const { run: { info } } of found.values()) {
    if (info.startTime !== null && info.endTime !== null) {
      seconds += (info.endTime - info.startTime) / 1000;
    }
  }
  return seconds;
}
