import assert from "node:assert/strict";
import { Tensor } from "../engine/tensor.ts";
import { attention, type AttentionMask } from "../engine/ops/attention.ts";
import { assertClose, randomData, type Ref, ref, setup, testRng } from "./helpers.ts";
import {
  attentionRef,
  decoderAttentionRef,
  type RefMask,
  type RefScore,
  simpleAttentionRef,
} from "./reference/attention.ts";
import {
  DecoderAttention,
  MultiHeadAttention,
  ScaledDotProductAttention,
  SimpleAttention,
} from "../engine/nn/attention.ts";
import { runtime } from "../engine/runtime.ts";
import { Embedding, PositionEmbedding } from "../engine/nn/embedding.ts";
import {
  ATTENTION_CHECKS,
  B,
  D,
  DV,
  H,
  maskCases,
  paddingMask,
  SK,
  SQ,
} from "./op_checks/attention.ts";

await setup();

for (const check of ATTENTION_CHECKS) Deno.test(check.name, check.run);

Deno.test("attention weights: rows sum to 1, masked positions exactly 0, match the reference", async () => {
  const { rng, seed } = testRng();
  for (const m of maskCases(SK)) {
    const host = [[B, H, SQ, D], [B, H, SK, D], [B, H, SK, DV]].map((s) =>
      ref(s, randomData(s.reduce((a, b) => a * b), rng, -2, 2))
    );
    const [q, k, v] = host.map((r) => Tensor.from(r.data, r.shape));
    const mask = m.gpu();
    const { output, weights } = attention(q, k, v, { mask, returnWeights: true });
    const expected = attentionRef(host[0], host[1], host[2], m.ref);
    const w = await weights.data();
    const what = `${m.name} (seed ${seed})`;
    assertClose(w, expected.weights.data, { atol: 1e-6, rtol: 1e-5, what: `${what} weights` });
    assertClose(await output.data(), expected.output.data, { atol: 2e-6, what: `${what} output` });
    for (let r = 0; r < B * H * SQ; r++) {
      let total = 0;
      for (let j = 0; j < SK; j++) {
        const x = w[r * SK + j];
        if (expected.weights.data[r * SK + j] === 0) {
          assert.equal(x, 0, `${what} row ${r} key ${j}`);
        }
        total += x;
      }
      assert.ok(Math.abs(total - 1) <= 1e-6, `${what}: row ${r} sums to ${total}`);
    }
  }
});

Deno.test("attention: a fully masked row gives output 0, weights 0 and zero gradients", async () => {
  const { rng } = testRng();
  const sk = 5;
  // Row 1 of batch 1 has every key masked; batch 0 is unmasked.
  const maskData = new Array(2 * 3 * sk).fill(0);
  for (let j = 0; j < sk; j++) maskData[(1 * 3 + 1) * sk + j] = -Infinity;
  const mask = Tensor.from(maskData, [2, 1, 3, sk]);
  const q = Tensor.from(randomData(2 * 2 * 3 * 4, rng), [2, 2, 3, 4]).requireGrad();
  const k = Tensor.from(randomData(2 * 2 * sk * 4, rng), [2, 2, sk, 4]).requireGrad();
  const v = Tensor.from(randomData(2 * 2 * sk * 3, rng), [2, 2, sk, 3]).requireGrad();
  const { output, weights } = attention(q, k, v, { mask, returnWeights: true });
  const out = await output.data();
  const w = await weights.data();
  for (let h = 0; h < 2; h++) {
    const row = (1 * 2 + h) * 3 + 1;
    assert.deepEqual([...out.slice(row * 3, row * 3 + 3)], [0, 0, 0]);
    assert.deepEqual([...w.slice(row * sk, row * sk + sk)], new Array(sk).fill(0));
  }
  output.backward(Tensor.ones(output.shape));
  const dq = await q.grad!.data();
  for (let h = 0; h < 2; h++) {
    const row = (1 * 2 + h) * 3 + 1;
    assert.deepEqual([...dq.slice(row * 4, row * 4 + 4)], [0, 0, 0, 0]);
  }
  for (const g of [dq, await k.grad!.data(), await v.grad!.data()]) {
    assert.ok(g.every(Number.isFinite));
  }
});

