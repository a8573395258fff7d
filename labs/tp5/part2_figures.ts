// TP5 Part 2's figures (spec labs/TP5.md §4 P2-a … P2-d): the cross-attention heatmaps of one test
// series (autoregressive and teacher-forced), the forecasts, the error per horizon step and the
// training curves, each with the raw arrays behind it.
import type { Run } from "../../tracking/run.ts";
import type { SeriesData } from "../data/series.ts";
import { fmt } from "./common.ts";
import type { Part2Config, Part2RunResult } from "./part2.ts";
import { heatmapSpec, type LinePanel, linePanelsSpec, logFigure } from "./plots.ts";

const seriesRange = (from: number, length: number) => Array.from({ length }, (_, i) => from + i);

export async function logFigures(
  run: Run,
  config: Part2Config,
  test: SeriesData,
  r: Part2RunResult,
) {
  const { inputLen, horizon, features } = config;
  const sample = 0;
  for (
    const [name, mode, evaluation] of [
      ["attention_heatmap", "autoregressive", r.ar],
      ["attention_heatmap_tf", "teacher-forced", r.tf],
    ] as const
  ) {
    const values = evaluation.weights.slice(
      sample * horizon * inputLen,
      (sample + 1) * horizon * inputLen,
    );
    const min = Math.min(...values), max = Math.max(...values);
    await logFigure(
      run,
      name,
      heatmapSpec("Attention Weights Heatmap", [{
        title: `test sample ${sample}, ${mode} (${config.score}); α ∈ [${fmt(min)}, ${
          fmt(max)
        }], uniform ${fmt(1 / inputLen)}`,
        values,
        rows: horizon,
        cols: inputLen,
        xTitle: "Encoder Steps",
        yTitle: "Decoder Steps",
        colorTitle: "α",
      }]),
      {
        sample,
        mode,
        score: config.score,
        rows: horizon,
        cols: inputLen,
        min,
        max,
        weights: Array.from(
          { length: horizon },
          (_, k) => Array.from(values.subarray(k * inputLen, (k + 1) * inputLen)),
        ),
      },
    );
  }

  const samples = [0, 1, 2, 3];
  const channel = (arr: Float32Array, i: number, len: number) =>
    Array.from({ length: len }, (_, t) => arr[(i * len + t) * features]);
  const panels: LinePanel[] = samples.map((i) => ({
    title: `test sample ${i}`,
    xTitle: "time step",
    yTitle: "x(t)",
    lines: [
      { name: "input", x: seriesRange(0, inputLen), y: channel(test.x, i, inputLen) },
      { name: "true future", x: seriesRange(inputLen, horizon), y: channel(test.y, i, horizon) },
      {
        name: "autoregressive",
        x: seriesRange(inputLen, horizon),
        y: channel(r.ar.prediction, i, horizon),
      },
      {
        name: "teacher-forced",
        x: seriesRange(inputLen, horizon),
        y: channel(r.tf.prediction, i, horizon),
        dashed: true,
      },
    ],
    width: 320,
    height: 180,
  }));
  await logFigure(
    run,
    "p2_prediction",
    linePanelsSpec(`Seq2Seq forecasts (${config.score}), test samples`, panels),
    {
      samples: samples.map((i) => ({
        sample: i,
        input: channel(test.x, i, inputLen),
        true: channel(test.y, i, horizon),
        autoregressive: channel(r.ar.prediction, i, horizon),
        teacher_forced: channel(r.tf.prediction, i, horizon),
      })),
    },
  );

  const h = r.history.history;
  const epochs = r.history.epoch;
  await logFigure(
    run,
    "p2_training_curves",
    linePanelsSpec(`Seq2Seq training (${config.score}, teacher forcing)`, [
      {
        title: "MSE loss",
        xTitle: "epoch",
        yTitle: "MSE",
        lines: [
          { name: "train_loss", x: epochs, y: h.loss },
          { name: "val_loss", x: epochs, y: h.val_loss },
        ],
      },
      {
        title: "MAE",
        xTitle: "epoch",
        yTitle: "MAE",
        lines: [
          { name: "train_mae", x: epochs, y: h.mae },
          { name: "val_mae", x: epochs, y: h.val_mae },
        ],
      },
    ]),
    {
      epoch: epochs,
      train_loss: h.loss,
      val_loss: h.val_loss,
      train_mae: h.mae,
      val_mae: h.val_mae,
    },
  );

  const steps = seriesRange(1, horizon);
  await logFigure(
    run,
    "p2_horizon_error",
    linePanelsSpec(`Test MSE per horizon step (${config.score})`, [{
      title: "autoregressive vs teacher-forced; dashed rule: predicting 0",
      xTitle: "horizon step",
      yTitle: "MSE",
      lines: [
        { name: "autoregressive", x: steps, y: r.ar.mseByStep },
        { name: "teacher-forced", x: steps, y: r.tf.mseByStep, dashed: true },
      ],
      rule: { y: r.zeroMse, label: "predict 0" },
      width: 480,
    }], 1),
    {
      step: steps,
      autoregressive: r.ar.mseByStep,
      teacher_forced: r.tf.mseByStep,
      predict_zero: r.zeroMse,
    },
  );
}

/** Trains one configuration and logs it as one run of `TP5_Part2_Seq2Seq`. */
