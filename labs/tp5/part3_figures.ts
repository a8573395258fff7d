// TP5 Part 3's summary figures P3-a … P3-g (spec labs/TP5.md §4) with the raw arrays behind
// them, and the summary run's mean ± std metrics of the main pair.
import type { Run } from "../../tracking/run.ts";
import { APPEARANCE, CHANNELS, CONTENT, CONTEXT, FRAMES, HORIZON } from "../data/lop120.ts";
import { HEATMAP_QUERIES, type TapResult } from "./lop_train.ts";
import { modelGroups, type Part3Results, stat } from "./part3.ts";
import { barPanelsSpec, heatmapSpec, type LinePanel, linePanelsSpec, logFigure } from "./plots.ts";

export async function logSummaryMetrics(run: Run, r: Part3Results): Promise<void> {
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

export async function logFigures(run: Run, r: Part3Results): Promise<void> {
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
