import assert from "node:assert/strict";
import { Tensor, tidy } from "../engine/tensor.ts";
import { Rng } from "../engine/random.ts";
import { gruSequence, lstmSequence, setRnnMode } from "../engine/ops/rnn.ts";
import { mse } from "../engine/ops/loss.ts";
import { Adam } from "../engine/optim/optimizers.ts";
import { Linear } from "../engine/nn/linear.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import {
  Bidirectional,
  GRU,
  GRUCell,
  LSTM,
  LSTMCell,
  orthogonal,
  toKerasGateOrder,
} from "../engine/nn/rnn.ts";
import { gruRef, lstmRef, type RnnRefOptions } from "./reference/rnn.ts";
import {
  assertClose,
  randomData,
  type Ref,
  ref,
  settleGarbage,
  setup,
  testRng,
} from "./helpers.ts";
import { RNN_CHECKS } from "./op_checks/rnn.ts";

const rt = await setup();

for (const check of RNN_CHECKS) Deno.test(check.name, check.run);

Deno.test("fixtures: 2-step GRU (reset_after) and LSTM with hand-set weights", async () => {
  // Expected values from an independent NumPy implementation of the Keras equations.
  const x = Tensor.from([0.5, -1.0, 0.25, 0.75], [1, 2, 2]);
  const h0 = Tensor.from([0.3, -0.2], [1, 2]);
  const gru = gruSequence(
    x,
    Tensor.from([0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, 0.8, -0.9, 0.05, 0.15, -0.25], [2, 6]),
    Tensor.from([0.2, 0.1, -0.3, 0.4, 0.5, -0.6, -0.1, 0.3, 0.2, -0.4, 0.6, 0.5], [2, 6]),
    Tensor.from(
      [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, -0.06, -0.05, -0.04, -0.03, -0.02, -0.01],
      [2, 6],
    ),
    { h0 },
  );
  const gruExpected = [
    -0.10966187212399608,
    0.24324697147497892,
    -0.042281165184328694,
    0.19585166471461554,
  ];
  assertClose(await gru.sequence!.data(), gruExpected, { atol: 1e-6, what: "GRU fixture" });
  const lstmWeights = [
    [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.2, -0.1, 0.7, 0.8, -0.9, 0.05, 0.15, -0.25, 0.35, 0.45],
    [0.2, 0.1, -0.3, 0.4, 0.5, -0.6, 0.1, 0.2, -0.1, 0.3, 0.2, -0.4, 0.6, 0.5, -0.2, 0.3],
    [0.01, 0.02, 1.0, 1.0, 0.05, 0.06, -0.01, -0.02],
  ];
  const lstm = lstmSequence(
    x,
    Tensor.from(lstmWeights[0], [2, 8]),
    Tensor.from(lstmWeights[1], [2, 8]),
    Tensor.from(lstmWeights[2], [8]),
    { h0, c0: Tensor.from([-0.5, 0.4], [1, 2]) },
  );
  const lstmExpected = [
    -0.22607787443380922,
    0.1445475091253181,
    -0.18120502050165396,
    0.2385153813389514,
  ];
  assertClose(await lstm.sequence!.data(), lstmExpected, { atol: 1e-6, what: "LSTM fixture" });
  assertClose(await lstm.c.data(), [-0.33408776352925285, 0.44390011556950926], {
    atol: 1e-6,
    what: "LSTM fixture c",
  });
  // The float64 reference reproduces the same numbers.
  const r = gruRef(
    ref([1, 2, 2], [0.5, -1.0, 0.25, 0.75]),
    ref([2, 6], [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, 0.8, -0.9, 0.05, 0.15, -0.25]),
    ref([2, 6], [0.2, 0.1, -0.3, 0.4, 0.5, -0.6, -0.1, 0.3, 0.2, -0.4, 0.6, 0.5]),
    ref([2, 6], [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, -0.06, -0.05, -0.04, -0.03, -0.02, -0.01]),
    { h0: ref([1, 2], [0.3, -0.2]) },
  );
  assertClose(r.sequence.data, gruExpected, { atol: 1e-12, what: "GRU reference fixture" });
});

