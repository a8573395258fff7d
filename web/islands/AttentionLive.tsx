// TP5 Part 1's model (GRU + attention pooling) of a chosen run runs in the page on WebGPU: each
// draw generates fresh sequences of the run's task (the lab's own generator) and shows the
// attention weights the model gives each time step as a heatmap, one row per sequence, with the
// burst (burst task) outlined and the model's answer beside each row.
import { useSignal } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import type { AttentionGru } from "../../models/attention_gru.ts";
import { type Engine, loadEngine } from "./engine.ts";

export interface AttentionLiveProps {
  runName: string;
  weightsUrl: string;
  task: "sum" | "burst";
  attention: "simple" | "scaled";
  steps: number;
  features: number;
  units: number;
  modelSeed: number;
}

interface Row {
  weights: number[];
  /** The burst's [start, end) (burst task). */
  segment?: [number, number];
  truth: string;
  answer: string;
}

const ROWS = 8;
const CELL_W = 12, CELL_H = 22, LABEL_W = 230;
const VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];

function color(t: number): string {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  return VIRIDIS[Math.round(x)];
}

/** Fresh sequences of the run's task, the model's attention and answers for them. */
async function draw(
  engine: Engine,
  model: AttentionGru,
  props: AttentionLiveProps,
  seed: number,
): Promise<Row[]> {
  const shape = { samples: ROWS, steps: props.steps, features: props.features };
  const task = props.task === "sum" ? engine.sumTask(seed, shape) : engine.burstTask(seed, shape);
  const x = engine.Tensor.from(task.x, [ROWS, props.steps, props.features]);
  const { output, weights } = engine.noGrad(() => model.attend(x));
  const [out, w] = await Promise.all([output.data(), weights.data()]);
  for (const t of [x, output, weights]) t.dispose();
  return Array.from({ length: ROWS }, (_, r) => {
    const row = Array.from(w.subarray(r * props.steps, (r + 1) * props.steps));
    if ("labels" in task) {
      const logits = Array.from(out.subarray(r * 3, r * 3 + 3));
      const { start, end } = task.segments[r];
      return {
        weights: row,
        segment: [start, end] as [number, number],
        truth: `class ${task.labels[r]}`,
        answer: `says ${logits.indexOf(Math.max(...logits))}`,
      };
    }
    return {
      weights: row,
      truth: `y ${task.y[r].toFixed(2)}`,
      answer: `says ${out[r].toFixed(2)}`,
    };
  });
}

export function AttentionLive(props: AttentionLiveProps) {
  const status = useSignal("loading the engine…");
  const rows = useSignal<Row[]>([]);
  const seed = useSignal(1);
  const ready = useRef<{ engine: Engine; model: AttentionGru } | null>(null);

  async function redraw() {
    const loaded = ready.current;
    if (!loaded) return;
    const t0 = performance.now();
    rows.value = await draw(loaded.engine, loaded.model, props, seed.value);
    status.value = `sequences of seed ${seed.value}: ${(performance.now() - t0).toFixed(0)} ms`;
    document.documentElement.dataset.attentionDrawn = String(seed.value);
  }

  useEffect(() => {
    (async () => {
      const engine = await loadEngine();
      const problem = await engine.webGpuProblem();
      if (problem) {
        status.value = problem;
        return;
      }
      const { rt } = await engine.startEngine();
      const bytes = new Uint8Array(await (await fetch(props.weightsUrl)).arrayBuffer());
      const model = new engine.AttentionGru({
        steps: props.steps,
        features: props.features,
        units: props.units,
        attention: props.attention,
        head: props.task === "sum" ? { kind: "regression" } : { kind: "classes", classes: 3 },
        seed: props.modelSeed,
      });
      engine.loadModelState(model, engine.decodeSafetensors(bytes).tensors);
      model.eval();
      // Build the forward pass's pipelines asynchronously before the first draw.
      await rt.prepare(() => draw(engine, model, props, 0));
      ready.current = { engine, model };
      await redraw();
    })().catch((e) => status.value = `error: ${(e as Error).message}`);
  }, []);

  const width = LABEL_W + props.steps * CELL_W;
  return (
    <div class="attention-live">
      <p>
        <button
          type="button"
          data-redraw
          onClick={() => {
            seed.value++;
            redraw();
          }}
        >
          new sequences
        </button>{" "}
        <span data-status>{status.value}</span>
      </p>
      <svg width={width} height={ROWS * CELL_H + 20} role="img" aria-label="attention weights">
        {rows.value.map((row, r) => {
          // Each row spans its own range: a barely trained model's weights sit near 1/T.
          const low = Math.min(...row.weights), high = Math.max(...row.weights);
          return (
            <g key={r} transform={`translate(0, ${r * CELL_H})`}>
              <text x={0} y={CELL_H - 8} font-size="11">
                {`${row.truth} · ${row.answer} · max α ${high.toFixed(3)}`}
              </text>
              {row.weights.map((w, t) => (
                <rect
                  key={t}
                  x={LABEL_W + t * CELL_W}
                  y={1}
                  width={CELL_W - 1}
                  height={CELL_H - 2}
                  fill={color(high > low ? (w - low) / (high - low) : 1)}
                >
                  <title>{`t ${t}: weight ${w.toFixed(4)}`}</title>
                </rect>
              ))}
              {row.segment && (
                <rect
                  x={LABEL_W + row.segment[0] * CELL_W - 1}
                  y={0}
                  width={(row.segment[1] - row.segment[0]) * CELL_W}
                  height={CELL_H}
                  fill="none"
                  stroke="#e4572e"
                  stroke-width="2"
                />
              )}
            </g>
          );
        })}
        <text x={LABEL_W} y={ROWS * CELL_H + 14} font-size="11">
          time step 0 … {props.steps - 1} (colour: from the row's smallest weight to its largest)
        </text>
      </svg>
      <p data-attention-weights={JSON.stringify(rows.value.map((r) => r.weights))} hidden />
    </div>
  );
}
