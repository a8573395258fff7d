// TP5 Part 3 (spec labs/TP5.md §3): the LOP-120 research challenge. The TAP baseline (GRU-64),
// the wide control (GRU-128) and H-TAP (GRU + episodic memory read by causal scaled dot-product
// attention) are trained identically; the main pair over `seeds` seeds (mean ± std), the FIFO-10
// and bounded-score ablations and the gap sweep on one. Every model is its own MLflow run in
// `TP5_Part3_HTAP`; a summary run holds the figures P3-a … P3-g, the raw arrays behind them,
// the PASS/FAIL table of the eight criteria and report.md.
import { modelState } from "../../engine/io/checkpoint.ts";
import { encodeSafetensors } from "../../engine/io/safetensors.ts";
import { formatDuration } from "../../engine/train/progress.ts";
import { type Run, withRun } from "../../tracking/run.ts";
import { openStore, type TrackingStore } from "../../tracking/store.ts";
import {
  APPEARANCE,
  CHANNELS,
  CONTENT,
  CONTEXT,
  FRAMES,
  HORIZON,
  type Lop120,
} from "../data/lop120.ts";
import { type Check, fmt, meanStd, type PartResult, type Tp5Options } from "./common.ts";
import {
  HEATMAP_QUERIES,
  LOP,
  type LopSplits,
  makeSplits,
  type TapResult,
  type TapSpec,
  trainTap,
} from "./lop_train.ts";
import { barPanelsSpec, heatmapSpec, type LinePanel, linePanelsSpec, logFigure } from "./plots.ts";
import { writeReport } from "./report.ts";
import { logEpochMetrics } from "../train_run.ts";

export const PART3_EXPERIMENT = "TP5_Part3_HTAP";

/** Sizes and schedule (spec §3.5; §3.6 allows train 4096 → 2048 and epochs 10 → 6). */
export interface Part3Config {
  train: number;
  val: number;
  test: number;
  epochs: number;
  /** Training sequences of the gap sweep's splits. */
  gapTrain: number;
  /** The GRU in the gap sweep (spec: 40 epochs). */
  gapEpochsGru: number;
  gapEpochsHtap: number;
  gaps: number[];
}

export function part3Config(options: Tp5Options): Part3Config {
  if (options.quick) {
    return {
      train: 128,
      val: 64,
      test: 64,
      epochs: 2,
      gapTrain: 128,
      gapEpochsGru: 2,
      gapEpochsHtap: 1,
      gaps: [10],
    };
  }
  // Spec §3.5 protocol: 4096 sequences, batch 64, 10 epochs = 640 updates (at the 320 updates of
  // the §3.6 budget knobs H-TAP's first re-entry frame still misses criterion 3: 0.072 > 0.05).
  // Gap sweep: the GRU gets its 40 epochs on the same 4096 sequences (2,560 updates; on 2048 its
  // gap-10 recall was still rising at 75.7 % after 1,280), H-TAP 5 epochs (320 updates, 100 % in
  // the calibration). The gap itself is never shortened.
  return {
    train: 4096,
    val: 512,
    test: 1024,
    epochs: options.epochs ?? 10,
    gapTrain: 4096,
    gapEpochsGru: 40,
    gapEpochsHtap: 5,
    gaps: [10, 20, 40, 80],
  };
}

/** Model families of the benchmark. */
export const GRU64 = { label: "GRU-64", memory: "none", units: 64 } as const;
const GRU128 = { label: "GRU-128", memory: "none", units: 128 } as const;
export const HTAP = { label: "H-TAP", memory: "full", units: 64 } as const;
const FIFO = { label: "FIFO-10", memory: "fifo", units: 64, window: 10 } as const;
const BOUNDED = { label: "bounded", memory: "bounded", units: 64 } as const;

interface Trained {
  result: TapResult;
  runId: string;
}

