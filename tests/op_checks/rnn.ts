import assert from "../assert.ts";
import { Tensor } from "../../engine/tensor.ts";
import { RNN_TUNING, rnnPlan } from "../../engine/shaders/rnn_plan.ts";
import {
  gruSequence,
  lstmSequence,
  type RnnSequenceOptions,
  setRnnMode,
} from "../../engine/ops/rnn.ts";
import { concat } from "../../engine/ops/shape.ts";
import { gruRef, lstmRef, type RnnRefOptions } from "../reference/rnn.ts";
import { checkOp, type Ref, ref } from "../helpers.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("rnn");

type Cell = "gru" | "lstm";
const GATES = { gru: 3, lstm: 4 };

interface Case {
  B: number;
  T: number;
  I: number;
  H: number;
}

function shapes(cell: Cell, { B, T, I, H }: Case) {
  const gh = GATES[cell] * H;
  return {
    x: [B, T, I],
    kernel: [I, gh],
    recurrent: [H, gh],
    bias: cell === "gru" ? [2, gh] : [gh],
    state: [B, H],
  };
}

const gpuOp = (cell: Cell) => cell === "gru" ? gruSequence : lstmSequence;
const refOp = (cell: Cell) => cell === "gru" ? gruRef : lstmRef;

/** Sequence (when returned), h and (LSTM) c flattened side by side: one output for checkOp. */
function packRef(cell: Cell, r: ReturnType<typeof gruRef>, withSeq: boolean): Ref {
  const parts = [
    ...(withSeq ? [r.sequence.data] : []),
    r.h.data,
    ...(cell === "lstm" ? [r.c.data] : []),
  ];
  const B = r.h.shape[0];
  const widths = parts.map((p) => p.length / B);
  const total = widths.reduce((a, b) => a + b, 0);
  const out = new Float64Array(B * total);
  for (let b = 0; b < B; b++) {
    let col = 0;
    parts.forEach((p, k) => {
      out.set(p.subarray(b * widths[k], (b + 1) * widths[k]), b * total + col);
      col += widths[k];
    });
  }
  return ref([B, total], out);
}

function packGpu(r: { sequence?: Tensor; h: Tensor; c?: Tensor }): Tensor {
  const B = r.h.shape[0];
  const parts = [...(r.sequence ? [r.sequence.reshape([B, -1])] : []), r.h, ...(r.c ? [r.c] : [])];
  return concat(parts, 1);
}

interface SeqCheck {
  cell: Cell;
  dims: Case;
  h0?: boolean;
  returnSequences?: boolean;
  goBackwards?: boolean;
  outputOrder?: "steps" | "time";
  forwardOnly?: boolean;
  /** Input magnitude (large values drive the gates into saturation). */
  xScale?: number;
  /** x takes no gradient (a first layer): a GRU then writes no input-side gate gradients. */
  xConstant?: boolean;
}

async function checkSequence(c: SeqCheck): Promise<void> {
  const s = shapes(c.cell, c.dims);
  const withSeq = c.returnSequences ?? true;
  const xScale = c.xScale ?? 1;
  const inputs = [
    { shape: s.x, low: -xScale, high: xScale, grad: !c.xConstant },
    { shape: s.kernel },
    { shape: s.recurrent, low: -0.5, high: 0.5 },
    { shape: s.bias },
    ...(c.h0 ? [{ shape: s.state }] : []),
    ...(c.h0 && c.cell === "lstm" ? [{ shape: s.state }] : []),
  ];
  const options = { goBackwards: c.goBackwards, outputOrder: c.outputOrder };
  await checkOp({
    // Direction and output order are index arithmetic in the same kernels: not a class.
    variant: [c.cell, launchMode, c.h0 ? "h0" : "", withSeq ? "sequence" : ""].join(" "),
    name: `${c.cell} ${JSON.stringify(c.dims)} ${
      JSON.stringify({ ...options, h0: c.h0, withSeq })
    }`,
    inputs,
    forwardOnly: c.forwardOnly,
    gpu: (x, k, u, b, h0, c0) =>
      packGpu(
        gpuOp(c.cell)(
          x,
          k,
          u,
          b,
          { ...options, h0, c0, returnSequences: withSeq } as RnnSequenceOptions,
        ),
      ),
    ref: (x, k, u, b, h0, c0) =>
      packRef(c.cell, refOp(c.cell)(x, k, u, b, { ...options, h0, c0 } as RnnRefOptions), withSeq),
    atol: 2e-5,
    rtol: 2e-4,
    gradAtol: 3e-4,
    gradRtol: 2e-3,
  });
}

// ---- forward ------------------------------------------------------------------------------

/** The launch mode `inBothModes` forces now ("auto": the engine's choice). */
let launchMode = "auto";

/** Runs `fn` with the recurrence forced to each launch mode (one workgroup, per-step grid). */
async function inBothModes(fn: () => Promise<void>): Promise<void> {
  for (const mode of ["persistent", "tiled"] as const) {
    setRnnMode(mode);
    launchMode = mode;
    try {
      await fn();
    } finally {
      setRnnMode(null);
      launchMode = "auto";
    }
  }
}