Deno.test("attention: extreme scores (|q·k| ~ 1e4) stay finite and match the reference", async () => {
  const { rng, seed } = testRng();
  const shapes = [[1, 2, 9, 8], [1, 2, 21, 8], [1, 2, 21, 4]];
  const host: Ref[] = shapes.map((s, n) =>
    ref(s, randomData(s.reduce((a, b) => a * b), rng, n < 2 ? -40 : -1, n < 2 ? 40 : 1))
  );
  const [q, k, v] = host.map((r) => Tensor.from(r.data, r.shape).requireGrad());
  const out = attention(q, k, v, { mask: "causal" });
  const expected = attentionRef(host[0], host[1], host[2], "causal").output;
  assertClose(await out.data(), expected.data, { atol: 1e-4, what: `seed ${seed}` });
  out.backward(Tensor.ones(out.shape));
  for (const t of [q, k, v]) assert.ok((await t.grad!.data()).every(Number.isFinite));
});

Deno.test("attention: bad shapes and masks are rejected before any dispatch", () => {
  const q = Tensor.zeros([2, 3, 7, 5]);
  const k = Tensor.zeros([2, 3, 13, 5]);
  const v = Tensor.zeros([2, 3, 13, 6]);
  assert.throws(
    () => attention(Tensor.zeros([3, 7, 5]), k, v),
    /attention: q is f32 of shape \[3, 7, 5\]; expected f32 \[B, H, S, D\]/,
  );
  assert.throws(
    () => attention(q, Tensor.zeros([2, 3, 13, 4]), v),
    /do not fit; expected q \[B, H, Sq, D\]/,
  );
  assert.throws(() => attention(q, k, Tensor.zeros([2, 3, 12, 6])), /do not fit/);
  assert.throws(
    () => attention(q, k, v, { mask: Tensor.zeros([2, 2, 1, 13]) }),
    /mask is f32 of shape \[2, 2, 1, 13\]; expected f32 broadcastable to \[B, H, Sq, Sk\] = \[2, 3, 7, 13\]/,
  );
  assert.throws(
    () => attention(q, k, v, { mask: { window: 0 } }),
    /window 0; expected an integer ≥ 1/,
  );
  assert.throws(() => attention(q, k, v, { scale: NaN }), /scale NaN/);
});

// ---- layers -------------------------------------------------------------------------------

/**
 * Checks `gpu()` (built from `leaves`, which require grad) against `ref` on the leaves' host
 * values, and every leaf's gradient of Σ w·out against central differences of `ref`.
 */
async function checkLayer(
  name: string,
  leaves: Tensor[],
  gpu: () => Tensor,
  reference: (...xs: Ref[]) => Ref,
  { atol = 2e-6, gradAtol = 1e-4 } = {},
): Promise<void> {
  const { rng, seed } = testRng();
  const what = `${name} (seed ${seed})`;
  const hosts = await Promise.all(leaves.map(async (t) => ref(t.shape, await t.data())));
  const out = gpu();
  const expected = reference(...hosts);
  assert.deepEqual(out.shape, expected.shape, `${what} shape`);
  assertClose(await out.data(), expected.data, { atol, what: `${what} forward` });
  const w = randomData(out.size, rng);
  out.backward(Tensor.from(w, out.shape));
  const eps = 1e-6;
  const loss = (xs: Ref[]) => reference(...xs).data.reduce((s, y, i) => s + y * w[i], 0);
  for (let n = 0; n < leaves.length; n++) {
    const numeric = hosts[n].data.map((_, i) => {
      const shifted = (delta: number) =>
        hosts.map((h, m) => {
          const data = h.data.slice();
          if (m === n) data[i] += delta;
          return { shape: h.shape, data };
        });
      return (loss(shifted(eps)) - loss(shifted(-eps))) / (2 * eps);
    });
    assertClose(await leaves[n].grad!.data(), numeric, {
      atol: gradAtol,
      rtol: 1e-3,
      what: `${what} gradient of leaf ${n}`,
    });
  }
}

function randomTensor(shape: number[], low = -1, high = 1): Tensor {
  const { rng } = testRng();
  return Tensor.from(randomData(shape.reduce((a, b) => a * b, 1), rng, low, high), shape)
    .requireGrad();
}