export async function trainAndLog(
  store: TrackingStore,
  spec: TapSpec,
  splits: LopSplits,
  config: Part3Config,
  options: Tp5Options,
): Promise<Trained> {
  options.out.write(`\n-- ${spec.name}: ${spec.label} (${spec.epochs} epochs) --\n`);
  let runId = "";
  const result = await withRun(store, PART3_EXPERIMENT, {
    runName: spec.name,
    tags: { "denograd.lab": "tp5/part3", model: spec.label },
  }, async (run) => {
    runId = run.id;
    await run.logParams({
      model: spec.label,
      memory: spec.memory,
      units: spec.units,
      window: spec.window ?? "none",
      seed: spec.seed,
      epochs: spec.epochs,
      batch_size: LOP.batchSize,
      learning_rate: LOP.lr,
      clip_norm: LOP.clip,
      train_size: splits.train.data.n,
      val_size: config.val,
      test_size: config.test,
      data_seeds: "train 1, val 2, test 3",
      gap: splits.options.gap ?? "random 80-96",
      lure: splits.options.lure ?? true,
      quick: options.quick,
    });
    const r = await trainTap(spec, splits, options, {
      onEpoch: (epoch, { seconds, ...metrics }) =>
        logEpochMetrics(run, epoch, { ...metrics, epoch_seconds: seconds }),
      onTrained: async (model) => {
        const bytes = encodeSafetensors(await modelState(model), { model: spec.label });
        await run.logArtifact("model/weights.safetensors", bytes);
      },
    });
    await run.logMetrics({
      ...r.test.metrics,
      ...(r.test.attention ?? {}),
      params: r.params,
      train_seconds: r.trainSeconds,
    });
    for (let k = 0; k < HORIZON; k++) {
      await run.logMetric("test_mse_app_by_step", r.test.horizonApp[k], k + 1);
      await run.logMetric("test_mse_bg_by_step", r.test.horizonBg[k], k + 1);
    }
    return r;
  });
  const m = result.test.metrics;
  options.out.write(
    `  test: mse_app_h ${fmt(m.mse_app_h)}, mse_app_k1 ${fmt(m.mse_app_k1)}, id_acc ` +
      `${(100 * m.id_acc).toFixed(1)} %, mse_bg_h ${fmt(m.mse_bg_h)}, mse_bg_tf ${
        fmt(m.mse_bg_tf)
      }` +
      (result.test.attention
        ? `, key mass ${fmt(result.test.attention.attn_key_mass)}, lure ${
          fmt(result.test.attention.attn_lure_mass)
        }, H/ln100 ${fmt(result.test.attention.attn_entropy_norm)}, max α ${
          fmt(result.test.attention.attn_max_weight)
        }`
        : "") +
      ` (${result.params} params, trained in ${result.trainSeconds.toFixed(0)} s)\n`,
  );
  return { result, runId };
}

/** Everything the summary, figures and report are made of. */
export interface Part3Results {
  config: Part3Config;
  seeds: number;
  gru: TapResult[];
  htap: TapResult[];
  gru128: TapResult;
  fifo: TapResult;
  bounded: TapResult;
  gap: { gap: number; gru: TapResult; htap: TapResult }[];
  /** The main test split (sightings, lures and frames for the figures). */
  test: Lop120;
}

/** The five models of the comparison (main pair over seeds), as figures and report list them. */
export function modelGroups(
  r: Part3Results,
): { label: string; role: string; results: TapResult[] }[] {
  return [
    { label: "GRU-64", role: "TAP baseline GRU-64", results: r.gru },
    { label: "GRU-128", role: "TAP baseline GRU-128 (capacity control)", results: [r.gru128] },
    { label: "FIFO-10", role: "H-TAP, FIFO-10 memory (ablation)", results: [r.fifo] },
    { label: "bounded", role: "H-TAP, bounded tanh score (ablation)", results: [r.bounded] },
    { label: "H-TAP", role: "**H-TAP**", results: r.htap },
  ];
}