Deno.test("PyTorch gate order converts to Keras order", () => {
  // GRU: PyTorch blocks r, z, n → Keras z, r, h.
  assert.deepEqual([...toKerasGateOrder("gru", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 2)], [
    3,
    4,
    1,
    2,
    5,
    6,
    9,
    10,
    7,
    8,
    11,
    12,
  ]);
  assert.deepEqual([...toKerasGateOrder("lstm", [1, 2, 3, 4], 1)], [1, 2, 3, 4]);
});

// ---- layers -------------------------------------------------------------------------------

async function host(t: Tensor, shape: readonly number[]): Promise<Ref> {
  return ref(shape, await t.data());
}

async function layerRef(layer: GRU | LSTM, x: Ref, options: RnnRefOptions = {}) {
  const f = layer instanceof GRU ? gruRef : lstmRef;
  return f(
    x,
    await host(layer.kernel, layer.kernel.shape),
    await host(layer.recurrentKernel, layer.recurrentKernel.shape),
    await host(layer.bias, layer.bias.shape),
    options,
  );
}

Deno.test("layers: Keras init, parameter names and counts", async () => {
  const rng = new Rng(3);
  const gru = new GRU(1, 64, { rng });
  assert.deepEqual(gru.namedParameters().map(([n, t]) => [n, t.shape]), [
    ["kernel", [1, 192]],
    ["recurrent_kernel", [64, 192]],
    ["bias", [2, 192]],
  ]);
  assert.equal(gru.trainableCount(), 12864); // Keras GRU(64) on 1 feature (TP5 §1.4)
  const lstm = new LSTM(3, 5, { rng });
  const bias = await lstm.bias.data();
  assert.deepEqual([...bias], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, ...new Array(10).fill(0)]);
  // Orthogonal recurrent kernel: U·Uᵀ = I (rows orthonormal for [H, G·H]).
  for (const [rows, cols] of [[5, 20], [7, 3]]) {
    const q = await orthogonal(rows, cols, rng).data();
    const n = Math.min(rows, cols);
    const [a, m] = rows <= cols ? [rows, cols] : [cols, rows];
    const at = (i: number, k: number) => rows <= cols ? q[i * cols + k] : q[k * cols + i];
    for (let i = 0; i < a; i++) {
      for (let j = 0; j < n; j++) {
        let d = 0;
        for (let k = 0; k < m; k++) d += at(i, k) * at(j, k);
        assert.ok(Math.abs(d - (i === j ? 1 : 0)) < 1e-5, `orthogonal ${rows}×${cols}: ${d}`);
      }
    }
  }
});

Deno.test("GRU/LSTM layers: returnSequences, run() state, initial state", async () => {
  const { rng } = testRng();
  const B = 3, T = 7, I = 5, H = 9;
  const xData = randomData(B * T * I, rng);
  const x = Tensor.from(xData, [B, T, I]);
  for (const Layer of [GRU, LSTM]) {
    const seqLayer = new Layer(I, H, { returnSequences: true, rng });
    const h0 = randomData(B * H, rng), c0 = randomData(B * H, rng);
    const initial = {
      h: Tensor.from(h0, [B, H]),
      c: Layer === LSTM ? Tensor.from(c0, [B, H]) : undefined,
    };
    const run = seqLayer.run(x, initial);
    const expected = await layerRef(seqLayer, ref([B, T, I], xData), {
      h0: ref([B, H], h0),
      c0: Layer === LSTM ? ref([B, H], c0) : undefined,
    });
    assert.deepEqual(run.output.shape, [B, T, H]);
    assertClose(await run.output.data(), expected.sequence.data, { what: `${Layer.name} seq` });
    assertClose(await run.h.data(), expected.h.data, { what: `${Layer.name} h` });
    if (run.c) assertClose(await run.c.data(), expected.c.data, { what: `${Layer.name} c` });
    const last = new Layer(I, H, { rng });
    const lastExpected = await layerRef(last, ref([B, T, I], xData));
    const y = last.forward(x);
    assert.deepEqual(y.shape, [B, H]);
    assertClose(await y.data(), lastExpected.h.data, { what: `${Layer.name} last` });
  }
});