Deno.test("SimpleAttention: shapes, parameter count, forward and gradients vs the reference", async () => {
  const [batch, steps, d] = [3, 7, 5];
  const layer = new SimpleAttention(steps, d);
  assert.equal(layer.trainableCount(), d + steps);
  const h = randomTensor([batch, steps, d], -2, 2);
  const [context, weights] = layer.forward(h);
  assert.deepEqual(context.shape, [batch, d]);
  assert.deepEqual(weights.shape, [batch, steps, 1]);
  const refs = [h, layer.weight, layer.bias];
  await checkLayer(
    "SimpleAttention context",
    refs,
    () => layer.forward(h)[0],
    (hr, wr, br) => simpleAttentionRef(hr, wr, br).context,
  );
  for (const t of refs) t.grad = null;
  await checkLayer(
    "SimpleAttention weights",
    refs,
    () => layer.forward(h)[1],
    (hr, wr, br) => simpleAttentionRef(hr, wr, br).weights,
  );
  assert.throws(
    () => layer.forward(randomTensor([batch, steps + 1, d])),
    /SimpleAttention: input \[3, 8, 5\], expected \[B, 7, 5\]/,
  );
});

Deno.test("SimpleAttention: a nonzero per-step bias broadcasts over the batch, not the features", async () => {
  const [batch, steps, d] = [4, 9, 6];
  const layer = new SimpleAttention(steps, d);
  const { rng } = testRng();
  const bias = randomData(steps, rng, -1, 1);
  runtime().upload(layer.bias.storage, Float32Array.from(bias));
  const h = randomTensor([batch, steps, d], -2, 2);
  await checkLayer(
    "SimpleAttention (bias ≠ 0) weights",
    [h, layer.weight, layer.bias],
    () => layer.forward(h)[1],
    (hr, wr, br) => simpleAttentionRef(hr, wr, br).weights,
  );
});

/** [B, T, D] reference operands as one-head [B, 1, T, D] (the same data). */
const oneHead = (r: Ref): Ref => ({ shape: [r.shape[0], 1, r.shape[1], r.shape[2]], data: r.data });

const sdpaMasks: { name: string; gpu: () => AttentionMask | undefined; ref: RefMask }[] = [
  { name: "no mask", gpu: () => undefined, ref: "none" },
  { name: "causal", gpu: () => "causal", ref: "causal" },
  { name: "window 2", gpu: () => ({ window: 2 }), ref: { window: 2 } },
  {
    name: "padding tensor [B, 1, Tk]",
    gpu: () => Tensor.from(paddingMask(SK), [2, 1, SK]),
    ref: ref([2, 1, 1, SK], paddingMask(SK)),
  },
];

for (const m of sdpaMasks) {
  Deno.test(`ScaledDotProductAttention ${m.name}: output, weights and gradients vs the reference`, async () => {
    const layer = new ScaledDotProductAttention();
    const q = randomTensor([2, SQ, D], -2, 2);
    const k = randomTensor([2, SK, D], -2, 2);
    const v = randomTensor([2, SK, DV]);
    const mask = m.gpu();
    const hosts = await Promise.all([q, k, v].map(async (t) => ref(t.shape, await t.data())));
    const expected = attentionRef(oneHead(hosts[0]), oneHead(hosts[1]), oneHead(hosts[2]), m.ref);
    const { output, weights } = layer.forward(q, k, v, { mask });
    assert.deepEqual(output.shape, [2, SQ, DV]);
    assert.deepEqual(weights.shape, [2, SQ, SK]);
    const w = Float64Array.from(await weights.data());
    assertClose(w, expected.weights.data, { atol: 1e-6, what: `${m.name} weights` });
    for (let row = 0; row < 2 * SQ; row++) {
      const total = w.subarray(row * SK, (row + 1) * SK).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(total - 1) < 1e-6, `${m.name} row ${row} sums to ${total}`);
    }
    await checkLayer(
      `ScaledDotProductAttention ${m.name}`,
      [q, k, v],
      () => layer.forward(q, k, v, { mask }).output,
      (qr, kr, vr) => {
        const out = attentionRef(oneHead(qr), oneHead(kr), oneHead(vr), m.ref).output;
        return { shape: [2, SQ, DV], data: out.data };
      },
    );
    if (mask instanceof Tensor) mask.dispose();
  });
}

