// GRU and LSTM over whole sequences, one autograd node per sequence.
//
// Forward: the input projections of all time steps are ONE matmul (x·W + b_in over B·T rows),
// or part of the recurrence kernel for inputs up to the tuning's `fusedInputs` wide; the
// recurrence is ONE dispatch per time step (h·U, gates, nonlinearities, state update).
// Backward through time: ONE dispatch per step (dh = dout + dgates_{t+1}·Uᵀ, gate gradients),
// one more for dh0 when the initial state wants a gradient, then dW, dU and dx as one matmul
// each over all steps. The backward kernel also sums the bias gradient (and a fused input's dW)
// over its rows and steps, so they need only a reduction over workgroups, not one over B·T rows.
//
// Weight layout (Keras): kernel [in, G·H], recurrent_kernel [H, G·H], gate blocks along the last
// axis — GRU z, r, h (reset_after=True: bias [2, 3H], row 0 input bias, row 1 recurrent bias);
// LSTM i, f, c, o (bias [4H]). PyTorch equivalents: weight_ih_l0 = kernelᵀ and weight_hh_l0 =
// recurrent_kernelᵀ with the gate blocks reordered (GRU r, z, n; LSTM i, f, g, o — same order);
// GRU bias_ih_l0 / bias_hh_l0 = bias rows 0 / 1 reordered the same way; LSTM bias = bias_ih +
// bias_hh. PyTorch's n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)) is exactly reset_after.
//
// The op's node output is a packed tensor [sequence? | h_T | c_T?]; the tensors handed to the
// caller are copies taken from it by the `rnn_output` op, whose gradients land back in place.
import { formatShape, Tensor } from "../tensor.ts";
import { needsGrad, type Node, noGrad, recorder, type Rules } from "../autograd.ts";
import { runtime } from "../runtime.ts";
import { grid1d } from "../shaders/common.ts";
import { rnnForwardKernel, rnnPlaceKernel } from "../shaders/rnn.ts";
import { rnnBackwardKernel } from "../shaders/rnn_backward.ts";
import {
  GATES,
  RNN_TUNING,
  type RnnCell,
  type RnnPlan,
  rnnPlan,
  rnnStepLoopIterations,
  SAVED,
} from "../shaders/rnn_plan.ts";
import { matmul } from "./matmul.ts";
import { sum } from "./reduce.ts";

export type { RnnCell };

export interface RnnSequenceOptions {
  /** Initial hidden state [B, H] (zeros when omitted); differentiable. */
  h0?: Tensor;
  /** Initial cell state [B, H] (LSTM only). */
  c0?: Tensor;
  /** Also return the output at every step (default true). */
  returnSequences?: boolean;
  /** Process the input from the last time step to the first (Keras go_backwards). */
  goBackwards?: boolean;
  /**
   * Order of the returned sequence when going backwards: "steps" (Keras: the sequence comes back
   * reversed, element s is step s) or "time" (element t belongs to input time t, as a
   * bidirectional layer merges it). Neither copies the input or the output.
   */
  outputOrder?: "steps" | "time";
}

export interface RnnSequenceResult {
  /** [B, T, H] outputs when returnSequences, else undefined. */
  sequence?: Tensor;
  /** Final hidden state [B, H] (the last step's output). */
  h: Tensor;
  /** Final cell state [B, H] (LSTM). */
  c?: Tensor;
}

/**
 * GRU over x [B, T, in] (Keras reset_after=True): kernel [in, 3H], recurrentKernel [H, 3H],
 * bias [2, 3H] (input bias, recurrent bias).
 */
export function gruSequence(
  x: Tensor,
  kernel: Tensor,
  recurrentKernel: Tensor,
  bias: Tensor,
  options: RnnSequenceOptions = {},
): RnnSequenceResult {
  return sequence("gru", x, kernel, recurrentKernel, bias, options);
}

/**
 * LSTM over x [B, T, in] (Keras gate order i, f, c, o): kernel [in, 4H], recurrentKernel
 * [H, 4H], bias [4H].
 */