/** Every trained model of the part. */
function everyResult(r: Part3Results): TapResult[] {
  return [
    ...r.gru,
    ...r.htap,
    r.gru128,
    r.fifo,
    r.bounded,
    ...r.gap.flatMap((g) => [g.gru, g.htap]),
  ];
}

/** mean ± std of one metric over runs. */
export function stat(results: readonly TapResult[], pick: (r: TapResult) => number) {
  return meanStd(results.map(pick));
}

const pm = (s: { mean: number; std: number }, digits = 3) =>
  `${fmt(s.mean, digits)} ± ${fmt(s.std, 2)}`;
const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

export function part3Checks(r: Part3Results): Check[] {
  const app = (x: TapResult) => x.test.metrics.mse_app_h;
  const id = (x: TapResult) => x.test.metrics.id_acc;
  const att = (x: TapResult) => x.test.attention!;
  const worst = (xs: TapResult[], pick: (x: TapResult) => number, hi: boolean) =>
    hi ? Math.max(...xs.map(pick)) : Math.min(...xs.map(pick));
  const h = r.htap, g = r.gru;
  const bgH = stat(h, (x) => x.test.metrics.mse_bg_h).mean;
  const bgG = stat(g, (x) => x.test.metrics.mse_bg_h).mean;
  const tf = Math.max(...[...h, ...g].map((x) => x.test.metrics.mse_bg_tf));
  const gapAt = (gap: number) => r.gap.find((x) => x.gap === gap);
  const sweep = r.gap.map((x) => `${x.gap}: GRU ${pct(id(x.gru))} / H-TAP ${pct(id(x.htap))}`);
  const gruShort = r.gap.filter((x) => x.gap <= 10);
  const gruLong = r.gap.filter((x) => x.gap > 10);
  const boundedRatio = app(r.bounded) / stat(h, app).mean;
  // The budget is per model of the 10-epoch protocol; the gap sweep's 40-epoch GRU runs are not.
  const protocol = [...r.gru, ...r.htap, r.gru128, r.fifo, r.bounded];
  const slowest = protocol.reduce((a, b) => a.trainSeconds >= b.trainSeconds ? a : b);
  return [
    {
      name: "1 consistency: mse_app_h H-TAP vs GRU-64",
      value: `${pm(stat(h, app))} vs ${pm(stat(g, app))}`,
      reference: "0.0042 vs 1.163 (calibration); seed 000: H-TAP 83 % worse",
      criterion: "H-TAP ≤ 0.02 and GRU ≥ 0.8 on every seed",
      pass: worst(h, app, true) <= 0.02 && worst(g, app, false) >= 0.8,
    },
    {
      name: "2 identity: id_acc H-TAP vs GRU-64",
      value: `${pct(stat(h, id).mean)} vs ${pct(stat(g, id).mean)}`,
      reference: "100 % vs 7.0 % (chance 6.25 %)",
      criterion: "H-TAP ≥ 95 %, GRU ≤ 20 % on every seed",
      pass: worst(h, id, false) >= 0.95 && worst(g, id, true) <= 0.2,
    },
    {
      name: "3 re-entry frame: H-TAP mse_app_k1",
      value: pm(stat(h, (x) => x.test.metrics.mse_app_k1)),
      reference: "0.0057",
      criterion: "≤ 0.05 on every seed",
      pass: worst(h, (x) => x.test.metrics.mse_app_k1, true) <= 0.05,
    },
    {
      name: "4 control: mse_bg_h H-TAP / GRU, max mse_bg_tf",
      value: `${fmt(bgH)} / ${fmt(bgG)} (ratio ${fmt(bgH / bgG)}), tf ${fmt(tf)}`,
      reference: "0.200 / 0.196, tf 0.0026 / 0.0031",
      criterion: "ratio within ±25 %, mse_bg_tf ≤ 0.006",
      pass: Math.abs(bgH / bgG - 1) <= 0.25 && tf <= 0.006,
    },
    {
      name: "5 focus at re-entry: key / lure mass, H/ln100, max α",
      value: `${pm(stat(h, (x) => att(x).attn_key_mass))} / ${
        pm(stat(h, (x) => att(x).attn_lure_mass))
      } / ${pm(stat(h, (x) => att(x).attn_entropy_norm))} / ${
        pm(stat(h, (x) => att(x).attn_max_weight))
      }`,
      reference: "0.991 / 0.003 / 0.327 / 0.364; seed 000 flat 0.01",
      criterion: "≥ 0.8 / ≤ 0.05 / ≤ 0.5 / ≥ 0.2 on every seed",
      pass: worst(h, (x) => att(x).attn_key_mass, false) >= 0.8 &&
        worst(h, (x) => att(x).attn_lure_mass, true) <= 0.05 &&
        worst(h, (x) => att(x).attn_entropy_norm, true) <= 0.5 &&
        worst(h, (x) => att(x).attn_max_weight, false) >= 0.2,
    },
    {
      name: "6 ablations: FIFO-10, GRU-128 mse_app_h; bounded ratio, H/ln100, max α",
      value: `${fmt(app(r.fifo))}, ${fmt(app(r.gru128))}; ${fmt(boundedRatio)}× H-TAP, ${
        fmt(att(r.bounded).attn_entropy_norm)
      }, ${fmt(att(r.bounded).attn_max_weight)}`,
      reference: "1.162, 1.176; 10× (0.042), 0.934, 0.052",
      criterion: "≥ 0.8, ≥ 0.8; ≥ 5×, ≥ 0.9, ≤ 0.058",
      pass: app(r.fifo) >= 0.8 && app(r.gru128) >= 0.8 && boundedRatio >= 5 &&
        att(r.bounded).attn_entropy_norm >= 0.9 && att(r.bounded).attn_max_weight <= 0.058,
    },
    {
      name: "7 gap sweep (lure off): id_acc by gap",
      value: sweep.join("; "),
      reference: "GRU 100 % at 10, ≈ 7 % at 20/40/80; H-TAP 100 %",
      criterion: "GRU ≥ 90 % at 10 and ≤ 20 % beyond; H-TAP ≥ 95 % everywhere",
      pass: r.gap.length > 0 && gruShort.every((x) => id(x.gru) >= 0.9) &&
        gruLong.every((x) => id(x.gru) <= 0.2) && r.gap.every((x) => id(x.htap) >= 0.95) &&
        gapAt(10) !== undefined,
    },
    {
      name: "8 budget: slowest Part-3 model (10 epochs × 64 updates)",
      value: `${slowest.spec.name} ${formatDuration(slowest.trainSeconds)} on this adapter`,
      reference: "≤ 5 min on a small GPU (spec)",
      criterion: "≤ 5 min; a GPU budget, reported here",
      pass: slowest.trainSeconds <= 300,
      informational: true,
    },
  ];
}

