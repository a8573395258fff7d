// The attention weights TP5 logs (JSON artifacts beside its figures), read into one shape for
// the attention explorer: sources → samples → heads → a [query][key] weight grid, with the
// LOP-120 key (target sighting) and lure frames marked on the key axis.
import type { AttentionHead, AttentionSource, Span } from "./islands/AttentionExplorer.tsx";
import type { ReadOnlyStore } from "./route.ts";

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

type Json = Record<string, unknown>;

const asGrid = (v: unknown): number[][] | null =>
  Array.isArray(v) &&
    v.every((row) => Array.isArray(row) && row.every((x) => typeof x === "number"))
    ? v as number[][]
    : null;

/** `{start, length}` (LOP-120's sightings and lures) or `{start, end}` (Part 1's bursts). */
const asSpan = (v: unknown): Span | null => {
  const s = v as { start?: unknown; length?: unknown; end?: unknown } | null;
  if (!s || typeof s.start !== "number") return null;
  if (typeof s.length === "number") return { start: s.start, length: s.length };
  if (typeof s.end === "number") return { start: s.start, length: s.end - s.start };
  return null;
};

/** Part 1: attention pooling, one weight per time step, read by the query at the last step. */
function part1(json: Json): AttentionSource | null {
  const samples = json.samples as { sample: number; alpha: number[]; segment?: unknown }[];
  const steps = json.steps as number;
  if (!Array.isArray(samples) || typeof steps !== "number") return null;
  return {
    title: `Part 1: ${json.task} task, ${json.attention} attention pooling`,
    queryTitle: "query step",
    keyTitle: "time step",
    note: typeof json.caption === "string" ? json.caption : undefined,
    samples: samples.map((s) => ({
      label: `validation sample ${s.sample}` + (s.segment ? " (green: the burst)" : ""),
      heads: [{
        label: String(json.attention),
        queries: [steps - 1],
        keys: range(s.alpha.length),
        weights: [s.alpha],
        keySpans: [asSpan(s.segment)].filter((x): x is Span => x !== null),
        lureSpans: [],
      }],
    })),
  };
}

/** Part 2: decoder step × encoder step, one test sample, autoregressive and teacher-forced. */
function part2(files: Json[]): AttentionSource | null {
  const heads: AttentionHead[] = files.flatMap((json) => {
    const weights = asGrid(json.weights);
    return weights
      ? [{
        label: `${json.mode} (${json.score})`,
        queries: range(weights.length, 1),
        keys: range(weights[0]?.length ?? 0),
        weights,
        keySpans: [],
        lureSpans: [],
      }]
      : [];
  });
  if (heads.length === 0) return null;
  return {
    title: "Part 2: seq2seq cross-attention",
    queryTitle: "decoder (horizon) step",
    keyTitle: "encoder step",
    samples: [{ label: `test sample ${files[0].sample}`, heads }],
  };
}

/** Part 3: H-TAP's queries 80–118 over memory frames, test sequence 0. */
function part3Heatmap(json: Json): AttentionSource | null {
  const weights = asGrid(json.weights);
  const queries = json.queries as number[];
  if (!weights || !Array.isArray(queries)) return null;
  return {
    title: "Part 3: H-TAP attention over memory frames",
    queryTitle: "query step t (80–99 teacher-forced, then generated)",
    keyTitle: "memory frame",
    samples: [{
      label: "test sequence 0",
      heads: [{
        label: "H-TAP",
        queries,
        keys: range(weights[0]?.length ?? 0),
        weights,
        keySpans: [],
        lureSpans: [],
      }],
    }],
  };
}

/** Part 3, LOP-120: the re-entry query (t = 99) with the target's sightings and the lure. */
function part3Reentry(json: Json): AttentionSource | null {
  const frames = json.frames as number[];
  const sightings = json.sightings as unknown[];
  const lures = json.lures as unknown[];
  if (!Array.isArray(frames)) return null;
  const models = [["htap", "H-TAP"], ["bounded", "bounded ablation"]] as const;
  const count = Math.max(...models.map(([key]) => asGrid(json[key])?.length ?? 0));
  return {
    title: "LOP-120: attention at the re-entry frame (t = 99)",
    queryTitle: "re-entry query t",
    keyTitle: "memory frame (green: target sightings = key frames, red: lure)",
    samples: range(count).map((i) => ({
      label: `test sequence ${i}`,
      heads: models.flatMap(([key, label]) => {
        const row = asGrid(json[key])?.[i];
        return row
          ? [{
            label,
            queries: [frames.length - 1],
            keys: frames,
            weights: [row],
            keySpans: [asSpan(sightings?.[i])].filter((x): x is Span => x !== null),
            lureSpans: [asSpan(lures?.[i])].filter((x): x is Span => x !== null),
          }]
          : [];
      }),
    })),
  };
}

const READERS: { files: string[]; read: (files: Json[]) => AttentionSource | null }[] = [
  { files: ["p3_attention_reentry.json"], read: ([j]) => part3Reentry(j) },
  { files: ["p3_attention_heatmap.json"], read: ([j]) => part3Heatmap(j) },
  { files: ["attention_heatmap.json", "attention_heatmap_tf.json"], read: part2 },
  { files: ["p1_attention_weights.json"], read: ([j]) => part1(j) },
];

/** The attention artifacts at the root of a run's artifacts. */
export async function attentionArtifacts(store: ReadOnlyStore, runId: string): Promise<string[]> {
  const known = new Set(READERS.flatMap((r) => r.files));
  return (await store.listArtifacts(runId)).map((a) => a.path).filter((p) => known.has(p));
}

export async function attentionSources(
  store: ReadOnlyStore,
  runId: string,
): Promise<AttentionSource[]> {
  const present = new Set(await attentionArtifacts(store, runId));
  const sources: AttentionSource[] = [];
  for (const reader of READERS) {
    const files = reader.files.filter((f) => present.has(f));
    if (files.length === 0) continue;
    const parsed = await Promise.all(
      files.map(async (f) =>
        JSON.parse(new TextDecoder().decode(await store.readArtifact(runId, f)))
      ),
    );
    const source = reader.read(parsed);
    if (source && source.samples.some((s) => s.heads.length > 0)) sources.push(source);
  }
  return sources;
}
