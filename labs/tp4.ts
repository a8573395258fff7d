// The `tp4` lab (spec labs/TP1-TP4.md §5), "Advanced Vision, Segmentation, and 3D Data":
//   1  the handout U-Net on BJ's noisy discs with the students' Dice/IoU metrics, trained with
//      --loss dice (default) | bce | bce_dice, or all three with --compare-losses; MLflow
//      experiment TP4_Segmentation_Unet, runs unet_<loss>_adam_img<H>_f<base>
//   2  Dice vs IoU on small and large masks, the handout's per-pixel IoU, Keras vs dataset-level
//      averaging (no training; experiment TP4_Segmentation_Metrics)
//   3  the handout's Conv3D block trained on ball vs cylinder volumes; experiment
//      3D_Volumetric_Analysis, run Conv3D_Baseline, artifacts/model_architecture.json
// `--exercise N` runs one. Each U-Net, the metrics table and the Conv3D are units (`--plan`,
// `--unit`); the closing table, built from their runs in the store (after the whole lab, or alone
// with `--summarize`), puts each result beside the students' and the target; the exit status is
// 1 when an enforced target is missed.
import { openStore, type TrackingStore } from "../tracking/store.ts";
import { type ExerciseResult, exercisesSummary, exitStatus } from "./checks.ts";
import { type LabArgs, type LabUnit, registerLab, type SummaryOutcome } from "./registry.ts";
import type { Tp4Options } from "./tp4/common.ts";
import { METRICS_EXPERIMENT, METRICS_RUN, trainMetricsUnit } from "./tp4/metrics_table.ts";
import {
  isLossName,
  LOSS_NAMES,
  selectedLosses,
  trainUnetUnit,
  UNET_EXPERIMENT,
  unetConfig,
  unetExerciseResult,
  type UnetSelection,
  unetUnit,
} from "./tp4/unet.ts";
import { trainVolumeUnit, VOLUME_EXPERIMENT, VOLUME_RUN, volumeConfig } from "./tp4/volumetric.ts";
import { findUnitRuns, planKey, unitSeconds } from "./unit_runs.ts";

/** The U-Nets exercise 1 trains, with the flags checked. */
function selectionOf(args: LabArgs): UnetSelection {
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
  return { loss, compare: args.compareLosses, baseFilters: args.baseFilters };
}

function optionsOf(args: LabArgs): Tp4Options {
  return {
    seed: args.seed,
    epochs: args.epochs,
    batchSize: args.batchSize,
    quick: args.quick,
    resume: args.resume,
    unit: args.unit !== undefined,
    // Everything that changes what the units train; --exercise and --loss only pick among them.
    plan: planKey("tp4", {
      quick: args.quick,
      seed: args.seed,
      epochs: args.epochs ?? "default",
      batch_size: args.batchSize ?? "default",
      base_filters: args.baseFilters ?? "default",
    }),
    checkpointDir: args.checkpointDir,
    out: args.out,
  };
}

interface Tp4Unit extends LabUnit {
  exercise: 1 | 2 | 3;
  train(): Promise<void>;
}

/** Exercise 1's U-Net(s), exercise 2's table, exercise 3's Conv3D — those --exercise selects. */
function tp4Units(args: LabArgs): Tp4Unit[] {
  const selection = selectionOf(args);
  const options = optionsOf(args);
  // The base filters (and so the U-Net's cost) depend on the adapter: estimated at 8 here.
  const unet = unetConfig(options, selection.loss, selection.baseFilters ?? 8);
  const volume = volumeConfig(options);
  const units: Tp4Unit[] = [
    ...selectedLosses(selection).map((loss): Tp4Unit => ({
      exercise: 1,
      name: unetUnit(loss),
      trains: `U-Net, ${loss} loss, ${unet.trainImages} images of ${unet.imageSize}², ` +
        `${unet.epochs} epochs`,
      seconds: options.quick ? 10 : 20 + unet.epochs * (unet.trainImages / unet.batchSize) * 2.2,
      train: () => trainUnetUnit(options, loss, selection.baseFilters),
    })),
    {
      exercise: 2,
      name: METRICS_RUN,
      trains: "Dice vs IoU on discs of radius 4–32 (no training)",
      seconds: 5,
      train: () => trainMetricsUnit(options),
    },
    {
      exercise: 3,
      name: VOLUME_RUN,
      trains: `Conv3D block on ${volume.trainVolumes} ball/cylinder volumes, ` +
        `${volume.epochs} epochs`,
      seconds: options.quick ? 10 : 20 + volume.epochs * 55,
      train: () => trainVolumeUnit(options),
    },
  ];
  return units.filter((u) => args.exercise === undefined || u.exercise === args.exercise);
}

const EXPERIMENTS = { 1: UNET_EXPERIMENT, 2: METRICS_EXPERIMENT, 3: VOLUME_EXPERIMENT };

/**
 * Each selected exercise's result from its units' runs in the store, printed as the closing
 * table; an exercise with a unit missing is left out and the unit named. `seconds`: the whole
 * lab's wall time when it just trained (else the units' run times added up).
 */
async function summarizeExercises(
  store: TrackingStore,
  args: LabArgs,
  seconds?: number,
): Promise<SummaryOutcome> {
  const selection = selectionOf(args);
  const options = optionsOf(args);
  const units = tp4Units(args);
  const results: ExerciseResult[] = [];
  const missing: string[] = [];
  for (const exercise of [1, 2, 3] as const) {
    const names = units.filter((u) => u.exercise === exercise).map((u) => u.name);
    if (names.length === 0) continue;
    const runs = await findUnitRuns(store, EXPERIMENTS[exercise], options.plan, names);
    if (runs.missing.length > 0) {
      missing.push(...runs.missing);
      args.out.write(
        `\nExercise ${exercise}: not summarised, no finished run of ` +
          `${runs.missing.join(", ")}\n`,
      );
      continue;
    }
    if (exercise === 1) {
      results.push(await unetExerciseResult(store, options, selection, runs.found));
      continue;
    }
    const { run, result } = runs.found.get(names[0])!;
    results.push({
      exercise,
      ...(result as Pick<ExerciseResult, "title" | "checks">),
      runs: [`${run.info.runName} (${run.info.runId})`],
      seconds: unitSeconds(runs.found),
    });
  }
  const total = seconds ?? results.reduce((t, r) => t + r.seconds, 0);
  args.out.write(exercisesSummary("TP4", results, total));
  return { status: exitStatus(results), missing };
}

async function run(args: LabArgs): Promise<number> {
  const started = performance.now();
  for (const unit of tp4Units(args)) {
    if (args.unit === undefined || unit.name === args.unit) await unit.train();
  }
  if (args.unit !== undefined) return 0;
  const { status } = await summarizeExercises(
    openStore(),
    args,
    (performance.now() - started) / 1000,
  );
  return status;
}

registerLab({
  name: "tp4",
  description: "TP4: U-Net segmentation with Dice/IoU (losses compared), Dice vs IoU, Conv3D",
  flags: ["batch-size", "exercise", "resume", "loss", "compare-losses", "base-filters"],
  run,
  units: tp4Units,
  summarize: (args) => summarizeExercises(openStore(), args),
});