export function lstmSequence(
  x: Tensor,
  kernel: Tensor,
  recurrentKernel: Tensor,
  bias: Tensor,
  options: RnnSequenceOptions = {},
): Required<Omit<RnnSequenceResult, "sequence">> & { sequence?: Tensor } {
  const out = sequence("lstm", x, kernel, recurrentKernel, bias, options);
  return { sequence: out.sequence, h: out.h, c: out.c! };
}

// ---- checks -------------------------------------------------------------------------------

function expectShape(op: string, name: string, t: Tensor, shape: number[], what: string): void {
  t.assertAlive(op);
  if (t.dtype !== "f32" || t.shape.join() !== shape.join()) {
    throw new Error(
      `${op}: ${name} is ${t.dtype} of shape ${formatShape(t.shape)}; expected f32 of shape ` +
        `${formatShape(shape)} (${what})`,
    );
  }
}

export interface RnnDims {
  batch: number;
  steps: number;
  inputs: number;
  hidden: number;
}

interface SequenceAttrs extends RnnDims {
  backwards: boolean;
  stepOrder: boolean;
  returnSequences: boolean;
  hasH0: boolean;
  hasC0: boolean;
  /** Input width projected inside the kernels (0: by matmul). */
  fusedInputs: number;
}

interface RnnAttrs {
  gru_sequence: SequenceAttrs;
  lstm_sequence: SequenceAttrs;
  /** `offset` floats into the packed output of `total` floats. */
  rnn_output: { offset: number; total: number };
}

/**
 * FLOPs of a forward over x [batch, steps, inputs]: the input projection x·W (one matmul) and
 * the recurrent product h·U of every step; the gate maths is not counted. Backward through time
 * does the products twice more (dU and dh, dW and dx).
 */
export function rnnFlops(cell: RnnCell, d: RnnDims): number {
  return 2 * d.batch * d.steps * (d.inputs + d.hidden) * GATES[cell] * d.hidden;
}

function checkInputs(
  cell: RnnCell,
  x: Tensor,
  kernel: Tensor,
  recurrentKernel: Tensor,
  bias: Tensor,
  options: RnnSequenceOptions,
): RnnDims {
  const op = `${cell}Sequence`;
  const G = GATES[cell];
  x.assertAlive(op);
  if (x.dtype !== "f32" || x.rank !== 3 || x.shape[0] < 1 || x.shape[1] < 1) {
    throw new Error(
      `${op}: x is ${x.dtype} of shape ${formatShape(x.shape)}; expected f32 [batch, time, ` +
        `features] with batch ≥ 1 and time ≥ 1`,
    );
  }
  const [batch, steps, inputs] = x.shape;
  recurrentKernel.assertAlive(op);
  const hidden = recurrentKernel.shape[0];
  if (recurrentKernel.rank !== 2 || !(hidden >= 1)) {
    throw new Error(
      `${op}: recurrentKernel has shape ${formatShape(recurrentKernel.shape)}; expected ` +
        `[units, ${G}·units]`,
    );
  }
  const gh = G * hidden;
  expectShape(op, "recurrentKernel", recurrentKernel, [hidden, gh], `[units, ${G}·units]`);
  expectShape(op, "kernel", kernel, [inputs, gh], `[features of x, ${G}·units]`);
  if (cell === "gru") {
    expectShape(op, "bias", bias, [2, gh], "[2, 3·units]: input bias, recurrent bias");
  } else {
    expectShape(op, "bias", bias, [gh], "[4·units]");
  }
  const state = `[batch, units] = [${batch}, ${hidden}]`;
  if (options.h0) expectShape(op, "h0", options.h0, [batch, hidden], state);
  if (options.c0) {
    if (cell === "gru") throw new Error("gruSequence: c0 was given, but a GRU has no cell state");
    expectShape(op, "c0", options.c0, [batch, hidden], state);
  }
  const order = options.outputOrder ?? "steps";
  if (order !== "steps" && order !== "time") {
    throw new Error(`${op}: outputOrder '${order}', expected 'steps' or 'time'`);
  }
  return { batch, steps, inputs, hidden };
}

// ---- forward ------------------------------------------------------------------------------