/** Quick mode: the code paths ran and produced sane numbers (no learning criterion). */
function quickChecks(r: Part3Results): Check[] {
  const all = everyResult(r);
  const finite = all.every((x) =>
    x.epochs.every((e) => Number.isFinite(e.loss)) &&
    Object.values(x.test.metrics).every(Number.isFinite)
  );
  const falling = all.filter((x) => x.epochs.length > 1).every((x) =>
    x.epochs.at(-1)!.loss < x.epochs[0].loss
  );
  const sums = all.filter((x) => x.samples.reentry).flatMap((x) =>
    x.samples.reentry!.map((w) => Math.abs(w.reduce((a, b) => a + b, 0) - 1))
  );
  const shapes = all.every((x) =>
    x.samples.predictions.every((p) => p.length === (FRAMES - 1) * 14)
  );
  return [
    {
      name: "losses and metrics finite",
      value: String(finite),
      reference: "—",
      criterion: "true",
      pass: finite,
    },
    {
      name: "loss falls over the epochs",
      value: String(falling),
      reference: "—",
      criterion: "true",
      pass: falling,
    },
    {
      name: "re-entry attention sums to 1",
      value: `max |Σα − 1| = ${fmt(Math.max(...sums))}`,
      reference: "—",
      criterion: "≤ 1e-5",
      pass: sums.length > 0 && Math.max(...sums) <= 1e-5,
    },
    {
      name: "prediction shapes [119, 14]",
      value: String(shapes),
      reference: "—",
      criterion: "true",
      pass: shapes,
    },
  ];
}

