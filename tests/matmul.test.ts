import assert from "node:assert/strict";
import { matmul } from "../engine/ops/matmul.ts";
import { type MatmulActivation } from "../engine/shaders/matmul.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { assertClose, randomData, ref, settleGarbage, setup, testRng } from "./helpers.ts";
import { matmulRef } from "./reference/matmul.ts";
import { MATMUL_CHECKS, shapes, TRANSPOSES, underEachLayout } from "./op_checks/matmul.ts";

const rt = await setup();

for (const check of MATMUL_CHECKS) Deno.test(check.name, check.run);

/**
 * Shapes too big for finite differences: the gradients of Σ W⊙(op(A)·op(B)) are W·op(B)ᵀ and
 * op(A)ᵀ·W, computed here by plain loops and laid out like A and B.
 */
async function checkLargeGradients(
  m: number,
  k: number,
  n: number,
  transA: boolean,
  transB: boolean,
) {
  const { rng, seed } = testRng();
  const s = shapes(m, k, n, transA, transB);
  const ra = ref(s.a, randomData(m * k, rng));
  const rb = ref(s.b, randomData(k * n, rng));
  const w = randomData(m * n, rng);
  const a = Tensor.from(ra.data, s.a).requireGrad();
  const b = Tensor.from(rb.data, s.b).requireGrad();
  const out = matmul(a, b, { transA, transB });
  const what = `matmul ${m}×${k}×${n} transA ${transA} transB ${transB} (seed ${seed})`;
  assertClose(await out.data(), matmulRef(ra, rb, { transA, transB }).data, {
    atol: 1e-4,
    what: `${what} forward`,
  });
  out.backward(Tensor.from(w, [m, n]));
  const atA = (i: number, p: number) => transA ? p * m + i : i * k + p;
  const atB = (p: number, j: number) => transB ? j * k + p : p * n + j;
  const dA = new Float64Array(m * k), dB = new Float64Array(k * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      for (let j = 0; j < n; j++) {
        dA[atA(i, p)] += w[i * n + j] * rb.data[atB(p, j)];
        dB[atB(p, j)] += ra.data[atA(i, p)] * w[i * n + j];
      }
    }
  }
  assertClose(await a.grad!.data(), dA, { atol: 1e-4, what: `${what} dA` });
  assertClose(await b.grad!.data(), dB, { atol: 1e-4, what: `${what} dB` });
  for (const t of [a, b, out]) t.dispose();
}

Deno.test("matmul: 67×129×31 gradients in every transpose combination", async () => {
  await underEachLayout(async () => {
    for (const [transA, transB] of TRANSPOSES) {
      await checkLargeGradients(67, 129, 31, transA, transB);
    }
  });
});

Deno.test("matmul: 256×256×256 (large tile) against the reference at tight tolerance", async () => {
  await underEachLayout(async () => {
    for (const [transA, transB] of [[false, false], [true, true]]) {
      await checkLargeGradients(256, 256, 256, transA, transB);
    }
  });
});

Deno.test("matmul: the same tensor on both sides gets both gradients (x·xᵀ)", async () => {
  const { rng } = testRng();
  const xs = randomData(15, rng), w = randomData(9, rng);
  const x = Tensor.from(xs, [3, 5]).requireGrad();
  matmul(x, x, { transB: true }).backward(Tensor.from(w, [3, 3]));
  // d/dx Σ w⊙(x·xᵀ) = (w + wᵀ)·x
  const expected = new Float64Array(15);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      for (let p = 0; p < 5; p++) {
        expected[i * 5 + p] += (w[i * 3 + j] + w[j * 3 + i]) * xs[j * 5 + p];
      }
    }
  }
  assertClose(await x.grad!.data(), expected);
});