let modeOverride: "persistent" | "tiled" | null = null;

/**
 * Forces how the recurrence is launched (tests and benchmarks): "persistent" = one workgroup
 * looping over all steps, "tiled" = one dispatch per step over a grid; null = by size.
 */
export function setRnnMode(mode: "persistent" | "tiled" | null): void {
  modeOverride = mode;
}

function sequence(
  cell: RnnCell,
  x: Tensor,
  kernel: Tensor,
  recurrentKernel: Tensor,
  bias: Tensor,
  options: RnnSequenceOptions,
): RnnSequenceResult {
  const { batch: B, steps: T, inputs: I, hidden: H } = checkInputs(
    cell,
    x,
    kernel,
    recurrentKernel,
    bias,
    options,
  );
  const { h0, c0 } = options;
  const returnSequences = options.returnSequences ?? true;
  const backwards = options.goBackwards ?? false;
  const stepOrder = (options.outputOrder ?? "steps") === "steps";
  const G = GATES[cell];
  const rt = runtime();

  const inputs = [x, kernel, recurrentKernel, bias];
  if (h0) inputs.push(h0);
  if (c0) inputs.push(c0);
  const recording = needsGrad(inputs);

  // Narrow inputs are projected inside the recurrence kernel; otherwise all input projections at
  // once: xp [B·T, G·H] = x·W + b_in.
  const fusedInputs = I <= RNN_TUNING.get().fusedInputs ? I : 0;
  const xp = fusedInputs ? null : noGrad(() => {
    const x2d = x.reshape([B * T, I]);
    const inputBias = cell === "gru" ? bias.retainView([G * H]) : bias;
    const y = matmul(x2d, kernel, { bias: inputBias });
    x2d.dispose();
    if (inputBias !== bias) inputBias.dispose();
    return y;
  });
  // An LSTM's initial states travel in one buffer [2, B, H] (buffer copies, no dispatch).
  let state0: Tensor | null = null;
  if (cell === "lstm" && (h0 || c0)) {
    state0 = Tensor.empty([2 * B * H]);
    if (h0) rt.copy(h0.storage, 0, state0.storage, 0, B * H * 4);
    if (c0) rt.copy(c0.storage, 0, state0.storage, B * H * 4, B * H * 4);
  }

  const seqSize = returnSequences ? B * T * H : 0;
  const packed = Tensor.empty([seqSize + (cell === "lstm" ? 2 : 1) * B * H]);
  const hprev = Tensor.empty([B * T, H]);
  const cprev = cell === "lstm" ? Tensor.empty([B * T, H]) : null;
  const acts = recording ? Tensor.empty([B * T, SAVED[cell] * H]) : null;
  const { read: spareRead, write: spareWrite } = runtime().spares();
  const plan = rnnPlan(B, H, G, modeOverride ?? undefined);
  const kernelSpec = rnnForwardKernel(cell, plan.tile, fusedInputs, plan.held);
  // In the kernel's binding order (see rnnForwardKernel).
  const buffers = [
    ...(xp ? [xp.storage] : [x.storage, kernel.storage]),
    recurrentKernel.storage,
    ...(cell === "lstm" && xp ? [] : [bias.storage]),
    (cell === "lstm" ? state0 : h0)?.storage ?? spareRead,
    hprev.storage,
    ...(cprev ? [cprev.storage] : []),
    acts?.storage ?? spareWrite,
    packed.storage,
  ];
  // The recurrence kernel's share of the work: h·U of one step, and x·W when fused.
  const stepFlops = rnnFlops(cell, { batch: B, steps: 1, inputs: fusedInputs, hidden: H });
  // Steps s0 ≤ s < s1; the packed output is complete (and checked) after the last one.
  const launch = (s0: number, s1: number) =>
    rt.launch(kernelSpec, {
      buffers,
      params: {
        B,
        T,
        H,
        s0,
        s1,
        chunk: plan.chunk,
        backwards: +backwards,
        stepOrder: +stepOrder,
        hasH0: h0 ? 1 : 0,
        hasC0: c0 ? 1 : 0,
        writeSeq: +returnSequences,
        save: +recording,
        tail: seqSize,
      },
      groups: plan.groups,
      flops: stepFlops * (s1 - s0),
      outputs: s1 === T ? [packed] : [],
      op: `${cell}_sequence`,
    });
  if (plan.persistent) {
    const per = stepsPerLaunch(plan, G, H, false);
    for (let s0 = 0; s0 < T; s0 += per) launch(s0, Math.min(T, s0 + per));
  } else {
    for (let s = 0; s < T; s++) launch(s, s + 1);
  }
  xp?.dispose();
  state0?.dispose();

  const saved = [x, kernel, recurrentKernel, hprev];
  if (cprev) saved.push(cprev);
  if (acts) saved.push(acts);
  record(`${cell}_sequence`, packed, inputs, saved, {
    batch: B,
    steps: T,
    inputs: I,
    hidden: H,
    backwards,
    stepOrder,
    returnSequences,
    hasH0: !!h0,
    hasC0: !!c0,
    fusedInputs,
  });
  hprev.dispose();
  cprev?.dispose();
  acts?.dispose();

  const result: RnnSequenceResult = {
    sequence: returnSequences ? take(packed, 0, [B, T, H]) : undefined,
    h: take(packed, seqSize, [B, H]),
    c: cell === "lstm" ? take(packed, seqSize + B * H, [B, H]) : undefined,
  };
  packed.dispose();
  return result;
}

