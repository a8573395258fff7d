// Progress display for fit(): a live per-epoch bar on a terminal, one plain line per epoch
// elsewhere (CI logs, pipes). Output goes through a writer so the engine stays free of Deno.*;
// labs/ decide whether stdout is a TTY.
import type { BatchLogs, Callback, Logs, TrainContext } from "./callbacks.ts";

export interface ProgressWriter {
  write(text: string): void;
  /** Live bar (carriage returns) when true; one line per epoch when false. */
  readonly isTTY: boolean;
}

export interface ProgressBarOptions {
  writer: ProgressWriter;
  /** Milliseconds between bar redraws on a TTY (default 100). */
  refreshMs?: number;
  /** Clock in milliseconds (tests inject one). */
  now?: () => number;
  barWidth?: number;
}

/** Keras' number format: 4 decimals, scientific below 1e-3. */
export function formatValue(value: number): string {
  if (value !== 0 && Math.abs(value) < 1e-3) return value.toExponential(4);
  return value.toFixed(4);
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const pad = (v: number) => String(v).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}:${pad(s % 60)}`;
  return `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
}

function formatLogs(logs: Logs): string {
  return Object.entries(logs).map(([k, v]) => ` - ${k}: ${formatValue(v)}`).join("");
}

function rate(samples: number, ms: number): string {
  const perSecond = ms > 0 ? Math.round(samples / (ms / 1000)) : 0;
  return `${perSecond.toLocaleString("en-US")} samples/s`;
}

export class ProgressBar implements Callback {
  private readonly writer: ProgressWriter;
  private readonly refreshMs: number;
  private readonly now: () => number;
  private readonly barWidth: number;
  private epochStart = 0;
  private lastDraw = -Infinity;
  private seen = 0;

  constructor(options: ProgressBarOptions) {
    this.writer = options.writer;
    this.refreshMs = options.refreshMs ?? 100;
    this.now = options.now ?? (() => performance.now());
    this.barWidth = options.barWidth ?? 20;
  }

  onEpochBegin(epoch: number, ctx: TrainContext): void {
    this.epochStart = this.now();
    this.lastDraw = -Infinity;
    this.seen = 0;
    if (this.writer.isTTY) this.writer.write(`Epoch ${epoch + 1}/${ctx.epochs}\n`);
  }

  onBatchEnd(step: number, logs: BatchLogs): void {
    this.seen = logs.seen;
    if (!this.writer.isTTY) return;
    const t = this.now();
    if (t - this.lastDraw < this.refreshMs && step + 1 < logs.steps) return;
    this.lastDraw = t;
    const elapsed = t - this.epochStart;
    const eta = (elapsed / (step + 1)) * (logs.steps - step - 1) / 1000;
    const running = logs.running ? formatLogs(logs.running) : "";
    this.writer.write(
      `\r${this.bar(step + 1, logs.steps)} - ETA ${formatDuration(eta)} - ` +
        `${rate(logs.seen, elapsed)}${running}\x1b[K`,
    );
  }

  onEpochEnd(epoch: number, logs: Logs, ctx: TrainContext): void {
    const elapsed = this.now() - this.epochStart;
    const summary = `${formatDuration(elapsed / 1000)} ${
      Math.round(elapsed / ctx.stepsPerEpoch)
    }ms/step - ${rate(this.seen, elapsed)}${formatLogs(logs)}`;
    if (this.writer.isTTY) {
      this.writer.write(
        `\r${this.bar(ctx.stepsPerEpoch, ctx.stepsPerEpoch)} - ${summary}\x1b[K\n`,
      );
    } else {
      this.writer.write(
        `Epoch ${epoch + 1}/${ctx.epochs} - ${ctx.stepsPerEpoch} steps - ${summary}\n`,
      );
    }
  }

  private bar(done: number, total: number): string {
    const width = String(total).length;
    const filled = Math.floor((done / total) * this.barWidth);
    const arrow = filled < this.barWidth ? ">" : "";
    const body = "=".repeat(filled) + arrow + ".".repeat(this.barWidth - filled - arrow.length);
    return `${String(done).padStart(width)}/${total} [${body}]`;
  }
}