export async function runPart3(options: Tp5Options): Promise<PartResult> {
  const started = performance.now();
  const config = part3Config(options);
  const store = openStore();
  const runIds: string[] = [];
  const out = options.out;
  out.write(
    `\n== TP5 Part 3 — LOP-120: TAP baseline vs H-TAP (train ${config.train}, ${config.epochs} ` +
      `epochs, ${options.seeds} seed(s)) ==\n`,
  );
  const train = async (
    spec: Omit<TapSpec, "name" | "epochs">,
    name: string,
    splits: LopSplits,
    epochs: number,
  ) => {
    const t = await trainAndLog(store, { ...spec, name, epochs }, splits, config, options);
    runIds.push(t.runId);
    return t.result;
  };
  const sizes = { train: config.train, val: config.val, test: config.test };
  const main = makeSplits(sizes);
  const gru: TapResult[] = [], htap: TapResult[] = [];
  let gru128: TapResult, fifo: TapResult, bounded: TapResult;
  try {
    for (let s = 0; s < options.seeds; s++) {
      const seed = options.seed + s;
      const curves = s === 0;
      gru.push(await train({ ...GRU64, seed, curves }, `GRU64_seed${seed}`, main, config.epochs));
      htap.push(await train({ ...HTAP, seed, curves }, `HTAP_seed${seed}`, main, config.epochs));
    }
    gru128 = await train(
      { ...GRU128, seed: options.seed, curves: true },
      `GRU128_seed${options.seed}`,
      main,
      config.epochs,
    );
    fifo = await train(
      { ...FIFO, seed: options.seed, curves: true },
      `FIFO10_seed${options.seed}`,
      main,
      config.epochs,
    );
    bounded = await train(
      { ...BOUNDED, seed: options.seed, curves: true },
      `Bounded_seed${options.seed}`,
      main,
      config.epochs,
    );
  } finally {
    main.dispose();
  }
  const gap: Part3Results["gap"] = [];
  for (const g of config.gaps) {
    const splits = makeSplits({ ...sizes, train: config.gapTrain }, { gap: g, lure: false });
    try {
      gap.push({
        gap: g,
        gru: await train(
          { ...GRU64, seed: options.seed },
          `Gap${g}_GRU64`,
          splits,
          config.gapEpochsGru,
        ),
        htap: await train(
          { ...HTAP, seed: options.seed },
          `Gap${g}_HTAP`,
          splits,
          config.gapEpochsHtap,
        ),
      });
    } finally {
      splits.dispose();
    }
  }
  const results: Part3Results = {
    config,
    seeds: options.seeds,
    gru,
    htap,
    gru128,
    fifo,
    bounded,
    gap,
    test: main.test.data,
  };
  const checks = options.quick ? quickChecks(results) : part3Checks(results);
  const summaryRun = await withRun(store, PART3_EXPERIMENT, {
    runName: "LOP120_summary",
    tags: { "denograd.lab": "tp5/part3" },
  }, async (run) => {
    await run.logParams({
      ...config,
      gaps: config.gaps.join(","),
      seeds: options.seeds,
      base_seed: options.seed,
      quick: options.quick,
    });
    await logSummaryMetrics(run, results);
    await logFigures(run, results);
    await run.logDict("checks.json", checks);
    await writeReport(run, results, checks);
    return run.id;
  });
  runIds.push(summaryRun);
  return {
    part: 3,
    title: "LOP-120 long-range memory benchmark (TAP vs H-TAP)",
    checks,
    runIds,
    seconds: (performance.now() - started) / 1000,
  };
}

