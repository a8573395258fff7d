// Draw a digit: the TP1 model of the chosen run (its safetensors fetched from the store) runs in
// the page on WebGPU, through the same Predictor as the predict API, and the server's answer for
// the same 28×28 image is shown beside it.
import { useSignal } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import type { Predictor } from "../predict.ts";
import { loadEngine } from "./engine.ts";

export interface PlaygroundProps {
  runName: string;
  /** The run's saved model (an artifact URL). */
  modelUrl: string;
  /** GET endpoint answering like `/predict` for `?image=` (784 bytes, base64url). */
  serverPredictUrl: string;
}

const SIDE = 28;
const SCALE = 10;
const CANVAS = SIDE * SCALE;

interface Answer {
  probabilities: number[];
  prediction: number;
  ms: number;
}

/** The canvas as 28×28 pixel values 0–255: the mean of each 10×10 block, rounded like a byte. */
function canvasPixels(canvas: HTMLCanvasElement): Uint8Array {
  const { data } = canvas.getContext("2d")!.getImageData(0, 0, CANVAS, CANVAS);
  const pixels = new Uint8Array(SIDE * SIDE);
  for (let r = 0; r < SIDE; r++) {
    for (let c = 0; c < SIDE; c++) {
      let total = 0;
      for (let y = 0; y < SCALE; y++) {
        for (let x = 0; x < SCALE; x++) {
          total += data[4 * ((r * SCALE + y) * CANVAS + c * SCALE + x)];
        }
      }
      pixels[r * SIDE + c] = Math.round(total / (SCALE * SCALE));
    }
  }
  return pixels;
}

function base64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function Bars({ title, answer }: { title: string; answer: Answer | null }) {
  return (
    <div
      class="playground-bars"
      data-title={title}
      data-probabilities={answer ? JSON.stringify(answer.probabilities) : undefined}
    >
      <h3>{title}</h3>
      {answer
        ? (
          <>
            <p>
              prediction <strong data-prediction>{answer.prediction}</strong> ·{" "}
              {answer.ms.toFixed(1)} ms
            </p>
            <svg width="260" height="160" role="img" aria-label={`${title} probabilities`}>
              {answer.probabilities.map((p, digit) => (
                <g key={digit}>
                  <rect
                    x={digit * 26 + 2}
                    y={140 - 130 * p}
                    width={22}
                    height={130 * p}
                    fill={digit === answer.prediction ? "#2f6fde" : "#9fb3d9"}
                  />
                  <text x={digit * 26 + 13} y={155} text-anchor="middle" font-size="11">
                    {digit}
                  </text>
                </g>
              ))}
            </svg>
          </>
        )
        : <p class="empty">draw a digit</p>}
    </div>
  );
}

export function Playground(props: PlaygroundProps) {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const predictor = useRef<Predictor | null>(null);
  const status = useSignal("loading the engine…");
  const inPage = useSignal<Answer | null>(null);
  const server = useSignal<Answer | null>(null);
  const firstResultMs = useSignal<number | null>(null);
  const started = useRef(performance.now());

  useEffect(() => {
    const canvas = canvasRef.current!;
    clear(canvas);
    (async () => {
      const engine = await loadEngine();
      const problem = await engine.webGpuProblem();
      if (problem) {
        status.value = problem;
        return;
      }
      const { rt, adapter } = await engine.startEngine();
      const bytes = new Uint8Array(await (await fetch(props.modelUrl)).arrayBuffer());
      // A dry run of loading and one inference builds every pipeline they use asynchronously
      // (seconds in a browser), so the page never waits on a compile.
      const built = await rt.prepare(async () => {
        const probe = engine.Predictor.load(bytes, props.runName);
        try {
          await probe.predict(new Float32Array(SIDE * SIDE), 1);
        } finally {
          probe.dispose();
        }
      });
      predictor.current = engine.Predictor.load(bytes, props.runName);
      const readyMs = performance.now() - started.current;
      status.value = `ready on ${adapter.architecture || adapter.vendor || adapter.description} ` +
        `in ${(readyMs / 1000).toFixed(2)} s (${built} pipelines built asynchronously)`;
      document.documentElement.dataset.readyMs = readyMs.toFixed(0);
      document.documentElement.dataset.playground = "ready";
    })().catch((e) => status.value = `error: ${(e as Error).message}`);
  }, []);

  function clear(canvas: HTMLCanvasElement) {
    const ctx = canvas.getContext("2d")!;
    ctx.fillStyle = "black";
    ctx.fillRect(0, 0, CANVAS, CANVAS);
  }

  async function classify() {
    const model = predictor.current;
    if (!model) return;
    const pixels = canvasPixels(canvasRef.current!);
    const input = Float32Array.from(pixels, (v) => v / 255);
    const t0 = performance.now();
    const probabilities = Array.from(await model.predict(input, 1));
    const ms = performance.now() - t0;
    inPage.value = { probabilities, prediction: argmax(probabilities), ms };
    firstResultMs.value ??= performance.now() - started.current;
    const s0 = performance.now();
    const response = await fetch(`${props.serverPredictUrl}?image=${base64Url(pixels)}`);
    const body = await response.json();
    server.value = response.ok
      ? { ...body, probabilities: body.probabilities[0], ms: performance.now() - s0 }
      : null;
    if (!response.ok) status.value = `server: ${body.error}`;
    document.documentElement.dataset.classified = String(
      Number(
        document.documentElement.dataset.classified ?? 0,
      ) + 1,
    );
  }

  // Pointer drawing: a thick white stroke, classified when the pen lifts.
  const drawing = useRef(false);
  function stroke(event: PointerEvent, start: boolean) {
    const canvas = canvasRef.current!;
    const ctx = canvas.getContext("2d")!;
    const box = canvas.getBoundingClientRect();
    const x = event.clientX - box.left, y = event.clientY - box.top;
    ctx.strokeStyle = "white";
    ctx.lineWidth = 22;
    ctx.lineCap = ctx.lineJoin = "round";
    if (start) {
      ctx.beginPath();
      ctx.moveTo(x, y);
    }
    ctx.lineTo(x, y);
    ctx.stroke();
  }

  return (
    <div class="playground">
      <p data-status>{status.value}</p>
      <div style="display: flex; gap: 2rem; flex-wrap: wrap; align-items: flex-start">
        <div>
          <canvas
            ref={canvasRef}
            width={CANVAS}
            height={CANVAS}
            data-digit-canvas
            style="touch-action: none; border: 1px solid #ccc; cursor: crosshair"
            onPointerDown={(e) => {
              drawing.current = true;
              stroke(e, true);
            }}
            onPointerMove={(e) => drawing.current && stroke(e, false)}
            onPointerUp={() => {
              drawing.current = false;
              classify();
            }}
          />
          <p>
            <button type="button" onClick={() => clear(canvasRef.current!)}>clear</button>{" "}
            <button type="button" data-classify onClick={classify}>classify</button>
          </p>
        </div>
        <Bars title="in this page (WebGPU)" answer={inPage.value} />
        <Bars title="server /predict" answer={server.value} />
      </div>
      {firstResultMs.value !== null && (
        <p data-first-result-ms={firstResultMs.value.toFixed(0)}>
          time to first result: {(firstResultMs.value / 1000).toFixed(2)} s from page load
        </p>
      )}
    </div>
  );
}
