// The `tp4` lab (spec labs/TP1-TP4.md §5), "Advanced Vision, Segmentation, and 3D Data":
//   1  the handout U-Net on BJ's noisy discs with the students' Dice/IoU metrics, trained with
//      --loss dice (default) | bce | bce_dice, or all three with --compare-losses; MLflow
//      experiment TP4_Segmentation_Unet, runs unet_<loss>_adam_img<H>_f<base>
//   2  Dice vs IoU on small and large masks, the handout's per-pixel IoU, Keras vs dataset-level
//      averaging (no training; experiment TP4_Segmentation_Metrics)
//   3  the handout's Conv3D block trained on ball vs cylinder volumes; experiment
//      3D_Volumetric_Analysis, run Conv3D_Baseline, artifacts/model_architecture.json
// `--exercise N` runs one. The closing table puts each result beside the students' and the
// target; the exit status is 1 when an enforced target is missed.
import { formatDuration } from "../engine/train/progress.ts";
import { type LabArgs, registerLab } from "./registry.ts";
import { checksTable, type ExerciseResult } from "./checks.ts";
import type { Tp4Options } from "./tp4/common.ts";
import { runMetricsExercise } from "./tp4/metrics_table.ts";
import { isLossName, LOSS_NAMES, runUnetExercise } from "./tp4/unet.ts";
import { runVolumeExercise } from "./tp4/volumetric.ts";

export function summaryText(results: readonly ExerciseResult[], seconds: number): string {
  const lines = [`\n== TP4 summary (${formatDuration(seconds)} in all) ==`];
  for (const r of results) {
    lines.push(
      `\nExercise ${r.exercise} — ${r.title} (${formatDuration(r.seconds)}; MLflow runs ` +
        `${r.runs.join(", ")})`,
      checksTable(r.checks),
    );
  }
  const failed = results.flatMap((r) => r.checks.filter((c) => !c.pass && !c.informational));
  const enforced = results.flatMap((r) => r.checks.filter((c) => !c.informational)).length;
  lines.push(
    failed.length
      ? `\n${failed.length} target(s) missed: ${failed.map((c) => c.name).join("; ")}`
      : `\nall ${enforced} enforced targets reached`,
  );
  return lines.join("\n") + "\n";
}

async function run(args: LabArgs): Promise<number> {
  if (args.exercise !== undefined && args.exercise > 3) {
    throw new Error(`--exercise ${args.exercise}: tp4 has exercises 1, 2 and 3`);
  }
  const loss = args.loss ?? "dice";
  if (!isLossName(loss)) {
    throw new Error(`--loss ${loss}: expected one of ${LOSS_NAMES.join(", ")}`);
  }
  if (args.exercise !== undefined && args.exercise !== 1) {
    for (
      const [flag, given] of [
        ["--loss", args.loss !== undefined],
        ["--compare-losses", args.compareLosses],
        ["--base-filters", args.baseFilters !== undefined],
      ] as const
    ) {
      if (given) throw new Error(`${flag} applies to exercise 1 (the U-Net) only`);
    }
  }
  const options: Tp4Options = {
    seed: args.seed,
    epochs: args.epochs,
    batchSize: args.batchSize,
    quick: args.quick,
    resume: args.resume,
    checkpointDir: args.checkpointDir,
    out: args.out,
  };
  const exercises = [
    () =>
      runUnetExercise(options, {
        loss,
        compare: args.compareLosses,
        baseFilters: args.baseFilters,
      }),
    () => runMetricsExercise(options),
    () => runVolumeExercise(options),
  ];
  const started = performance.now();
  const results: ExerciseResult[] = [];
  for (const [i, exercise] of exercises.entries()) {
    if (args.exercise === undefined || args.exercise === i + 1) results.push(await exercise());
  }
  args.out.write(summaryText(results, (performance.now() - started) / 1000));
  return results.some((r) => r.checks.some((c) => !c.pass && !c.informational)) ? 1 : 0;
}

registerLab({
  name: "tp4",
  description: "TP4: U-Net segmentation with Dice/IoU (losses compared), Dice vs IoU, Conv3D",
  flags: ["batch-size", "exercise", "resume", "loss", "compare-losses", "base-filters"],
  run,
});
