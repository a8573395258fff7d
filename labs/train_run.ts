// The one way a lab trains a model and logs it to a tracking run: the model summary (printed and
// logged), Keras fit with a progress display, every epoch's metrics through logEpochMetrics,
// atomic per-epoch training checkpoints and an exact --resume, an optional test evaluation,
// figures of the history, history.json and timings. Labs with a training loop of their own log
// their epochs through logEpochMetrics too.
import {
  loadTrainingCheckpoint,
  saveModel,
  saveTrainingCheckpoint,
} from "../engine/io/checkpoint.ts";
import { modelConfig } from "../engine/io/config.ts";
import { decodeSafetensors } from "../engine/io/safetensors.ts";
import type { AnyModule, Module } from "../engine/nn/module.ts";
import { summary } from "../engine/nn/summary.ts";
import type { Optimizer } from "../engine/optim/optimizers.ts";
import { Rng } from "../engine/random.ts";
import type { Tensor } from "../engine/tensor.ts";
import type { Callback, Logs } from "../engine/train/callbacks.ts";
import {
  type Data,
  evaluate,
  fit,
  type FitData,
  type History,
  type LossFn,
} from "../engine/train/fit.ts";
import type { MetricSpec } from "../engine/train/metrics.ts";
import { ProgressBar, type ProgressWriter } from "../engine/train/progress.ts";
import { writeFileAtomic } from "../tracking/files.ts";
import { markResumed, type Run } from "../tracking/run.ts";
import { renderPng, type VegaLiteSpec } from "./figures.ts";
import { type LabArgs, UsageError } from "./registry.ts";

/**
 * Logs one epoch's metrics at step = epoch index. With `names` (history key → metric name) only
 * the named keys are logged, renamed; undefined values (metrics an epoch did not compute) are
 * skipped.
 */
export function logEpochMetrics(
  run: Run,
  epoch: number,
  logs: Readonly<Record<string, number | undefined>>,
  names?: Readonly<Record<string, string>>,
): Promise<void> {
  const metrics: Logs = {};
  for (const [key, value] of Object.entries(logs)) {
    const name = names ? names[key] : key;
    if (name !== undefined && value !== undefined) metrics[name] = value;
  }
  return run.logMetrics(metrics, epoch);
}

/** A lab's last training checkpoint, read back for --resume. */
export interface ResumePoint {
  bytes: Uint8Array;
  /** Epochs completed. */
  epoch: number;
  /** Every epoch trained so far. */
  history: History;
  /** The tracking run that wrote the checkpoint. */
  runId: string;
  /** What the lab saved with it (`checkpoint.settings`) to train on the same way. */
  settings: Record<string, unknown>;
}

/**
 * The settings a --resume continues with: the checkpoint's. A setting the command line gives
 * (`flags` names each one's flag) with another value is refused with a UsageError naming both;
 * one it leaves out is kept from the checkpoint, and `out` says so when this command would have
 * used another value.
 */
export function resumedSettings<T extends Record<string, number>>(
  args: Pick<LabArgs, "given" | "out">,
  file: string,
  saved: T,
  asked: T,
  flags: { readonly [K in keyof T]: string },
): T {
  const kept: string[] = [];
  for (const key of Object.keys(asked) as (keyof T & string)[]) {
    if (saved[key] === asked[key]) continue;
    const flag = flags[key];
    if (args.given?.has(flag)) {
      throw new UsageError(
        `--resume: ${file} was trained with --${flag} ${saved[key]}, this command asks for ` +
          `--${flag} ${asked[key]}: resume with --${flag} ${saved[key]} (or without --${flag}), ` +
          "or train from scratch without --resume",
      );
    }
    kept.push(`--${flag} ${saved[key]}`);
  }
  if (kept.length > 0) {
    args.out.write(`--resume: continuing with the checkpoint's ${kept.join(" ")}\n`);
  }
  return saved;
}

/** The checkpoint at `file`, or null when there is none. */
export async function readResumePoint(file: string): Promise<ResumePoint | null> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const { metadata } = decodeSafetensors(bytes);
  const extra = JSON.parse(metadata.extra ?? "null");
  if (!extra?.history || !extra.runId) {
    throw new Error(`--resume: ${file} is not a training checkpoint of this lab`);
  }
  const { history, runId, ...settings } = extra;
  return { bytes, epoch: Number(metadata.epoch), history, runId, settings };
}

