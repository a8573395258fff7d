// TP5 Part 1's figures (spec labs/TP5.md §4 P1-a, P1-b): the trained model's attention over the
// time steps of a few validation samples, and the training curves.
import type { Part1Attention } from "../../models/attention_gru.ts";
import type { Run } from "../../tracking/run.ts";
import { P1_CAPTION, type TaskData, type TaskName } from "./part1.ts";
import { type Band, type Line, type LinePanel, linePanelsSpec, logFigure } from "./plots.ts";

/** The validation samples to plot: the first three, or for the burst task one per class. */
function plottedSamples(data: TaskData, start: number): number[] {
  if (!data.burst) return [start, start + 1, start + 2].filter((i) => i < data.samples);
  const picks: number[] = [];
  for (const label of [0, 1, 2]) {
    const i = data.burst.labels.findIndex((l, n) => n >= start && l === label);
    if (i >= 0) picks.push(i);
  }
  return picks;
}

export async function logAttentionFigure(
  run: Run,
  data: TaskData,
  variant: Part1Attention,
  weights: Float32Array,
  valStart: number,
  steps: number,
): Promise<void> {
  const picks = plottedSamples(data, valStart);
  const xs = Array.from({ length: steps }, (_, t) => t);
  const row = (
    i: number,
  ) => [...weights.subarray((i - valStart) * steps, (i - valStart + 1) * steps)];
  const rule = { y: 1 / steps, label: "uniform 1/T" };
  const panels: LinePanel[] = [];
  const samples = picks.map((i) => ({
    sample: i,
    label: data.burst ? data.burst.labels[i] : null,
    segment: data.burst ? data.burst.segments[i] : null,
    alpha: row(i),
  }));
  if (data.burst) {
    for (const s of samples) {
      const bands: Band[] = [{
        from: s.segment!.start - 0.5,
        to: s.segment!.end - 0.5,
        color: "#f28e2b",
        label: "burst",
      }];
      panels.push({
        title: `burst task, class ${s.label} (sample ${s.sample})`,
        xTitle: "time step t",
        yTitle: "α_t",
        lines: [{ name: `α (${variant})`, x: xs, y: s.alpha }],
        bands,
        rule,
        width: 300,
        height: 200,
      });
    }
  } else {
    const lines: Line[] = samples.map((s) => ({ name: `sample ${s.sample}`, x: xs, y: s.alpha }));
    panels.push({
      title: "sum task (uniform is ideal)",
      xTitle: "time step t",
      yTitle: "α_t",
      lines,
      rule,
      width: 640,
      height: 220,
    });
  }
  const title = `P1-a ${data.name} task, ${variant} attention: α over ${steps} steps ` +
    "(not expected to focus, §1.5)";
  await logFigure(run, "p1_attention_weights", linePanelsSpec(title, panels, 3), {
    task: data.name,
    attention: variant,
    steps,
    uniform: 1 / steps,
    caption: P1_CAPTION,
    samples,
  });
}

export async function logCurvesFigure(
  run: Run,
  task: TaskName,
  variant: Part1Attention,
  history: Record<string, number[]>,
): Promise<void> {
  const epochs = history.loss.length;
  const xs = Array.from({ length: epochs }, (_, e) => e + 1);
  const panels: LinePanel[] = [{
    title: task === "sum" ? "loss (standardised MSE)" : "loss (cross-entropy)",
    xTitle: "epoch",
    yTitle: "loss",
    lines: [
      { name: "train", x: xs, y: history.loss },
      { name: "validation", x: xs, y: history.val_loss, dashed: true },
    ],
  }];
  if (task === "burst") {
    panels.push({
      title: "accuracy",
      xTitle: "epoch",
      yTitle: "accuracy",
      lines: [
        { name: "train", x: xs, y: history.accuracy },
        { name: "validation", x: xs, y: history.val_accuracy, dashed: true },
      ],
    });
  }
  await logFigure(
    run,
    "p1_training_curves",
    linePanelsSpec(`P1-b ${task} task, ${variant} attention: training curves`, panels),
    { task, attention: variant, epoch: xs, ...history },
  );
}