test("gru/lstm forward matches the float64 reference on odd sizes", async () => {
  const cases: Case[] = [
    { B: 3, T: 7, I: 5, H: 9 }, // H % 4 ≠ 0: one unit per lane
    { B: 1, T: 3, I: 2, H: 1 },
    { B: 37, T: 4, I: 3, H: 68 }, // vec4 lanes; several row blocks and unit tiles
    { B: 11, T: 3, I: 2, H: 70 },
  ];
  await inBothModes(async () => {
    for (const cell of ["gru", "lstm"] as const) {
      for (const dims of cases) {
        await checkSequence({ cell, dims, h0: true, forwardOnly: true });
        await checkSequence({ cell, dims, forwardOnly: true, returnSequences: false });
      }
    }
  });
});

test("goBackwards reads the input in reverse; steps or time output order", async () => {
  const dims = { B: 3, T: 7, I: 5, H: 9 };
  for (const cell of ["gru", "lstm"] as const) {
    for (const outputOrder of ["steps", "time"] as const) {
      await checkSequence({
        cell,
        dims,
        h0: true,
        goBackwards: true,
        outputOrder,
        forwardOnly: true,
      });
    }
  }
});

test("saturated gates stay finite and match the reference", async () => {
  for (const cell of ["gru", "lstm"] as const) {
    await checkSequence({ cell, dims: { B: 2, T: 9, I: 3, H: 8 }, xScale: 300, forwardOnly: true });
  }
});

// ---- gradients through time ---------------------------------------------------------------

test("gru gradients through time (x, kernels, bias, h0; T up to 20)", async () => {
  await inBothModes(() =>
    checkSequence({ cell: "gru", dims: { B: 2, T: 20, I: 3, H: 4 }, h0: true })
  );
  await inBothModes(() =>
    checkSequence({ cell: "gru", dims: { B: 9, T: 4, I: 2, H: 3 }, h0: true, goBackwards: true })
  );
  await checkSequence({ cell: "gru", dims: { B: 3, T: 5, I: 2, H: 5 }, returnSequences: false });
  await checkSequence({
    cell: "gru",
    dims: { B: 2, T: 6, I: 3, H: 3 },
    h0: true,
    goBackwards: true,
  });
});

test("lstm gradients through time (x, kernels, bias, h0, c0; T up to 20)", async () => {
  await inBothModes(() =>
    checkSequence({ cell: "lstm", dims: { B: 2, T: 20, I: 3, H: 4 }, h0: true })
  );
  await inBothModes(() =>
    checkSequence({ cell: "lstm", dims: { B: 9, T: 4, I: 2, H: 3 }, h0: true, goBackwards: true })
  );
  await checkSequence({ cell: "lstm", dims: { B: 3, T: 5, I: 2, H: 5 }, returnSequences: false });
  await checkSequence({
    cell: "lstm",
    dims: { B: 2, T: 6, I: 3, H: 3 },
    h0: true,
    goBackwards: true,
    outputOrder: "time",
  });
});

test("gru/lstm bias gradients summed over several workgroup rows and launches", async () => {
  // B = 19: two workgroup rows with 16-row blocks (three with 8), the last ragged; the per-step
  // grid adds every launch's partial sums to the last one's.
  await inBothModes(async () => {
    for (const cell of ["gru", "lstm"] as const) {
      await checkSequence({ cell, dims: { B: 19, T: 3, I: 2, H: 8 }, h0: true });
    }
  });
});

test("gru/lstm with the input projection inside the kernels (inputs ≤ fusedInputs)", async () => {
  // I = 1 and 2 are projected in the kernels (weight gradient summed there too), I = 3 by matmul;
  // x with and without a gradient (without, a GRU skips its input-side gate gradients).
  const { fusedInputs } = RNN_TUNING.get();
  assert.ok(fusedInputs >= 2, `fusedInputs ${fusedInputs}: the cases below expect 2`);
  await inBothModes(async () => {
    for (const cell of ["gru", "lstm"] as const) {
      for (const I of [1, 2, 3]) {
        const dims = { B: 19, T: 4, I, H: 8 };
        await checkSequence({ cell, dims, h0: true, xConstant: I === 1 });
        await checkSequence({ cell, dims: { ...dims, H: 5 }, returnSequences: false });
      }
    }
  });
});

test("gru/lstm gradients with several unit groups per lane (persistent)", async () => {
  // H = 36: 9 vec4 lane slots, two groups of 8 lanes; H = 17: 17 scalar slots, three groups of
  // 8. Part of the last group is clamped: it computes and skips its writes. H = 36 runs with the
  // recurrent weights read from storage and from each lane's private copy (held).
  const cases = [
    { H: 36, unitGroups: 2, groups: 2, heldWeights: 0 },
    { H: 36, unitGroups: 2, groups: 2, heldWeights: 512 },
    { H: 17, unitGroups: 3, groups: 3, heldWeights: 512 },
  ];
  setRnnMode("persistent");
  launchMode = "persistent";
  try {
    for (const { H, unitGroups, groups, heldWeights } of cases) {
      RNN_TUNING.set({ ...RNN_TUNING.get(), unitGroups, heldWeights });
      for (const cell of ["gru", "lstm"] as const) {
        const dims = { B: 3, T: 4, I: 2, H };
        const plan = rnnPlan(dims.B, H, GATES[cell], "persistent");
        assert.equal(plan.tile.groups, groups);
        // A vec4 layout holds its 2·G·36 weight vec4 within 512; scalar lanes never hold.
        assert.equal(plan.held, heldWeights && H % 4 === 0 ? H : 0);
        await checkSequence({ cell, dims, h0: true });
      }
    }
  } finally {
    RNN_TUNING.set(null);
    setRnnMode(null);
    launchMode = "auto";
  }
});

export const RNN_CHECKS: OpCheckTest[] = tests;
