// TP4 Exercise 2's question (spec labs/TP1-TP4.md §5.3): how Dice and IoU react to the same
// small error on small and large masks, measured with the engine's metric functions rather than
// argued. A disc of radius r in a 128² image against a prediction dilated, eroded or shifted by
// one or two pixels, or empty; Dice and IoU over the flattened mask, the handout's per-pixel IoU,
// and the gap between a Keras-style mean of per-batch Dice and the dataset-level Dice. One run in
// `TP4_Segmentation_Metrics` with the table as JSON and text; metrics at step = radius.
import { Tensor, tidy } from "../../engine/tensor.ts";
import { diceCoefficient, jaccardIndex } from "../../engine/ops/loss.ts";
import { diceFromCounts, overlapCounts, pixelwiseIou } from "../../engine/train/metrics.ts";
import { withRun } from "../../tracking/run.ts";
import { openStore } from "../../tracking/store.ts";
import { type Check, columns, f4 } from "../checks.ts";
import { logUnitResult, unitTags } from "../unit_runs.ts";
import type { Tp4Options } from "./common.ts";

export const METRICS_EXPERIMENT = "TP4_Segmentation_Metrics";
export const METRICS_RUN = "dice_vs_iou_sensitivity";
export const RADII = [4, 8, 16, 32];
const SIZE = 128;
/** Near-exact ratios (BJ's smoothing); the handout's 1.0 is used for its per-pixel IoU. */
const SMOOTH = 1e-6;

export const PERTURBATIONS = ["dilate_1px", "erode_1px", "shift_2px", "empty"] as const;
type Perturbation = (typeof PERTURBATIONS)[number];

/** A disc mask (strict <, as BJ's generator) of radius r centred at (cx, cy). */
export function discMask(r: number, cx = SIZE / 2, cy = SIZE / 2, size = SIZE): Float32Array {
  const mask = new Float32Array(size * size);
  if (r <= 0) return mask;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if ((y - cy) ** 2 + (x - cx) ** 2 < r * r) mask[y * size + x] = 1;
    }
  }
  return mask;
}

function perturbed(r: number, how: Perturbation): Float32Array {
  switch (how) {
    case "dilate_1px":
      return discMask(r + 1);
    case "erode_1px":
      return discMask(r - 1);
    case "shift_2px":
      return discMask(r, SIZE / 2 + 2);
    case "empty":
      return discMask(0);
  }
}

export interface SensitivityRow {
  radius: number;
  perturbation: Perturbation;
  dice: number;
  iou: number;
  /** The handout's per-pixel IoU (smooth 1.0). */
  pixelwiseIou: number;
}

/** Every (radius, perturbation) pair through the engine's metric functions. */
export async function sensitivityRows(): Promise<SensitivityRow[]> {
  const rows: SensitivityRow[] = [];
  for (const radius of RADII) {
    const truth = discMask(radius);
    for (const perturbation of PERTURBATIONS) {
      const pred = perturbed(radius, perturbation);
      const values = tidy(() => {
        const p = Tensor.from(pred, [1, SIZE, SIZE, 1]);
        const t = Tensor.from(truth, [1, SIZE, SIZE, 1]);
        return [
          diceCoefficient(p, t, { smooth: SMOOTH }),
          jaccardIndex(p, t, { smooth: SMOOTH }),
          pixelwiseIou(p, t, 1),
        ].map((v) => v.keep());
      });
      const [dice, iou, pixelwise] = await Promise.all(
        values.map(async (v) => {
          const x = (await v.data())[0];
          v.dispose();
          return x;
        }),
      );
      rows.push({ radius, perturbation, dice, iou, pixelwiseIou: pixelwise });
    }
  }
  return rows;
}

/**
 * A set of two images scored image by image (Keras with batch size 1): a small disc predicted
 * empty and a large one predicted exactly. Keras' mean of the two Dice is 0.5; the Dice of the
 * set, from summed counts, barely moves.
 */
export function kerasVersusDataset(): { keras: number; dataset: number } {
  const small = discMask(4);
  const large = discMask(32);
  const empty = discMask(0);
  const perImage = [overlapCounts(empty, small), overlapCounts(large, large)];
  const dice = perImage.map((c) => diceFromCounts(c));
  const total = {
    intersection: perImage[0].intersection + perImage[1].intersection,
    predicted: perImage[0].predicted + perImage[1].predicted,
    actual: perImage[0].actual + perImage[1].actual,
  };
  return { keras: (dice[0] + dice[1]) / 2, dataset: diceFromCounts(total) };
}