async function logSummaryMetrics(run: Run, r: Part3Results): Promise<void> {
  const groups: [string, TapResult[]][] = [["gru64", r.gru], ["htap", r.htap]];
  for (const [prefix, xs] of groups) {
    for (const [key, pick] of Object.entries(metricPickers)) {
      const s = stat(xs, pick);
      if (!Number.isFinite(s.mean)) continue;
      await run.logMetrics({ [`${prefix}_${key}_mean`]: s.mean, [`${prefix}_${key}_std`]: s.std });
    }
  }
}

const metricPickers: Record<string, (r: TapResult) => number> = {
  mse_app_h: (r) => r.test.metrics.mse_app_h,
  mse_app_k1: (r) => r.test.metrics.mse_app_k1,
  id_acc: (r) => r.test.metrics.id_acc,
  mse_bg_h: (r) => r.test.metrics.mse_bg_h,
  mse_bg_tf: (r) => r.test.metrics.mse_bg_tf,
  attn_key_mass: (r) => r.test.attention?.attn_key_mass ?? NaN,
  attn_lure_mass: (r) => r.test.attention?.attn_lure_mass ?? NaN,
  attn_entropy_norm: (r) => r.test.attention?.attn_entropy_norm ?? NaN,
  attn_max_weight: (r) => r.test.attention?.attn_max_weight ?? NaN,
};

const frames = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

