// An experiment's runs: sortable columns (click a header; again to reverse), a picker for the
// param and metric columns, a search box over names, params and tags, and check boxes to pick
// runs for the compare page.
import { useSignal } from "@preact/signals";
import { formatDuration, formatNumber, formatTime } from "./series.ts";

export interface RunRow {
  runId: string;
  runName: string;
  status: string;
  startTime: number | null;
  durationMs: number | null;
  params: Record<string, string>;
  /** Latest value per metric key. */
  metrics: Record<string, number>;
  tags: Record<string, string>;
}

export interface RunsTableProps {
  rows: RunRow[];
  paramKeys: string[];
  metricKeys: string[];
  /** Ids (`params.<key>`, `metrics.<key>`) of the columns shown at first. */
  shown: string[];
}

type Column = { id: string; title: string; value: (row: RunRow) => string | number | null };

function columns(props: RunsTableProps, shown: string[]): Column[] {
  const show = new Set(shown);
  return [
    { id: "name", title: "name", value: (r) => r.runName },
    { id: "status", title: "status", value: (r) => r.status },
    { id: "start", title: "start (UTC)", value: (r) => r.startTime },
    { id: "duration", title: "duration", value: (r) => r.durationMs },
    ...props.paramKeys.filter((k) => show.has(`params.${k}`)).map((k) => ({
      id: `params.${k}`,
      title: k,
      value: (r: RunRow) => {
        const v = r.params[k];
        return v === undefined ? null : v !== "" && Number.isFinite(Number(v)) ? Number(v) : v;
      },
    })),
    ...props.metricKeys.filter((k) => show.has(`metrics.${k}`)).map((k) => ({
      id: `metrics.${k}`,
      title: k,
      value: (r: RunRow) => r.metrics[k] ?? null,
    })),
  ];
}

function display(column: Column, row: RunRow) {
  const v = column.value(row);
  if (v === null) return "";
  if (column.id === "name") return <a href={`/runs/${row.runId}`}>{row.runName}</a>;
  if (column.id === "start") return formatTime(v as number);
  if (column.id === "duration") return formatDuration(v as number);
  if (column.id === "status") return <span class={`status ${row.status}`}>{row.status}</span>;
  return typeof v === "number" ? formatNumber(v) : v;
}

/** Runs missing the value go last whatever the direction; numbers before strings. */
function compareValues(a: string | number | null, b: string | number | null, dir: number) {
  if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
  if (typeof a !== typeof b) return typeof a === "number" ? -1 : 1;
  return (a < b ? -1 : a > b ? 1 : 0) * dir;
}

function matches(row: RunRow, query: string): boolean {
  if (query === "") return true;
  const haystack = [
    row.runName,
    row.runId,
    ...Object.entries(row.params).flat(),
    ...Object.entries(row.tags).flat(),
  ];
  return haystack.some((s) => s.toLowerCase().includes(query));
}

export function RunsTable(props: RunsTableProps) {
  const query = useSignal("");
  const sort = useSignal<{ id: string; dir: 1 | -1 }>({ id: "start", dir: -1 });
  const selected = useSignal<string[]>([]);
  const shown = useSignal(props.shown);
  const cols = columns(props, shown.value);
  const sortColumn = cols.find((c) => c.id === sort.value.id) ?? cols[0];
  const rows = props.rows
    .filter((r) => matches(r, query.value.trim().toLowerCase()))
    .sort((a, b) => compareValues(sortColumn.value(a), sortColumn.value(b), sort.value.dir));
  const toggle = (runId: string) =>
    selected.value = selected.value.includes(runId)
      ? selected.value.filter((id) => id !== runId)
      : [...selected.value, runId];
  const compareHref = `/compare?runs=${selected.value.map(encodeURIComponent).join(",")}`;
  return (
    <div class="runs-table">
      <div class="controls">
        <input
          type="search"
          name="filter"
          placeholder="filter by name, param or tag"
          value={query.value}
          onInput={(e) => query.value = e.currentTarget.value}
        />
        <span class="count">{rows.length} of {props.rows.length} runs</span>
        {selected.value.length >= 2
          ? (
            <a class="button" id="compare-link" href={compareHref}>
              compare {selected.value.length} runs
            </a>
          )
          : <span class="hint">tick two or more runs to compare them</span>}
      </div>
      <details class="column-picker">
        <summary>columns</summary>
        {[["params", props.paramKeys], ["metrics", props.metricKeys]].map(([kind, keys]) => (
          <fieldset key={kind as string}>
            <legend>{kind}</legend>
            {(keys as string[]).map((k) => {
              const id = `${kind}.${k}`;
              return (
                <label key={id}>
                  <input
                    type="checkbox"
                    name={id}
                    checked={shown.value.includes(id)}
                    onChange={() =>
                      shown.value = shown.value.includes(id)
                        ? shown.value.filter((c) => c !== id)
                        : [...shown.value, id]}
                  />{" "}
                  {k}
                </label>
              );
            })}
          </fieldset>
        ))}
      </details>
      <div class="table-scroll">
        <table>
          <thead>
            <tr>
              <th />
              {cols.map((c) => (
                <th
                  key={c.id}
                  data-column={c.id}
                  class={c.id === sort.value.id
                    ? (sort.value.dir === 1 ? "sorted asc" : "sorted desc")
                    : ""}
                  onClick={() =>
                    sort.value = {
                      id: c.id,
                      dir: c.id === sort.value.id ? (-sort.value.dir as 1 | -1) : 1,
                    }}
                >
                  {c.title}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr key={row.runId} data-run={row.runId}>
                <td>
                  <input
                    type="checkbox"
                    aria-label={`select ${row.runName}`}
                    checked={selected.value.includes(row.runId)}
                    onChange={() => toggle(row.runId)}
                  />
                </td>
                {cols.map((c) => <td key={c.id}>{display(c, row)}</td>)}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