Deno.test("ScaledDotProductAttention: bad shapes and masks are rejected", () => {
  const layer = new ScaledDotProductAttention();
  const q = Tensor.zeros([2, 3, 4]);
  const k = Tensor.zeros([2, 5, 4]);
  assert.throws(
    () => layer.forward(q, Tensor.zeros([2, 5, 3]), Tensor.zeros([2, 5, 4])),
    /ScaledDotProductAttention: q \[2, 3, 4\], k \[2, 5, 3\], v \[2, 5, 4\]; expected/,
  );
  assert.throws(
    () => layer.forward(q, k, Tensor.zeros([2, 4, 4])),
    /ScaledDotProductAttention: .*v \[2, 4, 4\]/,
  );
  assert.throws(
    () => layer.forward(q, k, k, { mask: Tensor.zeros([2, 1, 3, 5]) }),
    /ScaledDotProductAttention: mask \[2, 1, 3, 5\]; expected a tensor broadcastable to \[B, Tq, Tk\]/,
  );
});

for (const score of ["dot", "scaled", "learned-scalar", "general", "additive"] as const) {
  Deno.test(`DecoderAttention ${score}: context and weights vs the reference, gradients`, async () => {
    const [batch, tq, tk] = [2, 3, 6];
    const dq = score === "general" || score === "additive" ? 4 : 5;
    const dv = 5;
    const layer = new DecoderAttention(dq, dv, { score, units: 3 });
    const query = randomTensor([batch, tq, dq]);
    const values = randomTensor([batch, tk, dv]);
    const params = layer.parameters();
    const refScore = (p: Ref[]): RefScore =>
      score === "general"
        ? { kind: "general", w: p[0] }
        : score === "additive"
        ? { kind: "additive", wq: p[0], wk: p[1], v: p[2] }
        : {
          kind: "dot",
          scale: score === "scaled" ? 1 / Math.sqrt(dv) : score === "dot" ? 1 : p[0].data[0],
        };
    await checkLayer(
      `DecoderAttention ${score} context`,
      [query, values, ...params],
      () => layer.forward(query, values).context,
      (qr, vr, ...p) => decoderAttentionRef(qr, vr, refScore(p)).context,
    );
    const step = layer.forward(randomTensor([batch, dq]), values);
    assert.deepEqual(step.context.shape, [batch, dv]);
    assert.deepEqual(step.weights.shape, [batch, tk]);
  });
}

Deno.test("DecoderAttention: weights vs the reference, bad shapes", async () => {
  const layer = new DecoderAttention(4, 4, { score: "scaled" });
  const { rng } = testRng();
  const qHost = randomData(2 * 3 * 4, rng);
  const vHost = randomData(2 * 5 * 4, rng);
  const values = Tensor.from(vHost, [2, 5, 4]);
  const { weights } = layer.forward(Tensor.from(qHost, [2, 3, 4]), values);
  const expected = decoderAttentionRef(ref([2, 3, 4], qHost), ref([2, 5, 4], vHost), {
    kind: "dot",
    scale: 0.5,
  });
  assertClose(await weights.data(), expected.weights.data, { atol: 1e-6 });
  assert.throws(
    () => layer.forward(Tensor.zeros([2, 3, 5]), values),
    /DecoderAttention: query \[2, 3, 5\], values \[2, 5, 4\]/,
  );
  assert.throws(() => new DecoderAttention(4, 5, { score: "dot" }), /needs queryDim = valueDim/);
});

/** Reference multi-head attention from the layer's own parameters. */
function multiHeadRef(
  mha: MultiHeadAttention,
  p: Ref[],
  x: Ref,
  y: Ref,
  mask: RefMask,
): Ref {
  const [wq, bq, wk, bk, wv, bv, wo, bo] = p;
  const project = (input: Ref, w: Ref, b: Ref): Ref => {
    const [n, t, f] = input.shape;
    const o = w.shape[1];
    const data = new Float64Array(n * t * o);
    for (let r = 0; r < n * t; r++) {
      for (let j = 0; j < o; j++) {
        let s = b.data[j];
        for (let i = 0; i < f; i++) s += input.data[r * f + i] * w.data[i * o + j];
        data[r * o + j] = s;
      }
    }
    return { shape: [n, t, o], data };
  };
  const split = (z: Ref, d: number): Ref => {
    const [n, t] = z.shape;
    const h = mha.numHeads;
    const data = new Float64Array(z.data.length);
    for (let b = 0; b < n; b++) {
      for (let s = 0; s < t; s++) {
        for (let hh = 0; hh < h; hh++) {
          for (let e = 0; e < d; e++) {
            data[((b * h + hh) * t + s) * d + e] = z.data[(b * t + s) * h * d + hh * d + e];
          }
        }
      }
    }
    return { shape: [n, h, t, d], data };
  };
  const heads = attentionRef(
    split(project(x, wq, bq), mha.keyDim),
    split(project(y, wk, bk), mha.keyDim),
    split(project(y, wv, bv), mha.valueDim),
    mask,
  ).output;
  const [n, h, t, d] = heads.shape;
  const merged = new Float64Array(heads.data.length);
  for (let b = 0; b < n; b++) {
    for (let hh = 0; hh < h; hh++) {
      for (let s = 0; s < t; s++) {
        for (let e = 0; e < d; e++) {
          merged[(b * t + s) * h * d + hh * d + e] = heads.data[((b * h + hh) * t + s) * d + e];
        }
      }
    }
  }
  return project({ shape: [n, t, h * d], data: merged }, wo, bo);
}

