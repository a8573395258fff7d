// Keras-style callbacks for fit(): the hook interface, EarlyStopping (Keras 3 semantics),
// ModelCheckpoint, LearningRateScheduler, and GPU-side weight snapshots they use.
import type { Module } from "../nn/module.ts";
import type { Optimizer } from "../optim/optimizers.ts";
import { runtime } from "../runtime.ts";
import { Tensor } from "../tensor.ts";
import type { Metric } from "./metrics.ts";

export type Logs = Record<string, number>;
type Awaitable = void | Promise<void>;

/** What fit() shares with its callbacks; `stopTraining = true` ends fit after this epoch. */
export interface TrainContext {
  model: Module;
  optimizer: Optimizer;
  metrics: readonly Metric[];
  /** Last epoch (exclusive) and the first one of this call (Keras `initial_epoch`). */
  epochs: number;
  initialEpoch: number;
  stepsPerEpoch: number;
  batchSize: number;
  /** Training samples per epoch (after the validation split). */
  samples: number;
  stopTraining: boolean;
}

/**
 * Per-step information. Reading the running means would stall the GPU, so they come from the
 * latest asynchronous readback: `running` holds the epoch's means over its first `runningSeen`
 * samples (null until the first readback of the epoch has landed).
 */
export interface BatchLogs {
  step: number;
  steps: number;
  /** Samples of this epoch processed so far, this batch included. */
  seen: number;
  size: number;
  running: Logs | null;
  runningSeen: number;
}

/** Every hook is optional and may be async; epochs and steps count from 0. */
export interface Callback {
  onTrainBegin?(ctx: TrainContext): Awaitable;
  onTrainEnd?(logs: Logs, ctx: TrainContext): Awaitable;
  onEpochBegin?(epoch: number, ctx: TrainContext): Awaitable;
  /** `logs` may be extended (e.g. `learning_rate`); the history records it after all callbacks. */
  onEpochEnd?(epoch: number, logs: Logs, ctx: TrainContext): Awaitable;
  onBatchEnd?(step: number, logs: BatchLogs, ctx: TrainContext): Awaitable;
}

// ---- weight snapshots (GPU copies, no readback) ---------------------------------------------

/** Copies every parameter and buffer (Keras `get_weights()`: moving statistics included). */
export function snapshotWeights(model: Module): Tensor[] {
  const rt = runtime();
  return [...model.parameters(), ...model.buffers()].map((t) => {
    const copy = Tensor.empty(t.shape, t.dtype).keep();
    if (t.size > 0) rt.copy(t.storage, 0, copy.storage, 0, t.size * 4);
    return copy;
  });
}

/** Writes a snapshot back into the model's own tensors (same order as snapshotWeights). */
export function restoreWeights(model: Module, snapshot: readonly Tensor[]): void {
  const targets = [...model.parameters(), ...model.buffers()];
  if (targets.length !== snapshot.length) {
    throw new Error(
      `restoreWeights: snapshot has ${snapshot.length} tensors, the model ${targets.length}`,
    );
  }
  const rt = runtime();
  targets.forEach((t, i) => {
    if (t.size > 0) rt.copy(snapshot[i].storage, 0, t.storage, 0, t.size * 4);
  });
}

function disposeAll(tensors: readonly Tensor[] | null): void {
  for (const t of tensors ?? []) t.dispose();
}

// ---- monitored quantities ---------------------------------------------------------------------

export type Mode = "auto" | "min" | "max";

const UP_NAMES = /(^|_)(acc|accuracy|auc|dice|iou|precision|recall|f1)$/;

/** Keras "auto": loss → min; a metric by its direction (built-ins and user metrics know theirs). */
function resolveMode(owner: string, monitor: string, mode: Mode, ctx: TrainContext): "min" | "max" {
  if (mode === "min" || mode === "max") return mode;
  const name = monitor.replace(/^val_/, "");
  if (name === "loss") return "min";
  const metric = ctx.metrics.find((m) => m.name === name);
  if (metric) return metric.direction === "up" ? "max" : "min";
  if (UP_NAMES.test(name)) return "max";
  throw new Error(
    `${owner}: cannot tell whether '${monitor}' should go up or down; pass mode "min" or "max"`,
  );
}

function checkMode(owner: string, mode: string): Mode {
  if (mode !== "auto" && mode !== "min" && mode !== "max") {
    throw new Error(`${owner}: mode '${mode}', expected "auto", "min" or "max"`);
  }
  return mode;
}

// ---- EarlyStopping ------------------------------------------------------------------------------

export interface EarlyStoppingOptions {
  monitor?: string;
  /** Epochs without improvement before stopping. */
  patience?: number;
  /** An improvement must beat the best by more than this (absolute). */
  minDelta?: number;
  mode?: Mode;
  /** Training stops unless the monitored value improves on it. */
  baseline?: number;
  /** Keras 3: the best epoch's weights are restored at the end, stopped early or not. */
  restoreBestWeights?: boolean;
  /** Epochs to wait before monitoring (warm-up). */
  startFromEpoch?: number;
}

/** Keras 3 `EarlyStopping`, step for step (wait counter, `epoch > 0` guard, baseline). */
export class EarlyStopping implements Callback {
  readonly monitor: string;
  readonly patience: number;
  readonly minDelta: number;
  readonly mode: Mode;
  readonly baseline: number | undefined;
  readonly restoreBestWeights: boolean;
  readonly startFromEpoch: number;
  wait = 0;
  /** Epoch at which training was stopped (0 if it was not). */
  stoppedEpoch = 0;
  bestEpoch = 0;
  best = Infinity;
  private direction: "min" | "max" = "min";
  private bestWeights: Tensor[] | null = null;

