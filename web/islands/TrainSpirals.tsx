// The demo lab's MLP trains in the page: its architecture from the run's model/config.json, its
// settings from the run's params, the lab's own spirals, and the engine's `fit`. Pipelines are
// built asynchronously first; during training the page gets the thread back after every step
// (a step's encoding holds it a few ms), and each epoch redraws the loss curve and the decision
// boundary.
import { useSignal } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import type { LayerConfig } from "../../engine/io/config.ts";
import { type Engine, loadEngine, yieldToBrowser } from "./engine.ts";

export interface TrainSettings {
  epochs: number;
  batchSize: number;
  lr: number;
  validationSplit: number;
  seed: number;
}

export interface TrainSpiralsProps {
  runName: string;
  configUrl: string;
  dataUrl: string;
  settings: TrainSettings;
}

/** What the page measured, also left on `data-*` attributes for the browser test. */
export interface TrainReport {
  losses: number[];
  valLosses: number[];
  epochMs: number[];
  /** Gaps between turns of a 4 ms timer during training: how long the page froze at worst. */
  blockMs: { median: number; p99: number; max: number };
  prepareMs: number;
  pipelines: number;
}

/** The decision boundary is sampled on a GRID × GRID lattice over [-1.2, 1.2]². */
const GRID = 48;
const EXTENT = 1.2;
const PLOT = 288;
/** Watches the event loop with a 4 ms timer; `stop` gives the gaps between its turns. */
function watchEventLoop(): { stop(): TrainReport["blockMs"] } {
  let last = performance.now();
  const gaps: number[] = [];
  const timer = setInterval(() => {
    const now = performance.now();
    gaps.push(now - last);
    last = now;
  }, 4);
  return {
    stop() {
      clearInterval(timer);
      gaps.sort((a, b) => a - b);
      const at = (q: number) => gaps[Math.min(gaps.length - 1, Math.floor(q * gaps.length))] ?? 0;
      return { median: at(0.5), p99: at(0.99), max: gaps.at(-1) ?? 0 };
    },
  };
}

function gridPoints(): Float32Array {
  const points = new Float32Array(GRID * GRID * 2);
  for (let r = 0; r < GRID; r++) {
    for (let c = 0; c < GRID; c++) {
      points[2 * (r * GRID + c)] = -EXTENT + (2 * EXTENT * (c + 0.5)) / GRID;
      points[2 * (r * GRID + c) + 1] = EXTENT - (2 * EXTENT * (r + 0.5)) / GRID;
    }
  }
  return points;
}

function drawBoundary(
  canvas: HTMLCanvasElement,
  classOne: Float32Array,
  data: { x: number[]; y: number[] },
) {
  const ctx = canvas.getContext("2d")!;
  const cell = PLOT / GRID;
  for (let i = 0; i < GRID * GRID; i++) {
    const p = classOne[i];
    ctx.fillStyle = `rgb(${Math.round(255 - 120 * p)}, ${
      Math.round(200 - 40 * Math.abs(p - 0.5))
    }, ${Math.round(135 + 120 * p)})`;
    ctx.fillRect((i % GRID) * cell, Math.floor(i / GRID) * cell, cell + 0.5, cell + 0.5);
  }
  const toPixel = (v: number) => ((v + EXTENT) / (2 * EXTENT)) * PLOT;
  for (let k = 0; k < data.y.length; k++) {
    ctx.fillStyle = data.y[k] ? "#1d3f8f" : "#a3261b";
    ctx.fillRect(toPixel(data.x[2 * k]) - 1.5, PLOT - toPixel(data.x[2 * k + 1]) - 1.5, 3, 3);
  }
}

function LossCurve({ losses, valLosses, epochs }: {
  losses: number[];
  valLosses: number[];
  epochs: number;
}) {
  const width = 360, height = 200, pad = 30;
  const top = Math.max(0.8, ...losses, ...valLosses);
  const x = (i: number) => pad + ((width - 2 * pad) * (i + 1)) / Math.max(epochs, 1);
  const y = (v: number) => height - pad - ((height - 2 * pad) * v) / top;
  const line = (values: number[]) => values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
  return (
    <svg width={width} height={height} role="img" aria-label="loss per epoch">
      <line x1={pad} y1={height - pad} x2={width - pad} y2={height - pad} stroke="#999" />
      <line x1={pad} y1={pad} x2={pad} y2={height - pad} stroke="#999" />
      <text x={4} y={pad} font-size="11">{top.toFixed(2)}</text>
      <text x={width - pad} y={height - 8} font-size="11" text-anchor="end">epoch {epochs}</text>
      <polyline points={line(losses)} fill="none" stroke="#2f6fde" stroke-width="2" />
      <polyline points={line(valLosses)} fill="none" stroke="#e08a1e" stroke-width="2" />
      <text x={width - pad} y={pad} font-size="11" text-anchor="end" fill="#2f6fde">loss</text>
      <text x={width - pad} y={pad + 14} font-size="11" text-anchor="end" fill="#e08a1e">
        val_loss
      </text>
    </svg>
  );
}