/**
 * Tags `run` as continuing the checkpoint that run `fromRunId` wrote after `epoch` epochs, and
 * marks that run resumed (KILLED if its killed process left it RUNNING).
 */
export async function tagResumedRun(
  run: Run,
  fromRunId: string,
  epoch: number,
  out: ProgressWriter,
): Promise<void> {
  await run.setTag("denograd.resumed_from_run", fromRunId);
  await run.setTag("denograd.resumed_from_epoch", String(epoch));
  // The run that wrote the checkpoint is over: a killed one would stay RUNNING forever.
  const known = await run.store.getRun(fromRunId).then(() => true, () => false);
  if (known) await markResumed(run.store, fromRunId, run);
  else out.write(`--resume: run ${fromRunId}, which wrote the checkpoint, is not in this store\n`);
}

export interface TrainRunSpec {
  model: Module;
  optimizer: Optimizer;
  loss: LossFn;
  data: FitData;
  /** Keras validation_split (the last fraction of `data`), or validationData. */
  validationSplit?: number;
  validationData?: Data;
  metrics?: readonly MetricSpec[];
  /** Regularisation added to the training, validation and test losses (e.g. l2Penalty). */
  extraLoss?: () => Tensor;
  /** Train until this epoch (exclusive). */
  epochs: number;
  batchSize: number;
  /** Seeds the shuffling (and the checkpoint's generator). */
  seed: number;
  /** Progress, summary and test output. */
  out: ProgressWriter;
  /** A Keras progress bar on `out` (default true); false when a callback prints its own lines. */
  progress?: boolean;
  /** Metrics added to each epoch's logs before anything else sees them (history and tracking). */
  epochMetrics?: (epoch: number, logs: Logs) => Logs | Promise<Logs>;
  /** Run after epochMetrics and before the logging, so keys they add to `logs` are logged too. */
  callbacks?: readonly Callback[];
  /** History key → per-epoch metric name, only those logged (default: every key as it is). */
  metricNames?: Readonly<Record<string, string>>;
  /** The model summary, printed (under `== title ==`) and logged as `artifact`. */
  summary?: { inputShape: readonly number[]; name: string; artifact: string; title?: string };
  /** After training: evaluate() on `data`, result key → metric name, logged at `step` (default 0). */
  test?: { data: Data; names: Readonly<Record<string, string>>; step?: number };
  /** Figures of the final history, each logged as `<name>.vl.json` and `<name>.png`. */
  figures?: readonly { name: string; spec: (history: History) => VegaLiteSpec }[];
  /** Where the history is logged as JSON. */
  historyArtifact?: string;
  /**
   * Writes the training state to `file` atomically after every epoch, with `settings`; with
   * `resume` the model and optimizer continue from it and the run repeats its epochs' metrics.
   */
  checkpoint?: {
    file: string;
    /** JSON-serialisable. */
    settings: Readonly<Record<string, unknown>>;
    resume: ResumePoint | null;
  };
}

export interface Timing {
  /** Median wall time of an epoch after the first (which compiles the pipelines). */
  secondsPerEpoch: number;
  /** That epoch time over its training steps (the validation pass included). */
  msPerStep: number;
  /** Seconds of each epoch. */
  epochSeconds: number[];
}