/** A tensor of `shape` copied from the floats of `src` at `offset` (a buffer copy, no dispatch). */
function copyOut(src: Tensor, offset: number, shape: number[]): Tensor {
  const out = Tensor.empty(shape);
  runtime().copy(src.storage, offset * 4, out.storage, 0, out.size * 4);
  return out;
}

/** A piece of the packed output, recorded so that its gradient lands back in place. */
function take(packed: Tensor, offset: number, shape: number[]): Tensor {
  const out = copyOut(packed, offset, shape);
  return record("rnn_output", out, [packed], [], { offset, total: packed.size });
}

// ---- backward -----------------------------------------------------------------------------

function placeGrad(grad: Tensor, { offset, total }: RnnAttrs["rnn_output"]): Tensor {
  const out = Tensor.empty([total]);
  const [gx, gy] = grid1d(total);
  runtime().launch(rnnPlaceKernel, {
    buffers: [grad.storage, out.storage],
    params: { total, offset, n: grad.size, gx },
    groups: [gx, gy],
  });
  return out;
}

/** Time steps per dispatch of a persistent run: all of them unless the loop budget says less. */
function stepsPerLaunch(plan: RnnPlan, gates: number, hidden: number, backward: boolean): number {
  const perStep = rnnStepLoopIterations(plan, gates, hidden, backward);
  return Math.max(1, Math.floor(runtime().loopBudget / perStep));
}