Deno.test("Bidirectional (concat, sum) matches two reference passes; stacked layers", async () => {
  const { rng } = testRng();
  const B = 3, T = 6, I = 4, H = 5;
  const xData = randomData(B * T * I, rng);
  const x = Tensor.from(xData, [B, T, I]);
  const xr = ref([B, T, I], xData);
  for (const Layer of [GRU, LSTM]) {
    for (const mergeMode of ["concat", "sum"] as const) {
      for (const returnSequences of [true, false]) {
        const bi = new Bidirectional(new Layer(I, H, { returnSequences, rng }), { mergeMode, rng });
        const f = await layerRef(bi.forwardLayer as GRU | LSTM, xr);
        const b = await layerRef(bi.backwardLayer as GRU | LSTM, xr, {
          goBackwards: true,
          outputOrder: "time",
        });
        const [fo, bo] = returnSequences ? [f.sequence, b.sequence] : [f.h, b.h];
        const width = fo.data.length / B / (returnSequences ? T : 1);
        const rows = fo.data.length / width;
        const expected = mergeMode === "sum"
          ? fo.data.map((v, i) => v + bo.data[i])
          : Float64Array.from({ length: 2 * fo.data.length }, (_, i) => {
            const row = Math.floor(i / (2 * width)), col = i % (2 * width);
            return col < width ? fo.data[row * width + col] : bo.data[row * width + col - width];
          });
        assert.equal(rows * width, fo.data.length);
        const y = bi.forward(x);
        assert.deepEqual(
          y.shape,
          [B, ...(returnSequences ? [T] : []), mergeMode === "concat" ? 2 * H : H],
        );
        assertClose(await y.data(), expected, { what: `Bidirectional ${Layer.name} ${mergeMode}` });
      }
    }
  }
  // Stacked: Sequential of sequence layers, last one returning its final output.
  const l1 = new LSTM(I, H, { returnSequences: true, rng });
  const l2 = new GRU(H, 4, { rng });
  const y = new Sequential(l1, l2).forward(x);
  const mid = await layerRef(l1, xr);
  const expected = await layerRef(l2, mid.sequence);
  assertClose(await y.data(), expected.h.data, { what: "stacked LSTM→GRU" });
});

Deno.test("cells match the sequence op step by step (values and gradients)", async () => {
  const { rng } = testRng();
  const B = 3, T = 5, I = 4, H = 6;
  const xData = randomData(B * T * I, rng);
  for (const cellName of ["gru", "lstm"] as const) {
    const layer = cellName === "gru"
      ? new GRU(I, H, { returnSequences: true, rng })
      : new LSTM(I, H, { returnSequences: true, rng });
    const cell = cellName === "gru" ? new GRUCell(I, H, { rng }) : new LSTMCell(I, H, { rng });
    // Same weights in both.
    for (const [name, p] of cell.namedParameters()) {
      const src = layer.namedParameters().find(([n]) => n === name)![1];
      rt.copy(src.storage, 0, p.storage, 0, p.size * 4);
    }
    const x = Tensor.from(xData, [B, T, I]);
    const seq = layer.forward(x);
    const seqData = await seq.data();
    const loss1 = seq.sum();
    loss1.backward();
    const gradSeq = await layer.kernel.grad!.data();

    let state: { h: Tensor; c?: Tensor } | undefined;
    const outputs: Tensor[] = [];
    for (let t = 0; t < T; t++) {
      const xt = Tensor.from(xData.filter((_, i) => Math.floor(i / I) % T === t), [B, I]);
      if (cell instanceof GRUCell) {
        const h = cell.forward(xt, state?.h);
        state = { h };
      } else {
        state = cell.forward(xt, state);
      }
      outputs.push(state.h);
    }
    for (let t = 0; t < T; t++) {
      const step = await outputs[t].data();
      const expected = Float64Array.from(
        { length: B * H },
        (_, i) => seqData[(Math.floor(i / H) * T + t) * H + (i % H)],
      );
      assertClose(step, expected, { what: `${cellName} cell step ${t}` });
    }
    const loss2 = outputs.reduce((acc, o) => acc.add(o.sum()), Tensor.scalar(0));
    loss2.backward();
    assertClose(await cell.kernel.grad!.data(), gradSeq, {
      atol: 1e-5,
      what: `${cellName} cell kernel gradient`,
    });
  }
});

