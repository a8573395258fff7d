// TP5 Part 3 (spec labs/TP5.md §3): the LOP-120 research challenge. The TAP baseline (GRU-64),
// the wide control (GRU-128) and H-TAP (GRU + episodic memory read by causal scaled dot-product
// attention) are trained identically; the main pair over `seeds` seeds (mean ± std), the FIFO-10
// and bounded-score ablations and the gap sweep on one. Every model is its own MLflow run in
// `TP5_Part3_HTAP`; a summary run holds the figures P3-a … P3-g, the raw arrays behind them,
// the PASS/FAIL table of the eight criteria and report.md.
import { modelState } from "../../engine/io/checkpoint.ts";
import { encodeSafetensors } from "../../engine/io/safetensors.ts";
import { formatDuration } from "../../engine/train/progress.ts";
import * as path from "node:path";
import { withRun } from "../../tracking/run.ts";
import type { TrackingStore } from "../../tracking/store.ts";
import { FRAMES, generateLop120, HORIZON, type Lop120 } from "../data/lop120.ts";
import {
  type Check,
  fmt,
  meanStd,
  type PartResult,
  type Tp5Options,
  type Tp5Part,
  type Tp5Unit,
} from "./common.ts";
import {
  LOP,
  type LopSplits,
  makeSplits,
  readTapCheckpoint,
  type TapResult,
  tapResultFromJson,
  type TapResultJson,
  tapResultToJson,
  type TapSpec,
  trainTap,
} from "./lop_train.ts";
import { logFigures, logSummaryMetrics } from "./part3_figures.ts";
import { writeReport } from "./report.ts";
import { UsageError } from "../registry.ts";
import { logEpochMetrics, tagResumedRun } from "../train_run.ts";
import { type FoundUnit, logUnitResult, PLAN_TAG, unitSeconds, unitTags } from "../unit_runs.ts";

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