function sequenceGrad(
  cell: RnnCell,
  grad: Tensor,
  node: Node<SequenceAttrs>,
): (Tensor | null)[] {
  const a = node.attrs;
  const { batch: B, steps: T, inputs: I, hidden: H, backwards, stepOrder, returnSequences } = a;
  const G = GATES[cell];
  const lstm = cell === "lstm";
  const [x, kernel, recurrentKernel, hprev] = node.saved;
  const cprev = lstm ? node.saved[4] : null;
  const acts = node.saved[lstm ? 5 : 4];
  const wants = node.inputs.map((t) => t.requiresGrad);
  const rt = runtime();

  const fused = a.fusedInputs;
  // Input-side gate gradients [B·T, G·H] (an LSTM's recurrence reads them; a GRU's only serve dx,
  // and dW when it is not summed in the kernel).
  const inputGrad = lstm || wants[0] || !fused;
  const dgates = inputGrad ? Tensor.empty([B * T, G * H]) : null;
  const dhp = lstm ? dgates! : Tensor.empty([B * T, G * H]);
  const carryH = Tensor.empty([B, H]);
  const carryC = lstm ? Tensor.empty([B, H]) : null;
  const plan = rnnPlan(B, H, G, modeOverride ?? undefined);
  const kernelSpec = rnnBackwardKernel(cell, plan.tile, fused, plan.held);
  // The kernel's partial sums, one row per workgroup row: the bias gradient (LSTM [G·H], GRU
  // [2, G·H]), then with fused inputs the kernel gradient [I, G·H].
  const biasSize = (lstm ? 1 : 2) * G * H;
  const parts = Tensor.empty([plan.groups[1], biasSize + fused * G * H]);
  const { write: spareWrite } = rt.spares();
  // In the kernel's binding order (see rnnBackwardKernel).
  const buffers = [
    grad.storage,
    recurrentKernel.storage,
    acts.storage,
    (lstm ? cprev! : hprev).storage,
    dgates?.storage ?? spareWrite,
    ...(lstm ? [carryH.storage, carryC!.storage] : [dhp.storage, carryH.storage]),
    parts.storage,
    ...(fused ? [x.storage] : []),
  ];
  const wantsH0 = a.hasH0 && wants[4];
  // Steps T − 1 … 0, then step −1: dh0 = carry + dĝ_0·Uᵀ when h0 wants a gradient.
  const passes = wantsH0 ? T + 1 : T;
  const stepFlops = rnnFlops(cell, { batch: B, steps: 1, inputs: fused, hidden: H });
  // `count` passes from step `first` down.
  const launch = (first: number, count: number) =>
    rt.launch(kernelSpec, {
      buffers,
      params: {
        B,
        T,
        H,
        start: first + 1, // shifted so the dh0 pass (step −1) stays unsigned
        count,
        chunk: plan.chunk,
        backwards: +backwards,
        stepOrder: +stepOrder,
        seqGrad: +returnSequences,
        tail: returnSequences ? B * T * H : 0,
        accumulate: +(first !== T - 1),
        inputGrad: +inputGrad,
      },
      groups: plan.groups,
      flops: stepFlops * count,
    });
  if (plan.persistent) {
    const per = stepsPerLaunch(plan, G, H, true);
    for (let done = 0; done < passes; done += per) {
      launch(T - 1 - done, Math.min(per, passes - done));
    }
  } else {
    for (let s = T - 1; s >= T - passes; s--) launch(s, 1);
  }

  let dx: Tensor | null = null;
  if (wants[0]) {
    const dx2d = matmul(dgates!, kernel, { transB: true });
    dx = dx2d.reshape([B, T, I]);
    dx2d.dispose();
  }
  const dRecurrent = wants[2] ? matmul(hprev, dhp, { transA: true }) : null;
  // The partial sums over the workgroup rows (one row needs no pass).
  const sums = plan.groups[1] === 1 ? parts.reshape([parts.size]) : noGrad(() => sum(parts, 0));
  parts.dispose();
  let dKernel: Tensor | null = null;
  if (wants[1] && fused) {
    dKernel = copyOut(sums, biasSize, [I, G * H]);
  } else if (wants[1]) {
    const x2d = x.reshape([B * T, I]);
    dKernel = matmul(x2d, dgates!, { transA: true });
    x2d.dispose();
  }
  const biasShape = lstm ? [G * H] : [2, G * H];
  const dBias = !wants[3] ? null : fused ? copyOut(sums, 0, biasShape) : sums.reshape(biasShape);
  sums.dispose();
  dgates?.dispose();
  if (dhp !== dgates) dhp.dispose();
  const grads: (Tensor | null)[] = [dx, dKernel, dRecurrent, dBias];
  if (a.hasH0) {
    grads.push(wantsH0 ? carryH : null);
    if (!wantsH0) carryH.dispose();
  } else {
    carryH.dispose();
  }
  if (a.hasC0) grads.push(wants[5] ? carryC : null);
  if (carryC && !(a.hasC0 && wants[5])) carryC.dispose();
  return grads;
}

const rnnRules: Rules<RnnAttrs> = {
  gru_sequence: (grad, node) => sequenceGrad("gru", grad, node),
  lstm_sequence: (grad, node) => sequenceGrad("lstm", grad, node),
  rnn_output: (grad, node) => [placeGrad(grad, node.attrs)],
};
const record = recorder(rnnRules);
