// Experiments' runs as table rows, kept in memory. The tracking interface can only list runs by
// reading each one whole (MLflow's file store: ~25 files per run, read one run after another,
// several seconds for 1,000 runs), so the table is served from the last read and re-read in the
// background once that read is older than `maxAgeMs` (stale while revalidating); the page says
// when its rows were read. Run pages and the metrics API read the store directly.
import type { RunRow } from "./islands/RunsTable.tsx";
import type { ReadOnlyStore } from "./route.ts";
import { runRow } from "./run_rows.ts";

export interface RunsSnapshot {
  rows: RunRow[];
  /** Epoch ms when the read that produced `rows` started. */
  readAt: number;
}

export class RunsIndex {
  readonly #store: ReadOnlyStore;
  readonly #maxAgeMs: number;
  readonly #snapshots = new Map<string, RunsSnapshot>();
  readonly #reading = new Map<string, Promise<RunsSnapshot>>();

  constructor(store: ReadOnlyStore, maxAgeMs = 5_000) {
    this.#store = store;
    this.#maxAgeMs = maxAgeMs;
  }

  /** The experiment's rows: the last read if there is one (re-read behind it when old). */
  runs(experimentId: string): Promise<RunsSnapshot> {
    const last = this.#snapshots.get(experimentId);
    if (!last) return this.#read(experimentId);
    if (Date.now() - last.readAt > this.#maxAgeMs) {
      this.#read(experimentId).catch((error) =>
        console.error(`web: re-reading the runs of experiment ${experimentId}:`, error)
      );
    }
    return Promise.resolve(last);
  }

  /** Reads every experiment's runs now, so that the first visitor does not wait for them. */
  async warm(): Promise<void> {
    for (const e of await this.#store.listExperiments()) await this.runs(e.experimentId);
  }

  /** One read per experiment at a time: callers during a read share it. */
  #read(experimentId: string): Promise<RunsSnapshot> {
    const pending = this.#reading.get(experimentId);
    if (pending) return pending;
    const readAt = Date.now();
    const reading = this.#store.searchRuns({ experimentIds: [experimentId] })
      .then((runs) => {
        const snapshot = { rows: runs.map(runRow), readAt };
        this.#snapshots.set(experimentId, snapshot);
        return snapshot;
      })
      .finally(() => this.#reading.delete(experimentId));
    this.#reading.set(experimentId, reading);
    return reading;
  }
}