Deno.test("matmul: K = 0 gives act(bias) and a bias gradient; empty outputs dispatch nothing", async () => {
  const a = Tensor.from([], [3, 0]).requireGrad();
  const b = Tensor.from([], [0, 2]).requireGrad();
  const bias = Tensor.from([-1, 2], [2]).requireGrad();
  const out = matmul(a, b, { bias, activation: "relu" });
  assertClose(await out.data(), [0, 2, 0, 2, 0, 2]);
  out.backward(Tensor.ones([3, 2]));
  assertClose(await bias.grad!.data(), [0, 3]);
  assert.deepEqual(a.grad!.shape, [3, 0]);
  const [x, y] = [Tensor.from([], [0, 4]), Tensor.uniform([4, 5])];
  rt.poison = false; // poisoning the (empty) output would count as a dispatch
  const before = rt.poolStats().dispatches;
  const empty = matmul(x, y);
  assert.equal(rt.poolStats().dispatches, before);
  rt.poison = true;
  assert.deepEqual(empty.shape, [0, 5]);
});

Deno.test("matmul: more than 65535 batches are split across dispatches", async () => {
  const { rng } = testRng();
  const batches = 70000;
  const ra = ref([batches, 1, 2], randomData(batches * 2, rng));
  const rb = ref([batches, 2, 1], randomData(batches * 2, rng));
  const [a, b] = [Tensor.from(ra.data, ra.shape), Tensor.from(rb.data, rb.shape)];
  const product = matmul(a, b);
  const got = await product.data();
  // Freed here, not by the garbage collector in the middle of the next test's memory count.
  for (const t of [a, b, product]) t.dispose();
  assertClose(got, matmulRef(ra, rb).data, { atol: 1e-6 });
});

Deno.test("matmul: a training step's memory stays flat (saved tensors are released)", async () => {
  const w = Tensor.uniform([15, 7], -1, 1).requireGrad().keep();
  const bias = Tensor.zeros([7]).requireGrad().keep();
  const x = Tensor.uniform([4, 3, 15], -1, 1).keep();
  // Earlier tests' garbage is released now, not by a collection in the middle of the count; the
  // steps' own tensors are released by tidy, never by the collector.
  await settleGarbage();
  const live: number[] = [];
  for (let step = 0; step < 4; step++) {
    tidy(() => {
      const y = matmul(x, w, { bias, activation: "gelu" });
      y.backward(Tensor.ones(y.shape));
    });
    w.grad?.dispose();
    w.grad = null;
    bias.grad?.dispose();
    bias.grad = null;
    await rt.sync();
    live.push(rt.poolStats().liveBytes);
  }
  assert.equal(live[3], live[1], `live bytes per step: ${live}`);
});