export interface TrainRunResult {
  /** Every epoch, those of a resumed checkpoint included. */
  history: History;
  /** evaluate()'s result on the test data, when there is some. */
  test: Logs | null;
  timing: Timing;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Wall time of every epoch (its validation pass included) and the steps of one. */
function epochTimer(): Callback & { seconds: number[]; steps: number } {
  let start = 0;
  return {
    seconds: [],
    steps: 0,
    onTrainBegin(ctx) {
      this.steps = ctx.stepsPerEpoch;
    },
    onEpochBegin() {
      start = performance.now();
    },
    onEpochEnd() {
      this.seconds.push((performance.now() - start) / 1000);
    },
  };
}

function timingOf(clock: { seconds: number[]; steps: number }): Timing {
  const steady = clock.seconds.length > 1 ? clock.seconds.slice(1) : clock.seconds;
  const secondsPerEpoch = steady.length ? median(steady) : NaN;
  return {
    secondsPerEpoch,
    msPerStep: (secondsPerEpoch * 1000) / clock.steps,
    epochSeconds: clock.seconds,
  };
}

/** The logs of a history's `index`-th epoch. */
function logsAt(history: History, index: number): Logs {
  const logs: Logs = {};
  for (const [key, values] of Object.entries(history.history)) logs[key] = values[index];
  return logs;
}

/** Trains `spec.model` with fit() inside `run` and logs everything the spec names to it. */
export async function trainRun(run: Run, spec: TrainRunSpec): Promise<TrainRunResult> {
  const { model, optimizer, out, checkpoint } = spec;
  const resume = checkpoint?.resume ?? null;
  const history: History = { epoch: [], history: {} };
  let initialEpoch = 0;
  if (resume) {
    initialEpoch = loadTrainingCheckpoint(resume.bytes, { model, optimizer }).epoch;
    Object.assign(history, resume.history);
    await tagResumedRun(run, resume.runId, initialEpoch, out);
  }

  let summaryText = "";
  if (spec.summary) {
    summaryText = summary(model, [...spec.summary.inputShape], { name: spec.summary.name }).text;
    const heading = spec.summary.title ? `\n== ${spec.summary.title} ==\n` : "";
    out.write(`${heading}${summaryText}\n`);
  }

  // A resumed run repeats the earlier epochs' metrics so its curves are complete.
  for (const [i, epoch] of history.epoch.entries()) {
    await logEpochMetrics(run, epoch, logsAt(history, i), spec.metricNames);
  }
  const clock = epochTimer();
  const extend: Callback = {
    async onEpochEnd(epoch, logs) {
      if (spec.epochMetrics) Object.assign(logs, await spec.epochMetrics(epoch, logs));
    },
  };
  const record: Callback = {
    async onEpochEnd(epoch, logs) {
      history.epoch.push(epoch);
      for (const [k, v] of Object.entries(logs)) (history.history[k] ??= []).push(v);
      await logEpochMetrics(run, epoch, logs, spec.metricNames);
      if (!checkpoint) return;
      const extra = { ...checkpoint.settings, history, runId: run.id };
      const bytes = await saveTrainingCheckpoint({
        model,
        optimizer,
        epoch: epoch + 1,
        step: optimizer.iterations,
        rng: new Rng(spec.seed),
        extra: JSON.parse(JSON.stringify(extra)),
      });
      await writeFileAtomic(checkpoint.file, bytes);
    },
  };
  if (initialEpoch >= spec.epochs) {
    out.write(`checkpoint is at epoch ${initialEpoch}: nothing left to train\n`);
  }
  await fit(model, optimizer, spec.data, {
    loss: spec.loss,
    epochs: spec.epochs,
    initialEpoch,
    batchSize: spec.batchSize,
    validationSplit: spec.validationSplit,
    validationData: spec.validationData,
    seed: spec.seed,
    metrics: spec.metrics,
    extraLoss: spec.extraLoss,
    callbacks: [
      clock,
      extend,
      ...spec.callbacks ?? [],
      record,
      ...((spec.progress ?? true) ? [new ProgressBar({ writer: out })] : []),
    ],
  });

  let test: Logs | null = null;
  if (spec.test) {
    const { data, names, step = 0 } = spec.test;
    test = await evaluate(model, data.x, data.y, {
      loss: spec.loss,
      metrics: spec.metrics,
      extraLoss: spec.extraLoss,
    });
    // Test metrics are named and skipped the way epoch metrics are.
    await logEpochMetrics(run, step, test, names);
    out.write(
      `test: ${Object.entries(test).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(" - ")}\n`,
    );
  }

  const timing = timingOf(clock);
  await run.setTag("denograd.seconds_per_epoch", timing.secondsPerEpoch.toFixed(3));
  await run.setTag("denograd.ms_per_step", timing.msPerStep.toFixed(2));
  for (const figure of spec.figures ?? []) {
    const vegaLite = figure.spec(history);
    await run.logDict(`${figure.name}.vl.json`, vegaLite);
    await run.logArtifact(`${figure.name}.png`, await renderPng(vegaLite));
  }
  if (spec.summary) await run.logText(spec.summary.artifact, `${summaryText}\n`);
  if (spec.historyArtifact) await run.logDict(spec.historyArtifact, history);
  return { history, test, timing };
}

/** The model as safetensors (weights, config and `metadata`) plus its config, under `dir/`. */
export async function logModel(
  run: Run,
  dir: string,
  model: AnyModule,
  metadata: Record<string, string> = {},
): Promise<Uint8Array> {
  const bytes = await saveModel(model, metadata);
  await run.logArtifact(`${dir}/model.safetensors`, bytes);
  await run.logDict(`${dir}/config.json`, modelConfig(model));
  return bytes;
}