async function logFigures(run: Run, r: Part3Results): Promise<void> {
  const [h0, g0] = [r.htap[0], r.gru[0]];
  // P3-a: re-entry attention, three test sequences, H-TAP next to the bounded ablation.
  const panels: LinePanel[] = [];
  const reentry: Record<string, number[][]> = { htap: [], bounded: [] };
  for (let i = 0; i < h0.samples.reentry!.length; i++) {
    for (const [key, model] of [["htap", h0], ["bounded", r.bounded]] as const) {
      const w = Array.from(model.samples.reentry![i]);
      reentry[key].push(w);
      panels.push({
        title: `${model.spec.label}, test sequence ${i}`,
        xTitle: "memory frame",
        yTitle: "α at the re-entry query (t = 99)",
        lines: [{ name: "attention", x: frames(0, CONTEXT), y: w }],
        bands: bandsOf(r, i),
        rule: { y: 1 / CONTEXT, label: "uniform 1/100" },
        yZero: true,
        height: 160,
      });
    }
  }
  await logFigure(
    run,
    "p3_attention_reentry",
    linePanelsSpec(
      "P3-a — attention at the re-entry query (green: target sightings, red: lure)",
      panels,
      2,
      true,
    ),
    {
      frames: frames(0, CONTEXT),
      ...reentry,
      sightings: spansOf(r, "sighting"),
      lures: spansOf(r, "lure"),
    },
  );
  // P3-b: heatmap of queries 80 … 118 over memory frames 0 … 118, one sequence.
  const heat = h0.samples.heatmap![0];
  await logFigure(
    run,
    "p3_attention_heatmap",
    heatmapSpec("P3-b — H-TAP attention, test sequence 0", [{
      title: "queries 80–99 teacher-forced, 100–118 generated",
      values: heat,
      rows: HEATMAP_QUERIES.length,
      cols: FRAMES - 1,
      rowLabel: (i) => HEATMAP_QUERIES[i],
      xTitle: "memory frame",
      yTitle: "query step t",
      width: 600,
      height: 320,
    }]),
    { queries: HEATMAP_QUERIES, weights: rowsOf(heat, FRAMES - 1) },
  );
  // P3-c: one rollout — two appearance channels and one background channel.
  const truth = testFrames(r, 0);
  const channel = (p: Float32Array, c: number) =>
    frames(1, FRAMES - 1).map((f) => p[(f - 1) * 14 + c]);
  const rolloutPanels: LinePanel[] = [0, 1, APPEARANCE].map((c) => ({
    title: c < APPEARANCE ? `appearance channel ${c}` : `background channel ${c - APPEARANCE}`,
    xTitle: "frame",
    yTitle: "value",
    lines: [
      { name: "ground truth", x: frames(0, FRAMES), y: truth.map((f) => f[c]) },
      { name: "GRU-64", x: frames(1, FRAMES - 1), y: channel(g0.samples.predictions[0], c) },
      { name: "H-TAP", x: frames(1, FRAMES - 1), y: channel(h0.samples.predictions[0], c) },
    ],
    bands: [
      ...bandsOf(r, 0),
      { from: CONTEXT, to: FRAMES - 1, color: "#7f7fff", label: "free-running horizon" },
    ],
  }));
  await logFigure(
    run,
    "p3_rollout",
    linePanelsSpec("P3-c — test sequence 0 (blue: generated horizon)", rolloutPanels, 3),
    {
      truth,
      gru64: Array.from(g0.samples.predictions[0]),
      htap: Array.from(h0.samples.predictions[0]),
    },
  );
  // P3-d: per-horizon-step error.
  const steps = frames(1, HORIZON);
  const mean = (xs: TapResult[], pick: (x: TapResult) => number[]) =>
    steps.map((_, k) => xs.reduce((s, x) => s + pick(x)[k], 0) / xs.length);
  const curves = {
    gru64_app: mean(r.gru, (x) => x.test.horizonApp),
    htap_app: mean(r.htap, (x) => x.test.horizonApp),
    gru64_bg: mean(r.gru, (x) => x.test.horizonBg),
    htap_bg: mean(r.htap, (x) => x.test.horizonBg),
  };
  await logFigure(
    run,
    "p3_horizon_error",
    linePanelsSpec("P3-d — error per horizon step (mean over seeds)", [
      {
        title: "appearance (channels 0–7)",
        xTitle: "horizon step k (frame 99 + k)",
        yTitle: "MSE",
        logY: true,
        lines: [{ name: "GRU-64", x: steps, y: curves.gru64_app }, {
          name: "H-TAP",
          x: steps,
          y: curves.htap_app,
        }],
      },
      {
        title: "background (channels 8–13)",
        xTitle: "horizon step k (frame 99 + k)",
        yTitle: "MSE",
        lines: [{ name: "GRU-64", x: steps, y: curves.gru64_bg }, {
          name: "H-TAP",
          x: steps,
          y: curves.htap_bg,
        }],
      },
    ]),
    { steps, ...curves },
  );
  // P3-e: summary bars.
  const bars = (pick: (x: TapResult) => number) =>
    modelGroups(r).map(({ label: name, results: xs }) => ({
      name,
      value: stat(xs, pick).mean,
      std: stat(xs, pick).std,
    }));
  const summary = {
    mse_app_h: bars((x) => x.test.metrics.mse_app_h),
    id_acc: bars((x) => x.test.metrics.id_acc),
    mse_bg_h: bars((x) => x.test.metrics.mse_bg_h),
  };
  await logFigure(
    run,
    "p3_summary",
    barPanelsSpec(`P3-e — test metrics (mean ± std; main pair over ${r.seeds} seed(s))`, [
      { title: "mse_app_h (log)", yTitle: "MSE", bars: summary.mse_app_h, logY: true },
      { title: "id_acc", yTitle: "accuracy", bars: summary.id_acc },
      { title: "mse_bg_h", yTitle: "MSE", bars: summary.mse_bg_h },
    ]),
    summary,
  );
  // P3-f: gap sweep.
  const gaps = r.gap.map((g) => g.gap);
  const sweep = {
    gaps,
    gru64_id_acc: r.gap.map((g) => g.gru.test.metrics.id_acc),
    htap_id_acc: r.gap.map((g) => g.htap.test.metrics.id_acc),
    gru64_mse_app_h: r.gap.map((g) => g.gru.test.metrics.mse_app_h),
    htap_mse_app_h: r.gap.map((g) => g.htap.test.metrics.mse_app_h),
  };
  await logFigure(
    run,
    "p3_gap_sweep",
    linePanelsSpec("P3-f — gap sweep (lure off)", [
      {
        title: "identity accuracy",
        xTitle: "gap (frames out of view)",
        yTitle: "id_acc",
        logX: true,
        lines: [{ name: "GRU-64", x: gaps, y: sweep.gru64_id_acc }, {
          name: "H-TAP",
          x: gaps,
          y: sweep.htap_id_acc,
        }],
        rule: { y: 1 / 16, label: "chance" },
      },
      {
        title: "appearance MSE over the horizon",
        xTitle: "gap (frames out of view)",
        yTitle: "mse_app_h",
        logX: true,
        logY: true,
        lines: [{ name: "GRU-64", x: gaps, y: sweep.gru64_mse_app_h }, {
          name: "H-TAP",
          x: gaps,
          y: sweep.htap_mse_app_h,
        }],
      },
    ]),
    sweep,
  );
  // P3-g: training curves of the seed-0 models.
  const trained = [g0, r.gru128, r.fifo, r.bounded, h0];
  const epochAxis = (x: TapResult) => x.epochs.map((_, i) => i + 1);
  const g = {
    loss: trained.map((x) => ({
      name: x.spec.label,
      x: epochAxis(x),
      y: x.epochs.map((e) => e.loss),
    })),
    val: trained.map((x) => ({
      name: x.spec.label,
      x: epochAxis(x),
      y: x.epochs.map((e) => e.val_mse_app_h ?? NaN),
    })),
    key: trained.filter((x) => x.epochs[0].val_attn_key_mass !== undefined).map((x) => ({
      name: x.spec.label,
      x: epochAxis(x),
      y: x.epochs.map((e) => e.val_attn_key_mass ?? NaN),
    })),
  };
  await logFigure(
    run,
    "p3_training_curves",
    linePanelsSpec("P3-g — training (first seed)", [
      {
        title: "training loss (MSE, all 119 frames)",
        xTitle: "epoch",
        yTitle: "loss",
        logY: true,
        lines: g.loss,
      },
      { title: "validation mse_app_h", xTitle: "epoch", yTitle: "MSE", logY: true, lines: g.val },
      {
        title: "validation key mass at re-entry",
        xTitle: "epoch",
        yTitle: "Σα on sightings",
        lines: g.key,
      },
    ], 3),
    g,
  );
}

/** Sighting (green) and lure (red) spans of test sequence i. */
function bandsOf(r: Part3Results, i: number) {
  const s = r.test.sighting[i], l = r.test.lure[i];
  const bands = [{ from: s.start, to: s.start + s.length - 1, color: "#2ca02c", label: "target" }];
  if (l) bands.push({ from: l.start, to: l.start + l.length - 1, color: "#d62728", label: "lure" });
  return bands;
}

function spansOf(r: Part3Results, which: "sighting" | "lure") {
  return r.test[which].slice(0, 3);
}

/** Content channels of every frame of test sequence i, [120][14]. */
function testFrames(r: Part3Results, i: number): number[][] {
  return frames(0, FRAMES).map((f) => {
    const o = (i * FRAMES + f) * CHANNELS;
    return Array.from(r.test.frames.subarray(o, o + CONTENT));
  });
}

function rowsOf(values: Float32Array, cols: number): number[][] {
  return Array.from(
    { length: values.length / cols },
    (_, i) => Array.from(values.subarray(i * cols, (i + 1) * cols)),
  );
}