// ---- learning -----------------------------------------------------------------------------

Deno.test("a GRU and an LSTM learn the sum of a sequence of 10 numbers", async () => {
  for (const Layer of [GRU, LSTM]) {
    const rng = new Rng(7);
    const B = 32, T = 10;
    const rnn = new Layer(1, 16, { rng });
    const head = new Linear(16, 1, { rng });
    const opt = new Adam([...rnn.parameters(), ...head.parameters()], { lr: 0.02 });
    const batch = () => {
      const x = new Float32Array(B * T).map(() => rng.uniform(-1, 1));
      const y = new Float32Array(B).map((_, b) =>
        x.slice(b * T, (b + 1) * T).reduce((s, v) => s + v, 0) / 3
      );
      return [Tensor.from(x, [B, T, 1]), Tensor.from(y, [B, 1])];
    };
    let first = 0, last = 0;
    for (let step = 0; step < 200; step++) {
      const loss = tidy(() => {
        const [x, y] = batch();
        const l = mse(head.forward(rnn.forward(x)), y);
        opt.zeroGrad();
        l.backward();
        opt.step();
        return l;
      });
      if (step === 0) first = await loss.item();
      if (step === 199) last = await loss.item();
      loss.dispose();
    }
    // Variance of the target is 10/3/9 ≈ 0.37: predicting the mean scores that.
    assert.ok(first > 0.2, `${Layer.name}: initial loss ${first}`);
    assert.ok(last < 0.02, `${Layer.name}: loss ${first} → ${last}, expected < 0.02`);
  }
});