export function part3Config(options: Pick<Tp5Options, "quick" | "epochs">): Part3Config {
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

/** Where a model keeps its per-epoch training checkpoint. */
function checkpointFile(options: Tp5Options, spec: TapSpec): string {
  return path.join(options.checkpointDir, "tp5", `${spec.name}.safetensors`);
}

async function trainAndLog(
  store: TrackingStore,
  spec: TapSpec,
  splits: LopSplits,
  config: Part3Config,
  options: Tp5Options,
): Promise<void> {
  options.out.write(`\n-- ${spec.name}: ${spec.label} (${spec.epochs} epochs) --\n`);
  const file = checkpointFile(options, spec);
  const resume = options.resume ? await readTapCheckpoint(file) : null;
  if (resume && resume.plan !== options.plan) {
    throw new UsageError(
      `--resume: ${file} was trained under '${resume.plan}', this command asks for ` +
        `'${options.plan}': resume with those settings, or train from scratch without --resume`,
    );
  }
  if (options.resume && !resume) {
    options.out.write(`--resume: no checkpoint at ${file} yet: training from the start\n`);
  }
  const result = await withRun(store, PART3_EXPERIMENT, {
    runName: spec.name,
    tags: { "denograd.lab": "tp5/part3", model: spec.label, ...unitTags(options.plan, spec.name) },
  }, async (run) => {
    if (resume) await tagResumedRun(run, resume.runId, resume.epochs.length, options.out);
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
    }, { file, runId: run.id, resume });
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
    await logUnitResult(run, tapResultToJson(r));
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

/** One Part-3 model: its spec, and the gap of its lure-free splits (null: the main splits). */
interface Part3Model {
  spec: TapSpec;
  gap: number | null;
}

/** The models in the order the whole part trains them (the run names are the unit names). */
function part3Models(options: Tp5Options): Part3Model[] {
  const config = part3Config(options);
  const base = options.seed;
  const main = (spec: Omit<TapSpec, "epochs">): Part3Model => ({
    spec: { ...spec, epochs: config.epochs },
    gap: null,
  });
  const models: Part3Model[] = [];
  for (let s = 0; s < options.seeds; s++) {
    const seed = base + s;
    const curves = s === 0;
    models.push(main({ ...GRU64, seed, curves, name: `GRU64_seed${seed}` }));
    models.push(main({ ...HTAP, seed, curves, name: `HTAP_seed${seed}` }));
  }
  models.push(main({ ...GRU128, seed: base, curves: true, name: `GRU128_seed${base}` }));
  models.push(main({ ...FIFO, seed: base, curves: true, name: `FIFO10_seed${base}` }));
  models.push(main({ ...BOUNDED, seed: base, curves: true, name: `Bounded_seed${base}` }));
  for (const gap of config.gaps) {
    models.push({
      spec: { ...GRU64, seed: base, name: `Gap${gap}_GRU64`, epochs: config.gapEpochsGru },
      gap,
    });
    models.push({
      spec: { ...HTAP, seed: base, name: `Gap${gap}_HTAP`, epochs: config.gapEpochsHtap },
      gap,
    });
  }
  return models;
}

/** Seconds of one epoch of 64 updates on this adapter (README: fused decoder, quiet machine). */
const EPOCH_SECONDS: Record<TapSpec["memory"], Record<number, number>> = {
  none: { 64: 9, 128: 14 },
  full: { 64: 21 },
  fifo: { 64: 21 },
  bounded: { 64: 21 },
};

async function trainModel(store: TrackingStore, model: Part3Model, options: Tp5Options) {
  const config = part3Config(options);
  const sizes = { train: config.train, val: config.val, test: config.test };
  const splits = model.gap === null
    ? makeSplits(sizes)
    : makeSplits({ ...sizes, train: config.gapTrain }, { gap: model.gap, lure: false });
  try {
    await trainAndLog(store, model.spec, splits, config, options);
  } finally {
    splits.dispose();
  }
}

async function summarize(
  store: TrackingStore,
  options: Tp5Options,
  found: ReadonlyMap<string, FoundUnit<unknown>>,
): Promise<PartResult> {
  const config = part3Config(options);
  const result = (name: string) => tapResultFromJson(found.get(name)!.result as TapResultJson);
  const seeds = Array.from({ length: options.seeds }, (_, s) => options.seed + s);
  const base = options.seed;
  const results: Part3Results = {
    config,
    seeds: options.seeds,
    gru: seeds.map((s) => result(`GRU64_seed${s}`)),
    htap: seeds.map((s) => result(`HTAP_seed${s}`)),
    gru128: result(`GRU128_seed${base}`),
    fifo: result(`FIFO10_seed${base}`),
    bounded: result(`Bounded_seed${base}`),
    gap: config.gaps.map((gap) => ({
      gap,
      gru: result(`Gap${gap}_GRU64`),
      htap: result(`Gap${gap}_HTAP`),
    })),
    // The main test split, as makeSplits generates it (data seed 3), for the figures.
    test: generateLop120({ n: config.test, seed: 3 }),
  };
  const checks = options.quick ? quickChecks(results) : part3Checks(results);
  const summaryRun = await withRun(store, PART3_EXPERIMENT, {
    runName: "LOP120_summary",
    tags: { "denograd.lab": "tp5/part3", [PLAN_TAG]: options.plan },
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
  return {
    part: 3,
    title: "LOP-120 long-range memory benchmark (TAP vs H-TAP)",
    checks,
    runIds: [
      ...part3Models(options).map((m) => found.get(m.spec.name)!.run.info.runId),
      summaryRun,
    ],
    seconds: unitSeconds(found),
  };
}

export const PART3: Tp5Part = {
  part: 3,
  experiment: PART3_EXPERIMENT,
  heading: (options) => {
    const config = part3Config(options);
    return `\n== TP5 Part 3 — LOP-120: TAP baseline vs H-TAP (train ${config.train}, ` +
      `${config.epochs} epochs, ${options.seeds} seed(s)) ==\n`;
  },
  units: (options) => {
    const config = part3Config(options);
    return part3Models(options).map((model): Tp5Unit => {
      const { spec, gap } = model;
      const train = gap === null ? config.train : config.gapTrain;
      const epoch = EPOCH_SECONDS[spec.memory][spec.units] * train / 4096;
      return {
        name: spec.name,
        trains: `${spec.label}, seed ${spec.seed}, ${spec.epochs} epochs on ${train} sequences` +
          (gap === null ? "" : ` (gap ${gap}, no lure)`),
        seconds: Math.round((options.quick ? 10 : 20) + spec.epochs * epoch),
        train: (store) => trainModel(store, model, options),
      };
    });
  },
  summarize,
};