async function train(
  engine: Engine,
  props: TrainSpiralsProps,
  onEpoch: (
    report: TrainReport,
    classOne: Float32Array,
    data: { x: number[]; y: number[] },
  ) => void,
  onStatus: (status: string) => void,
): Promise<TrainReport> {
  const { Tensor, Adam, fit, predict, softmax, softmaxCrossEntropy, noGrad, tidy } = engine;
  const { rt } = await engine.startEngine();
  const [config, data] = await Promise.all([
    fetch(props.configUrl).then((r) => r.json() as Promise<LayerConfig>),
    fetch(props.dataUrl).then((r) => r.json() as Promise<{ x: number[]; y: number[] }>),
  ]);
  const { epochs, batchSize, lr, validationSplit, seed } = props.settings;
  const n = data.y.length;
  const x = Tensor.from(data.x, [n, 2]).keep();
  const y = Tensor.from(data.y, [n], "i32").keep();
  const grid = Tensor.from(gridPoints(), [GRID * GRID, 2]).keep();
  const model = engine.buildModel(config) as Parameters<typeof fit>[0];
  const fitOptions = {
    loss: softmaxCrossEntropy,
    batchSize,
    validationSplit,
    seed,
    metrics: ["accuracy"] as const,
  };
  const boundary = () =>
    noGrad(() => tidy(() => softmax(predict(model, grid, { batchSize: GRID * GRID }), -1)));

  // A dry run of one epoch on one batch and of the boundary builds every pipeline they use
  // asynchronously; nothing runs on the GPU, so the model's weights are untouched.
  onStatus("building pipelines…");
  const t0 = performance.now();
  const pipelines = await rt.prepare(async () => {
    const scratch = new Adam(model.parameters(), { lr });
    const first = Math.min(n, 2 * batchSize);
    const someX = Tensor.from(data.x.slice(0, 2 * first), [first, 2]);
    const someY = Tensor.from(data.y.slice(0, first), [first], "i32");
    try {
      await fit(model, scratch, { x: someX, y: someY }, { ...fitOptions, epochs: 1 });
      boundary().dispose();
    } finally {
      for (const t of [someX, someY]) t.dispose();
      scratch.dispose();
    }
  });
  const report: TrainReport = {
    losses: [],
    valLosses: [],
    epochMs: [],
    blockMs: { median: 0, p99: 0, max: 0 },
    prepareMs: performance.now() - t0,
    pipelines,
  };

  const optimizer = new Adam(model.parameters(), { lr });
  let epochStart = performance.now();
  onStatus("training…");
  const watch = watchEventLoop();
  try {
    await fit(model, optimizer, { x, y }, {
      ...fitOptions,
      epochs,
      callbacks: [{
        onBatchEnd: yieldToBrowser,
        async onEpochEnd(_epoch, logs) {
          report.epochMs.push(performance.now() - epochStart);
          report.losses.push(logs.loss);
          report.valLosses.push(logs.val_loss);
          const probabilities = boundary();
          const values = await probabilities.data() as Float32Array;
          probabilities.dispose();
          const classOne = new Float32Array(GRID * GRID);
          for (let i = 0; i < classOne.length; i++) classOne[i] = values[2 * i + 1];
          onEpoch(report, classOne, data);
          await yieldToBrowser();
          epochStart = performance.now();
        },
      }],
    });
  } finally {
    report.blockMs = watch.stop();
    for (const t of [x, y, grid]) t.dispose();
    optimizer.dispose();
    model.dispose();
  }
  return report;
}

export function TrainSpirals(props: TrainSpiralsProps) {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const status = useSignal("loading the engine…");
  const report = useSignal<TrainReport | null>(null);
  const running = useSignal(false);

  async function start() {
    running.value = true;
    try {
      const engine = await loadEngine();
      const problem = await engine.webGpuProblem();
      if (problem) {
        status.value = problem;
        return;
      }
      const final = await train(engine, props, (r, classOne, data) => {
        report.value = { ...r, losses: [...r.losses], valLosses: [...r.valLosses] };
        drawBoundary(canvasRef.current!, classOne, data);
      }, (s) => status.value = s);
      report.value = { ...final };
      const mean = final.epochMs.reduce((a, b) => a + b, 0) / final.epochMs.length;
      status.value = `done: ${final.epochMs.length} epochs, ${mean.toFixed(0)} ms per epoch`;
      document.documentElement.dataset.trained = JSON.stringify(final);
    } catch (e) {
      status.value = `error: ${(e as Error).message}`;
    } finally {
      running.value = false;
    }
  }

  useEffect(() => {
    status.value = "ready";
  }, []);

  const r = report.value;
  return (
    <div class="train-spirals">
      <p>
        <button type="button" data-train disabled={running.value} onClick={start}>
          train {props.settings.epochs} epochs
        </button>{" "}
        <span data-status>{status.value}</span>
      </p>
      <div style="display: flex; gap: 2rem; flex-wrap: wrap; align-items: flex-start">
        <LossCurve
          losses={r?.losses ?? []}
          valLosses={r?.valLosses ?? []}
          epochs={props.settings.epochs}
        />
        <canvas ref={canvasRef} width={PLOT} height={PLOT} style="border: 1px solid #ccc" />
      </div>
      {r && (
        <p>
          pipelines: {r.pipelines} built asynchronously in {(r.prepareMs / 1000).toFixed(2)}{" "}
          s · the page's event loop turned every {r.blockMs.median.toFixed(0)}{" "}
          ms (median), at worst after {r.blockMs.max.toFixed(0)} ms
          {r.losses.length > 0 &&
            ` · epoch ${r.losses.length}: loss ${r.losses.at(-1)!.toFixed(4)}, val_loss ${
              r.valLosses.at(-1)!.toFixed(4)
            }`}
        </p>
      )}
    </div>
  );
}