  constructor(options: EarlyStoppingOptions = {}) {
    this.monitor = options.monitor ?? "val_loss";
    this.patience = options.patience ?? 0;
    this.minDelta = Math.abs(options.minDelta ?? 0);
    this.mode = checkMode("EarlyStopping", options.mode ?? "auto");
    this.baseline = options.baseline;
    this.restoreBestWeights = options.restoreBestWeights ?? false;
    this.startFromEpoch = options.startFromEpoch ?? 0;
  }

  onTrainBegin(ctx: TrainContext): void {
    this.wait = 0;
    this.stoppedEpoch = 0;
    this.bestEpoch = 0;
    disposeAll(this.bestWeights);
    this.bestWeights = null;
    this.direction = resolveMode("EarlyStopping", this.monitor, this.mode, ctx);
    this.best = this.direction === "min" ? Infinity : -Infinity;
  }

  private isImprovement(value: number, reference: number): boolean {
    return this.direction === "min"
      ? value + this.minDelta < reference
      : value - this.minDelta > reference;
  }

  onEpochEnd(epoch: number, logs: Logs, ctx: TrainContext): void {
    const current = logs[this.monitor];
    if (current === undefined || epoch < this.startFromEpoch) return;
    if (this.restoreBestWeights && this.bestWeights === null) {
      this.bestWeights = snapshotWeights(ctx.model);
      this.bestEpoch = epoch;
    }
    this.wait++;
    if (this.isImprovement(current, this.best)) {
      this.best = current;
      this.bestEpoch = epoch;
      if (this.restoreBestWeights) {
        disposeAll(this.bestWeights);
        this.bestWeights = snapshotWeights(ctx.model);
      }
      // The wait restarts only when the value beats the baseline as well.
      if (this.baseline === undefined || this.isImprovement(current, this.baseline)) this.wait = 0;
      return;
    }
    if (this.wait >= this.patience && epoch > 0) {
      this.stoppedEpoch = epoch;
      ctx.stopTraining = true;
    }
  }

  onTrainEnd(_logs: Logs, ctx: TrainContext): void {
    if (this.restoreBestWeights && this.bestWeights) {
      restoreWeights(ctx.model, this.bestWeights);
      disposeAll(this.bestWeights);
      this.bestWeights = null;
    }
  }
}

// ---- ModelCheckpoint ----------------------------------------------------------------------------

export interface ModelCheckpointOptions {
  /** `{epoch}` is replaced by the 1-based epoch number (as Keras' `{epoch:02d}` does). */
  path: string;
  monitor?: string;
  /** Save only when the monitored value improves (otherwise every epoch). */
  saveBestOnly?: boolean;
  mode?: Mode;
  /** The bytes to save (e.g. a safetensors file of the model). */
  serialize: (model: Module, epoch: number, logs: Logs) => Uint8Array | Promise<Uint8Array>;
  /** Must be atomic (temporary file + rename): under Deno, tracking/files.ts writeFileAtomic. */
  write: (path: string, data: Uint8Array) => Promise<void>;
}

export class ModelCheckpoint implements Callback {
  readonly monitor: string;
  readonly saveBestOnly: boolean;
  best = NaN;
  /** Paths written, in order. */
  readonly saved: string[] = [];
  private direction: "min" | "max" = "min";

  constructor(readonly options: ModelCheckpointOptions) {
    this.monitor = options.monitor ?? "val_loss";
    this.saveBestOnly = options.saveBestOnly ?? false;
    checkMode("ModelCheckpoint", options.mode ?? "auto");
  }

  onTrainBegin(ctx: TrainContext): void {
    this.direction = resolveMode("ModelCheckpoint", this.monitor, this.options.mode ?? "auto", ctx);
    this.best = this.direction === "min" ? Infinity : -Infinity;
  }

  async onEpochEnd(epoch: number, logs: Logs, ctx: TrainContext): Promise<void> {
    if (this.saveBestOnly) {
      const current = logs[this.monitor];
      if (current === undefined) return;
      const better = this.direction === "min" ? current < this.best : current > this.best;
      if (!better) return;
      this.best = current;
    }
    const path = this.options.path.replaceAll("{epoch}", String(epoch + 1).padStart(2, "0"));
    await this.options.write(path, await this.options.serialize(ctx.model, epoch, logs));
    this.saved.push(path);
  }
}

// ---- LearningRateScheduler ------------------------------------------------------------------------

/** Sets the learning rate at each epoch start from `schedule(epoch, lr)`; logs `learning_rate`. */
export class LearningRateScheduler implements Callback {
  constructor(readonly schedule: (epoch: number, lr: number) => number) {}

  onEpochBegin(epoch: number, ctx: TrainContext): void {
    const lr = this.schedule(epoch, ctx.optimizer.learningRate);
    if (typeof lr !== "number" || !Number.isFinite(lr)) {
      throw new Error(`LearningRateScheduler: schedule returned ${lr} for epoch ${epoch}`);
    }
    ctx.optimizer.learningRate = lr;
  }

  onEpochEnd(_epoch: number, logs: Logs, ctx: TrainContext): void {
    logs.learning_rate = ctx.optimizer.learningRate;
  }
}
