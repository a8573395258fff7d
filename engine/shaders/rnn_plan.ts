// How a GRU / LSTM sequence is laid out on the adapter: the cells' sizes, the thread tile and
// launch plan of the recurrence kernels (shaders/rnn.ts, rnn_backward.ts), their tuning table,
// and the loop iterations a step costs against the adapter's loop budget.
import { tunable } from "../tuning.ts";

export type RnnCell = "gru" | "lstm";

/** Gate count per cell: GRU z, r, h (Keras order); LSTM i, f, c, o. */
export const GATES: Record<RnnCell, number> = { gru: 3, lstm: 4 };
/** Saved activations per hidden unit and step: GRU z, r, ĥ, (U_h·h + b_rh); LSTM i, f, g, o, tanh(c). */
export const SAVED: Record<RnnCell, number> = { gru: 4, lstm: 5 };

/**
 * Thread layout: a lane owns `groups` groups of `width` neighbouring hidden units (4, or 1 when
 * H % 4 ≠ 0), the groups `lanes` lanes apart, and loops over batch rows `rows` at a time;
 * `lanes` lanes per workgroup along the unit axis.
 */
export interface RnnTile {
  width: 1 | 4;
  lanes: number;
  rows: number;
  groups: number;
}

/**
 * How a sequence runs: `persistent` is one workgroup per chunk of batch rows, each looping over
 * every time step with a storage barrier between steps (one dispatch per sequence); otherwise
 * one dispatch per step over a grid of (unit tile × batch chunk) workgroups. `chunk`: batch rows
 * per workgroup.
 */
export interface RnnPlan {
  tile: RnnTile;
  persistent: boolean;
  chunk: number;
  groups: [number, number];
  /**
   * H when each persistent lane copies its recurrent-weight fragments into a private array for the
   * launch (RnnTuning.heldWeights), else 0.
   */
  held: number;
}

const MAX_LANES = 256;

export interface RnnTuning {
  /** Multiply-adds per step up to which one workgroup runs the whole sequence by default. */
  persistentMaxMacs: number;
  /** Batch rows per register block. */
  rows: number;
  /** Lanes per workgroup of a per-step grid: one SIMD row on a CPU adapter. */
  tileLanes: number;
  /**
   * Most unit groups one lane of a persistent workgroup owns: more groups, fewer lanes (never
   * fewer than `tileLanes`), so fewer SIMD rows load every row's state at each step.
   */
  unitGroups: number;
  /**
   * Input widths up to which the recurrence kernels project the input themselves (x·W + b from
   * registers) instead of reading a matmul's [B·T, G·H] result: a dispatch and a pass over that
   * buffer fewer each way, for I·G·H more multiply-adds per row and step.
   */
  fusedInputs: number;
  /**
   * Most recurrent-weight vec4 (G·H per unit group) a persistent lane copies into a private array
   * once per launch, instead of reading them from the storage buffer at every step; 0: never.
   */
  heldWeights: number;
}

// Chosen on lavapipe. 16 rows per block: each recurrent-weight load serves twice the rows of 8,
// and a batch of 32 still gives a workgroup per core; the persistent train step at batch 32 ran
// 1.05–1.4× faster than with 8 rows in 7 of 8 bench pairs, batch 64 1.0–1.15× (32 rows no
// better), per-step grids equal. Inputs up to 2 wide are projected in the kernels: train steps
// (B 32, T 50, H 64, fastest of 8 interleaved rounds) ran 1.13× (GRU) and 1.05× (LSTM) faster at
// I = 1, 1.08× and 1.34× at I = 2, and 0.97× and 0.92× at I = 4. GPUs take the same until a
// benchmark measures better, except that a GPU keeps 8 rows and one unit group per lane (its
// lanes are cheap, its registers are not). Held weights (a lane's G·H·groups vec4 of U copied
// into a private array per launch; at H 64: 384 vec4 for a GRU, 512 for an LSTM), kernel
// timestamps over 24 interleaved train steps: GRU forward 1.22×, backward 1.25× (B 32; B 64:
// 1.28×, 1.10×), LSTM 1.21×, 1.18×; a cold compile takes about twice as long (GRU forward 7 →
// 14 s, LSTM 13 → 24 s). Not on GL (its GLSL compiler is the slow part there), SwiftShader or
// GPUs (a private array that large would spill from a GPU's registers): not measured.
const TUNED: RnnTuning = {
  persistentMaxMacs: 1 << 20,
  rows: 16,
  tileLanes: 8,
  unitGroups: 2,
  fusedInputs: 2,
  heldWeights: 512,
};
export const RNN_TUNING = tunable<RnnTuning>("rnn", {
  cpu: TUNED,
  gpu: { ...TUNED, rows: 8, unitGroups: 1, heldWeights: 0 },
  // Chromium's SwiftShader loses the device on the 16-row backward kernels (8 rows run).
  "cpu-swiftshader": { ...TUNED, rows: 8, heldWeights: 0 },
  "cpu-gl": { ...TUNED, heldWeights: 0 },
});

export function rnnPlan(
  batch: number,
  hidden: number,
  gates: number,
  mode?: "persistent" | "tiled",
): RnnPlan {
  const { persistentMaxMacs, rows: tunedRows, tileLanes, unitGroups, heldWeights } = RNN_TUNING
    .get();
  const width = hidden % 4 === 0 ? 4 : 1;
  const rows = Math.min(tunedRows, batch);
  const laneCount = Math.ceil(hidden / width);
  const persistent = laneCount <= MAX_LANES &&
    (mode === "persistent" ||
      (mode !== "tiled" && batch * hidden * gates * hidden <= persistentMaxMacs));
  if (persistent) {
    const groups = Math.max(1, Math.min(unitGroups, Math.ceil(laneCount / tileLanes)));
    const lanes = Math.max(tileLanes, 2 ** Math.ceil(Math.log2(Math.ceil(laneCount / groups))));
    // Batch rows are independent, so each block of `rows` rows gets its own workgroup looping
    // over time: the sequence still costs one dispatch, but runs on every core / SM.
    const holds = width === 4 && groups * gates * hidden <= heldWeights;
    return {
      tile: { width, lanes, rows, groups },
      persistent,
      chunk: rows,
      groups: [1, Math.ceil(batch / rows)],
      held: holds ? hidden : 0,
    };
  }
  return {
    tile: { width, lanes: tileLanes, rows, groups: 1 },
    persistent,
    chunk: rows,
    groups: [Math.ceil(laneCount / tileLanes), Math.ceil(batch / rows)],
    held: 0,
  };
}

/**
 * Loop iterations one time step of a persistent kernel runs (trips + 1 per loop; an upper bound
 * with a margin): its batch-row blocks, each looping over the recurrent depth (H forward, G·H
 * backward), 4 at a time with vec4 units. A sequence whose steps would pass the adapter's loop
 * budget runs as several dispatches of fewer steps each.
 */
export function rnnStepLoopIterations(
  plan: RnnPlan,
  gates: number,
  hidden: number,
  backward: boolean,
): number {
  const depth = (backward ? gates * hidden : hidden) / plan.tile.width;
  const blocks = Math.ceil(plan.chunk / plan.tile.rows);
  return Math.ceil(1.25 * (2 + blocks * (Math.ceil(depth) + 2))) + 8;
}
