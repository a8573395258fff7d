// Attention weights as a heatmap you can hover (query step, key step, weight), with selectors
// for the source artifact, the sample, the head and the query (horizon) step, whose row is
// drawn below with the key frames (green) and lure frames (red) marked.
import { useSignal } from "@preact/signals";

export interface Span {
  start: number;
  length: number;
}

export interface AttentionHead {
  label: string;
  /** Row labels: the query's time step. */
  queries: number[];
  /** Column labels: the key's time step. */
  keys: number[];
  /** [query][key]. */
  weights: number[][];
  /** Key frames to mark (target sightings, bursts) and lure frames, in key labels. */
  keySpans: Span[];
  lureSpans: Span[];
}

export interface AttentionSource {
  title: string;
  queryTitle: string;
  keyTitle: string;
  note?: string;
  samples: { label: string; heads: AttentionHead[] }[];
}

const WIDTH = 760;
const LEFT = 44;
/** Room for the last tick label. */
const RIGHT = 16;
const VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];

function color(t: number): string {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const mix = (a: string, b: string, f: number) =>
    Math.round(parseInt(a, 16) * (1 - f) + parseInt(b, 16) * f).toString(16).padStart(2, "0");
  const [a, b] = [VIRIDIS[i], VIRIDIS[i + 1]];
  return `#${[1, 3, 5].map((o) => mix(a.slice(o, o + 2), b.slice(o, o + 2), x - i)).join("")}`;
}

function spanRects(
  spans: Span[],
  keys: number[],
  cell: number,
  y: number,
  h: number,
  fill: string,
) {
  return spans.map((s, i) => {
    const first = keys.indexOf(s.start);
    if (first < 0) return null;
    return (
      <rect
        key={`${fill}${i}`}
        class={fill === "green" ? "key-span" : "lure-span"}
        x={LEFT + first * cell}
        y={y}
        width={s.length * cell}
        height={h}
        fill={fill}
        opacity={0.35}
      />
    );
  });
}

function ticks(keys: number[], cell: number, y: number) {
  const every = Math.max(1, Math.ceil(keys.length / 12));
  return keys.map((k, i) =>
    i % every === 0 && (
      <text key={i} x={LEFT + (i + 0.5) * cell} y={y} font-size="10" text-anchor="middle">{k}</text>
    )
  );
}

export function AttentionExplorer(props: { sources: AttentionSource[] }) {
  const sourceIndex = useSignal(0);
  const sampleIndex = useSignal(0);
  const headIndex = useSignal(0);
  const queryIndex = useSignal(0);
  /** The hovered cell as [query row, key column] of the head shown. */
  const hover = useSignal<[number, number] | null>(null);

  const source = props.sources[sourceIndex.value];
  const sample = source.samples[Math.min(sampleIndex.value, source.samples.length - 1)];
  const head = sample.heads[Math.min(headIndex.value, sample.heads.length - 1)];
  const row = Math.min(queryIndex.value, head.queries.length - 1);
  const max = Math.max(...head.weights.flat());
  const cell = (WIDTH - LEFT - RIGHT) / head.keys.length;
  const cellH = Math.max(6, Math.min(18, 320 / head.queries.length));
  const mapH = cellH * head.queries.length;
  const select = (label: string, value: number, options: string[], set: (i: number) => void) => (
    <label>
      {label}{" "}
      <select name={label} value={value} onChange={(e) => set(Number(e.currentTarget.value))}>
        {options.map((o, i) => <option key={i} value={i}>{o}</option>)}
      </select>
    </label>
  );
  const profileH = 140;
  const weights = head.weights[row];
  const hovered = hover.value && head.weights[hover.value[0]]?.[hover.value[1]];
  const readout = hovered === undefined || hovered === null
    ? "hover a cell to read its weight"
    : `query t=${head.queries[hover.value![0]]} · key s=${head.keys[hover.value![1]]} · α=${
      hovered.toPrecision(4)
    }`;
  return (
    <div class="attention">
      <div class="controls">
        {props.sources.length > 1 &&
          select("source", sourceIndex.value, props.sources.map((s) => s.title), (i) => {
            sourceIndex.value = i;
            sampleIndex.value = headIndex.value = queryIndex.value = 0;
          })}
        {select(
          "sample",
          sampleIndex.value,
          source.samples.map((s) => s.label),
          (i) => sampleIndex.value = i,
        )}
        {select(
          "head",
          headIndex.value,
          sample.heads.map((h) => h.label),
          (i) => headIndex.value = i,
        )}
        {head.queries.length > 1 && (
          <label>
            query (horizon) step{" "}
            <input
              type="range"
              name="query"
              min="0"
              max={head.queries.length - 1}
              value={row}
              onInput={(e) => queryIndex.value = Number(e.currentTarget.value)}
            />{" "}
            t = {head.queries[row]}
          </label>
        )}
      </div>
      <h3>{source.title}</h3>
      {source.note && <p class="hint">{source.note}</p>}
      <p class="readout" id="attention-readout">{readout}</p>
      <svg width={WIDTH} height={mapH + 40} class="heatmap" onMouseLeave={() => hover.value = null}>
        {head.weights.map((weightsRow, q) =>
          weightsRow.map((w, k) => (
            <rect
              key={`${q}-${k}`}
              class="cell"
              data-query={head.queries[q]}
              data-key={head.keys[k]}
              x={LEFT + k * cell}
              y={q * cellH}
              width={cell}
              height={cellH}
              fill={color(max > 0 ? w / max : 0)}
              onMouseEnter={() => hover.value = [q, k]}
            />
          ))
        )}
        {spanRects(head.keySpans, head.keys, cell, mapH + 2, 6, "green")}
        {spanRects(head.lureSpans, head.keys, cell, mapH + 2, 6, "red")}
        {ticks(head.keys, cell, mapH + 22)}
        <text x={LEFT} y={mapH + 36} font-size="11">{source.keyTitle}</text>
        <text x={2} y={cellH * (row + 0.75)} font-size="10">▶ {head.queries[row]}</text>
      </svg>
      <h3>Weights of query t = {head.queries[row]} ({source.queryTitle})</h3>
      <svg width={WIDTH} height={profileH + 20} class="profile">
        {spanRects(head.keySpans, head.keys, cell, 0, profileH, "green")}
        {spanRects(head.lureSpans, head.keys, cell, 0, profileH, "red")}
        {weights.map((w, k) => (
          <rect
            key={k}
            x={LEFT + k * cell + cell * 0.1}
            y={profileH - (max > 0 ? (w / max) * profileH : 0)}
            width={cell * 0.8}
            height={max > 0 ? (w / max) * profileH : 0}
            fill="#2f6fde"
          />
        ))}
        <text x={0} y={10} font-size="10">{max.toPrecision(3)}</text>
        <text x={0} y={profileH} font-size="10">0</text>
        {ticks(head.keys, cell, profileH + 14)}
      </svg>
    </div>
  );
}