function tableText(rows: readonly SensitivityRow[]): string {
  return columns([
    ["radius", "prediction", "Dice", "IoU", "Dice/(2−Dice)", "handout per-pixel IoU"],
    ...rows.map((r) => [
      String(r.radius),
      r.perturbation,
      f4(r.dice),
      f4(r.iou),
      f4(r.dice / (2 - r.dice)),
      f4(r.pixelwiseIou),
    ]),
  ]);
}

/** Exercise 2 (its one unit): the table, the conclusion and the checks, in their own run. */
export async function trainMetricsUnit(options: Tp4Options): Promise<void> {
  options.out.write("\n== TP4 Exercise 2 — Dice vs IoU on small and large masks ==\n");
  const rows = await sensitivityRows();
  const gap = kerasVersusDataset();
  const text = tableText(rows);
  const at = (radius: number, how: Perturbation) =>
    rows.find((r) => r.radius === radius && r.perturbation === how)!;
  const small = at(RADII[0], "dilate_1px");
  const large = at(RADII.at(-1)!, "dilate_1px");
  const conclusion = `IoU ≤ Dice everywhere (IoU = Dice/(2 − Dice)): IoU is the stricter score. ` +
    `The same one-pixel dilation costs ${f4(1 - small.dice)} Dice / ${f4(1 - small.iou)} IoU ` +
    `on a radius-${small.radius} disc but ${f4(1 - large.dice)} / ${f4(1 - large.iou)} at ` +
    `radius ${large.radius}: small masks are where the two differ most. The handout's per-pixel ` +
    `IoU scores an empty prediction of a radius-8 disc ${f4(at(8, "empty").pixelwiseIou)} ` +
    `(every background pixel counts 1). Averaging per-batch Dice (Keras, batch 1) over a ` +
    `radius-4 disc missed and a radius-32 disc hit gives ${f4(gap.keras)}; the set's Dice from ` +
    `summed counts is ${f4(gap.dataset)}.`;
  options.out.write(`${text}\n\n${conclusion}\n`);

  const worstIdentity = Math.max(...rows.map((r) => Math.abs(r.iou - r.dice / (2 - r.dice))));
  const checks: Check[] = [
    {
      name: "IoU ≤ Dice in every case",
      value: rows.every((r) => r.iou <= r.dice + 1e-7) ? "yes" : "no",
      students: "—",
      target: "yes",
      pass: rows.every((r) => r.iou <= r.dice + 1e-7),
    },
    {
      name: "|IoU − Dice/(2 − Dice)|, worst",
      value: worstIdentity.toExponential(1),
      students: "—",
      target: "≤ 1e-5",
      pass: worstIdentity <= 1e-5,
    },
    {
      name: `1-px dilation: Dice lost at r ${small.radius} vs ${large.radius}`,
      value: `${f4(1 - small.dice)} vs ${f4(1 - large.dice)}`,
      students: "—",
      target: "small > large",
      pass: 1 - small.dice > 1 - large.dice,
    },
    {
      name: "handout per-pixel IoU, empty prediction (r 8)",
      value: f4(at(8, "empty").pixelwiseIou),
      students: "CT kept this form",
      target: "misleading (≈ 1)",
      pass: true,
      informational: true,
    },
    {
      name: "Keras mean vs dataset Dice (2 images)",
      value: `${f4(gap.keras)} vs ${f4(gap.dataset)}`,
      students: "—",
      target: "they differ",
      pass: true,
      informational: true,
    },
  ];
  await withRun(openStore(), METRICS_EXPERIMENT, {
    runName: METRICS_RUN,
    tags: {
      "denograd.lab": "tp4",
      "denograd.exercise": "2",
      ...unitTags(options.plan, METRICS_RUN),
    },
  }, async (run) => {
    await run.logParams({
      image_size: SIZE,
      radii: RADII.join(","),
      perturbations: PERTURBATIONS.join(","),
      smooth: SMOOTH,
      pixelwise_iou_smooth: 1,
    });
    for (const radius of RADII) {
      const metrics: Record<string, number> = {};
      for (const r of rows.filter((row) => row.radius === radius)) {
        metrics[`dice_${r.perturbation}`] = r.dice;
        metrics[`iou_${r.perturbation}`] = r.iou;
        metrics[`pixelwise_iou_${r.perturbation}`] = r.pixelwiseIou;
      }
      await run.logMetrics(metrics, radius);
    }
    await run.logMetrics({ keras_mean_dice: gap.keras, dataset_dice: gap.dataset });
    await run.logDict("metrics_sensitivity.json", { rows, kerasVersusDataset: gap });
    await run.logText("metrics_sensitivity.txt", `${text}\n\n${conclusion}\n`);
    await run.setTag("conclusion", conclusion);
    await logUnitResult(run, { title: "Dice vs IoU (no training)", checks });
  });
}