Deno.test("MultiHeadAttention: self-attention (causal) and cross-attention vs the reference", async () => {
  const mha = new MultiHeadAttention(6, 2, { valueDim: 5 });
  const params = mha.parameters();
  assert.equal(params.length, 8);
  const x = randomTensor([2, 5, 6]);
  const memory = randomTensor([2, 9, 6]);
  await checkLayer(
    "MultiHeadAttention causal self-attention",
    [x, ...params],
    () => mha.forward(x, undefined, undefined, { mask: "causal" }),
    (xr, ...p) => multiHeadRef(mha, p, xr, xr, "causal"),
  );
  for (const t of [x, ...params]) t.grad = null;
  const paramRefs = await Promise.all(params.map(async (t) => ref(t.shape, await t.data())));
  await checkLayer(
    "MultiHeadAttention cross-attention",
    [x, memory],
    () => mha.forward(x, memory),
    (xr, mr) => multiHeadRef(mha, paramRefs, xr, mr, "none"),
  );
  const { output, weights } = mha.forwardWithWeights(x, memory);
  assert.deepEqual(output.shape, [2, 5, 6]);
  assert.deepEqual(weights.shape, [2, 2, 5, 9]);
  assert.throws(() => mha.forward(Tensor.zeros([2, 5])), /MultiHeadAttention: query \[2, 5\]/);
  assert.throws(() => new MultiHeadAttention(6, 4), /dModel 6 is not divisible by numHeads 4/);
});

Deno.test("Embedding: lookup, Keras init range, gradient accumulates repeated ids", async () => {
  const table = new Embedding(7, 3);
  const w = await table.weight.data();
  assert.ok(w.every((x) => x >= -0.05 && x < 0.05));
  const ids = Tensor.from([2, 5, 2, 2, 0, 6], [2, 3], "i32");
  const out = table.forward(ids);
  assert.deepEqual(out.shape, [2, 3, 3]);
  const got = await out.data();
  [2, 5, 2, 2, 0, 6].forEach((id, n) => {
    assert.deepEqual([...got.slice(n * 3, n * 3 + 3)], [...w.slice(id * 3, id * 3 + 3)]);
  });
  const { rng } = testRng();
  const g = randomData(18, rng);
  out.backward(Tensor.from(g, out.shape));
  const expected = new Float64Array(21);
  [2, 5, 2, 2, 0, 6].forEach((id, n) => {
    for (let e = 0; e < 3; e++) expected[id * 3 + e] += g[n * 3 + e];
  });
  assertClose(await table.weight.grad!.data(), expected);
  assert.throws(() => table.forward(Tensor.zeros([2])), /Embedding: ids of shape \[2\] are f32/);
});

Deno.test("PositionEmbedding: rows of the table, broadcast add, gradient lands on those rows", async () => {
  const positions = new PositionEmbedding(10, 4);
  assert.equal(positions.trainableCount(), 40);
  const table = await positions.weight.data();
  const p = positions.forward(3, 2);
  assert.deepEqual(p.shape, [3, 4]);
  assert.deepEqual([...await p.data()], [...table.slice(8, 20)]);
  const x = Tensor.zeros([2, 3, 4]);
  const y = x.add(p);
  y.backward(Tensor.ones(y.shape));
  const grad = await positions.weight.grad!.data();
  assert.deepEqual([...grad], Array.from({ length: 40 }, (_, i) => (i >= 8 && i < 20 ? 2 : 0)));
  assert.throws(() => positions.forward(9, 2), /PositionEmbedding: positions 2 … 10 requested/);
});