Deno.test("matmul: repeating one product does not recompile it (native memory stays flat)", async () => {
  // Lavapipe used to bake uniform sizes into a new shader variant on every one of these
  // dispatches (~10 ms and ~1.2 MB of native memory each, never freed): narrow transposed-A
  // products whose M is a power of two, as in a 10-class head's weight gradient. That compile
  // happens inside the driver, where no pipeline count of ours sees it: only the process's
  // memory shows it. So the repeats run in a process of their own (tests/fixtures/
  // matmul_repeat.ts), whose memory moves with them alone — in the suite's process it moved with
  // everything else the suite did. Measured there with the sizes read at a constant uniform
  // offset: 94 MB over 80 products; as the kernel reads them now: ≤ 1.4 MB. Other adapters pass
  // trivially.
  const { rng } = testRng();
  for (const [m, n, k] of [[512, 10, 128], [1024, 16, 64]]) {
    const ra = ref([k, m], randomData(k * m, rng));
    const rb = ref([k, n], randomData(k * n, rng));
    const [a, b] = [Tensor.from(ra.data, ra.shape), Tensor.from(rb.data, rb.shape)];
    const out = matmul(a, b, { transA: true });
    assertClose(await out.data(), matmulRef(ra, rb, { transA: true }).data, { atol: 1e-4 });
    [a, b, out].forEach((t) => t.dispose());
  }
  const script = new URL("./fixtures/matmul_repeat.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script],
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const repeated = JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").at(-1)!);
  const { products, rssGrowth, pipelines, allocations } = repeated;
  assert.equal(pipelines, 0, `${pipelines} pipelines created for products already run`);
  assert.equal(allocations, 0, `${allocations} buffers allocated for products already run`);
  assert.ok(
    rssGrowth < 24e6,
    `RSS grew by ${(rssGrowth / 1e6).toFixed(1)} MB over ${products} products`,
  );
});

Deno.test("matmul: bad inputs are rejected before dispatch with the op and shapes named", () => {
  const t = (shape: number[]) => Tensor.uniform(shape);
  const v3 = t([3]), m23 = t([2, 3]), m32 = t([3, 2]), m34 = t([3, 4]), m45 = t([4, 5]);
  const m53 = t([5, 3]), b234 = t([2, 3, 4]), b546 = t([5, 4, 6]), r14 = t([1, 4]);
  // Batch axes alternating between a and b: six that cannot be merged.
  const alt1 = t([2, 1, 2, 1, 2, 1, 2, 3]), alt2 = t([1, 2, 1, 2, 1, 2, 3, 2]);
  const ints = Tensor.from([1, 2], [1, 2], "i32");
  const disposed = t([2, 2]);
  disposed.dispose();
  const before = rt.poolStats().dispatches;
  const cases: [() => unknown, RegExp][] = [
    [
      () => matmul(v3, m32),
      /matmul: a has shape \[3\]; expected at least 2 dimensions \[\.\.\., M, K\]$/,
    ],
    [
      () => matmul(m23, v3),
      /matmul: b has shape \[3\]; expected at least 2 dimensions \[\.\.\., K, N\]$/,
    ],
    [
      () => matmul(m23, m45),
      /matmul: inner dimensions differ: a \[2, 3\] has K = 3 but b \[4, 5\] has K = 4$/,
    ],
    [
      () => matmul(m23, m53, { transA: true, transB: true }),
      /matmul: inner dimensions differ: a \[2, 3\] \(transposed: \[\.\.\., K, M\]\) has K = 2 but b \[5, 3\] \(transposed: \[\.\.\., N, K\]\) has K = 3$/,
    ],
    [
      () => matmul(b234, b546),
      /matmul: batch dimensions of a \[2, 3, 4\] and b \[5, 4, 6\] cannot be broadcast \(2 vs 5 at batch axis 0/,
    ],
    [
      () => matmul(m23, m34, { bias: v3 }),
      /matmul: bias is f32 of shape \[3\]; expected f32 of shape \[4\] \(N of b \[3, 4\]\)$/,
    ],
    [() => matmul(m23, m34, { bias: r14 }), /matmul: bias is f32 of shape \[1, 4\]/],
    [() => matmul(ints, m23), /matmul: a is i32 of shape \[1, 2\]; expected f32$/],
    [
      () => matmul(m23, m34, { activation: "swish" as MatmulActivation }),
      /matmul: unknown activation 'swish' \(expected relu, leaky_relu, sigmoid, tanh, gelu\)$/,
    ],
    [() => matmul(m23, m34, { alpha: 0.1 }), /matmul: alpha is the leaky_relu slope/],
    [
      () => matmul(m23, m34, { activation: "leaky_relu", alpha: -1 }),
      /matmul: leaky_relu alpha is -1; expected a finite value ≥ 0$/,
    ],
    [
      () => matmul(alt1, alt2),
      /matmul: broadcasting a \[2, 1, 2, 1, 2, 1, 2, 3\] with b \[1, 2, 1, 2, 1, 2, 3, 2\] leaves 6 batch dimensions that cannot be merged \(at most 4\)/,
    ],
    [() => matmul(disposed, m23), /matmul: tensor of shape \[2, 2\] was already disposed$/],
  ];
  for (const [fn, message] of cases) assert.throws(fn, message);
  assert.equal(rt.poolStats().dispatches, before, "a rejected matmul encoded work");
  for (const x of [v3, m23, m32, m34, m45, m53, b234, b546, r14, alt1, alt2, ints]) {
    x.dispose();
  }
});