Deno.test("training steps keep live memory flat", async () => {
  const rng = new Rng(1);
  const lstm = new LSTM(2, 8, { returnSequences: true, rng });
  const opt = new Adam(lstm.parameters());
  const x = Tensor.uniform([4, 6, 2], -1, 1, rng).keep();
  const step = () =>
    tidy(() => {
      const loss = lstm.forward(x, { h: Tensor.zeros([4, 8]), c: Tensor.zeros([4, 8]) }).mean();
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
  for (let i = 0; i < 3; i++) step();
  await rt.sync();
  await settleGarbage(); // earlier tests' garbage goes now, not in the middle of the count
  const baseline = rt.poolStats().liveBytes;
  for (let i = 0; i < 20; i++) {
    step();
    assert.equal(rt.poolStats().liveBytes, baseline, `live bytes moved at step ${i}`);
  }
});

// ---- errors -------------------------------------------------------------------------------

Deno.test("a persistent run past the loop budget: several dispatches, the tiled results", async () => {
  // GRU over 3,000 steps (persistent: 2 forward, 3 backward dispatches on lavapipe) and an LSTM
  // whose bias gradient sums 70 × 1,000 rows: one dispatch, or one lane per column looping over
  // the rows, would pass lavapipe's loop budget.
  const cases = [
    { cell: "gru", B: 2, T: 3000, I: 3, H: 9 },
    { cell: "lstm", B: 70, T: 1000, I: 2, H: 8 },
  ] as const;
  for (const { cell, B, T, I, H } of cases) {
    const G = cell === "gru" ? 3 : 4;
    const rng = new Rng(5);
    const data = (shape: number[], scale: number) =>
      new Float32Array(shape.reduce((a, b) => a * b)).map(() => scale * (rng.next() - 0.5));
    const shapes: [number[], number][] = [
      [[B, T, I], 1],
      [[I, G * H], 0.6],
      [[H, G * H], 0.6],
      [cell === "gru" ? [2, G * H] : [G * H], 0.2],
    ];
    const inputs = shapes.map(([shape, scale]) => [shape, data(shape, scale)] as const);
    const run = async (mode: "persistent" | "tiled") => {
      setRnnMode(mode);
      try {
        const [x, k, r, b] = inputs.map(([shape, v]) => Tensor.from(v, shape).requireGrad());
        const seq = (cell === "gru" ? gruSequence : lstmSequence)(x, k, r, b).sequence!;
        seq.mul(seq).sum().backward();
        const out = [
          await seq.data(),
          ...await Promise.all([x, k, r, b].map((t) => t.grad!.data())),
        ];
        for (const t of [x, k, r, b, seq]) t.dispose();
        return out as Float32Array[];
      } finally {
        setRnnMode(null);
      }
    };
    const [tiled, persistent] = [await run("tiled"), await run("persistent")];
    persistent.forEach((values, i) =>
      assertClose(values, tiled[i], { atol: 1e-4, rtol: 1e-3, what: `${cell} output ${i}` })
    );
  }
});

Deno.test("bad shapes are rejected with the op and the shapes", () => {
  const x = Tensor.zeros([2, 3, 4]);
  const k = Tensor.zeros([4, 15]), u = Tensor.zeros([5, 15]), b = Tensor.zeros([2, 15]);
  assert.throws(
    () => gruSequence(Tensor.zeros([3, 4]), k, u, b),
    /gruSequence: x is f32 of shape \[3, 4\]/,
  );
  assert.throws(
    () => gruSequence(x, Tensor.zeros([3, 15]), u, b),
    /gruSequence: kernel is f32 of shape \[3, 15\]; expected f32 of shape \[4, 15\]/,
  );
  assert.throws(() => gruSequence(x, k, Tensor.zeros([5, 20]), b), /recurrentKernel .*\[5, 20\]/);
  assert.throws(() => gruSequence(x, k, u, Tensor.zeros([15])), /bias .*\[15\].*\[2, 15\]/);
  assert.throws(
    () => gruSequence(x, k, u, b, { h0: Tensor.zeros([3, 5]) }),
    /h0 .*\[3, 5\].*\[2, 5\]/,
  );
  assert.throws(() => gruSequence(x, k, u, b, { c0: Tensor.zeros([2, 5]) }), /no cell state/);
  assert.throws(
    () => lstmSequence(x, Tensor.zeros([4, 20]), Tensor.zeros([5, 20]), Tensor.zeros([2, 20])),
    /lstmSequence: bias .*\[2, 20\]; expected f32 of shape \[20\]/,
  );
  assert.throws(
    () => new GRU(4, 5).forward(Tensor.zeros([2, 3, 7])),
    /kernel .*\[4, 15\].*\[7, 15\]/,
  );
  assert.throws(
    () => new LSTMCell(4, 5).forward(Tensor.zeros([2, 3, 4])),
    /LSTMCell.step: x has shape/,
  );
  assert.throws(() => new GRU(0, 5), /GRU: inputSize 0/);
  assert.throws(
    () => new Bidirectional(new GRU(2, 3), { mergeMode: "mul" as "sum" }),
    /mergeMode 'mul'/,
  );
});
