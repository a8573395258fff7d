import assert from "node:assert/strict";
import { acquire, NO_WEBGPU_MESSAGE } from "../engine/device.ts";
import { Runtime, runtime, sizeClass } from "../engine/runtime.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { tableEntry } from "../engine/tuning.ts";
import * as ew from "../engine/ops/elementwise.ts";
import { engineOptionsFromEnv } from "../host/env.ts";
import { setup } from "./helpers.ts";

const rt = await setup();

Deno.test("device: no WebGPU, or no adapter, gives the documented message", async () => {
  await assert.rejects(() => acquire(undefined), { message: NO_WEBGPU_MESSAGE });
  const noAdapter = { requestAdapter: () => Promise.resolve(null) } as unknown as GPU;
  await assert.rejects(() => acquire(noAdapter), /mesa-vulkan-drivers/);
});

Deno.test("device: adapter report has limits and features", () => {
  const report = rt.ctx.report;
  assert.ok(report.description.length > 0);
  assert.ok(report.limits.maxStorageBufferBindingSize >= 128 * 1024 * 1024);
  assert.equal(rt.ctx.maxBinding, rt.device.limits.maxStorageBufferBindingSize);
});

Deno.test("runtime: size classes waste at most 12.5 %", () => {
  assert.equal(sizeClass(1), 256);
  assert.equal(sizeClass(256), 256);
  for (const n of [257, 1000, 4097, 123_457, 10_000_019]) {
    const c = sizeClass(n);
    assert.ok(c >= n && c <= n * 1.125 + 256, `${n} → ${c}`);
    assert.equal(sizeClass(c), c);
  }
});

Deno.test("runtime: released buffers are reused and counted", () => {
  const before = rt.poolStats();
  const a = Tensor.empty([1000]);
  const mid = rt.poolStats();
  assert.equal(mid.liveBuffers, before.liveBuffers + 1);
  assert.equal(mid.liveBytes - before.liveBytes, sizeClass(4000));
  a.dispose();
  const after = rt.poolStats();
  assert.equal(after.liveBytes, before.liveBytes);
  const b = Tensor.empty([999]); // same size class: no new allocation
  assert.equal(rt.poolStats().allocations, after.allocations);
  b.dispose();
});

Deno.test("runtime: many dispatches in one submission keep their own uniforms", async () => {
  const submissionsBefore = rt.poolStats().submissions;
  const parts = Array.from({ length: 100 }, (_, i) => Tensor.full([3], i));
  const pending = rt.poolStats();
  assert.equal(pending.submissions, submissionsBefore, "nothing submitted before a read");
  for (let i = 0; i < 100; i++) assert.deepEqual(Array.from(await parts[i].data()), [i, i, i]);
});

Deno.test("runtime: an upload into a recycled buffer never overtakes encoded work", async () => {
  // a is consumed by an encoded (unsubmitted) op, then released; b reuses its buffer at once.
  const a = Tensor.from([1, 2, 3, 4], [4]);
  const y = ew.mul(a, 10);
  a.dispose();
  const b = Tensor.from([7, 7, 7, 7], [4]);
  assert.deepEqual(Array.from(await y.data()), [10, 20, 30, 40]);
  assert.deepEqual(Array.from(await b.data()), [7, 7, 7, 7]);
});

Deno.test("runtime: tensors over the storage-binding limit are refused clearly", () => {
  const n = rt.ctx.maxBinding / 4 + 1;
  assert.throws(() => Tensor.empty([n]), /exceeds this adapter's storage-binding limit/);
});

Deno.test("runtime: DENOGRAD_CHECK_NAN names the first op that produced NaN", async () => {
  rt.checkNaN = true;
  try {
    const x = Tensor.from([1, -1, 4], [3]);
    const ok = ew.exp(x);
    const bad = ew.sqrt(x); // sqrt(-1) = NaN
    ew.log(bad);
    await assert.rejects(() => ok.data(), /op 'sqrt' produced NaN or Inf/);
    assert.deepEqual(Array.from(await ew.abs(x).data()), [1, 1, 4]);
  } finally {
    rt.checkNaN = false;
  }
});

Deno.test("runtime: sync waits for submitted work; reads are async", async () => {
  const t = Tensor.full([1 << 16], 2);
  await runtime().sync();
  assert.equal((await t.data())[12345], 2);
});

Deno.test("tensor: creation, dtypes, 0-d, readback, nested arrays", async () => {
  assert.deepEqual(await Tensor.from([1, 2, 3, 4, 5, 6], [2, 3]).toArray(), [[1, 2, 3], [4, 5, 6]]);
  assert.equal(await Tensor.scalar(3.5).item(), 3.5);
  assert.deepEqual(Array.from(await Tensor.from([-3, 2], [2], "i32").data()), [-3, 2]);
  assert.deepEqual(Array.from(await Tensor.ones([2], "u32").data()), [1, 1]);
  assert.deepEqual(Array.from(await Tensor.zeros([0]).data()), []);
  assert.throws(() => Tensor.from([1, 2, 3], [2, 2]), /3 values do not fill shape \[2, 2\]/);
  assert.throws(() => Tensor.from([1.5], [1], "i32"), /not an integer/);
  assert.throws(() => Tensor.from([-1], [1], "u32"), /negative/);
  assert.throws(() => Tensor.zeros([2, -1]), /invalid shape/);
  await assert.rejects(() => Tensor.zeros([2]).item(), /2 elements, expected exactly 1/);
});

Deno.test("tensor: seeded uniform and normal are deterministic", async () => {
  const { Rng } = await import("../engine/random.ts");
  const a = Array.from(await Tensor.normal([1000], 0, 1, new Rng(5)).data());
  const b = Array.from(await Tensor.normal([1000], 0, 1, new Rng(5)).data());
  const c = await Tensor.uniform([1000], -1, 1, new Rng(6)).data();
  assert.deepEqual(a, b);
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
  assert.ok(Math.abs(mean) < 0.15 && Math.abs(variance - 1) < 0.15, `${mean} ${variance}`);
  assert.ok(c.every((v) => v >= -1 && v < 1));
});

Deno.test("tidy: intermediates are released, results and kept tensors survive", () => {
  const before = rt.poolStats().liveBuffers;
  let kept: Tensor | null = null;
  const out = tidy(() => {
    const a = Tensor.full([10], 1);
    const b = ew.add(a, 1);
    kept = ew.mul(b, 2).keep();
    return ew.exp(b);
  });
  assert.equal(rt.poolStats().liveBuffers, before + 2);
  assert.ok(!out.isDisposed && !kept!.isDisposed);
  out.dispose();
  kept!.dispose();
  assert.equal(rt.poolStats().liveBuffers, before);
});

Deno.test("runtime: DENOGRAD_DEBUG=1 reports per-kernel counts (and GPU time with timestamps)", async () => {
  const script = new URL("./fixtures/debug_run.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script],
    env: { DENOGRAD_DEBUG: "1" },
  }).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const line = out.split("\n").find((l) => l.startsWith("exp "));
  assert.ok(line, out);
  assert.equal(line!.trim().split(/\s+/)[1], "5");
  if (rt.ctx.features.timestampQuery) assert.match(line!, /\d+\.\d+\s+\d+\.\d+$/);
});

Deno.test("runtime: debug switches are init() options; the Deno side maps DENOGRAD_* and DENO_WEBGPU_BACKEND to them", () => {
  const from = (vars: Record<string, string>) => engineOptionsFromEnv((name) => vars[name]);
  const off = { debug: false, checkNaN: false, checkIndices: false };
  assert.deepEqual(from({}), off);
  assert.deepEqual(
    from({ DENOGRAD_DEBUG: "0", DENOGRAD_CHECK_NAN: "", DENOGRAD_CHECK_INDICES: "0" }),
    off,
  );
  assert.deepEqual(
    from({ DENOGRAD_DEBUG: "1", DENOGRAD_CHECK_NAN: "1", DENOGRAD_CHECK_INDICES: "1" }),
    { debug: true, checkNaN: true, checkIndices: true },
  );
  assert.deepEqual(from({ DENOGRAD_DEBUG: "keys" }), { ...off, debug: "keys" });
  // Deno's backend switch reaches the tuning tables (a cpu-gl entry replaces cpu on GL).
  assert.deepEqual(from({ DENO_WEBGPU_BACKEND: "gl" }), { ...off, backend: "gl" });
  const checking = new Runtime(rt.ctx, { checkNaN: true, checkIndices: true, backend: "gl" });
  assert.ok(checking.checkNaN && checking.checkIndices && !checking.debug && !checking.debugKeys);
  assert.equal(checking.backend, "gl");
  const plain = new Runtime(rt.ctx);
  assert.ok(!plain.checkNaN && !plain.checkIndices && !plain.debug && plain.backend === null);
});

Deno.test("tuning: an adapter gets its class's entry; Mesa's GL and SwiftShader their own", () => {
  const table = { cpu: "cpu", gpu: "gpu", "cpu-gl": "gl", "cpu-swiftshader": "swiftshader" };
  const lavapipe = {
    isFallbackAdapter: true,
    description: "llvmpipe (LLVM 15.0.6, 256 bits)",
    architecture: "",
  };
  // What Chromium reports for its CPU adapter (tests/web_bench_page.test.ts reads the same).
  const chromium = { isFallbackAdapter: true, description: "", architecture: "swiftshader" };
  const gpu = { isFallbackAdapter: false, description: "NVIDIA H200", architecture: "hopper" };
  assert.equal(tableEntry(table, lavapipe, "vulkan"), "cpu");
  assert.equal(tableEntry(table, lavapipe, null), "cpu");
  assert.equal(tableEntry(table, lavapipe, "gl"), "gl");
  assert.equal(tableEntry(table, chromium, null), "swiftshader");
  assert.equal(tableEntry(table, gpu, "gl"), "gpu");
  assert.equal(tableEntry({ cpu: "cpu", gpu: "gpu" }, chromium, null), "cpu");
});

Deno.test("tensor: method shortcuts call the op families", async () => {
  const x = Tensor.from([1, 4, 9, 16, 25, 36], [2, 3]);
  const v = async (t: Tensor) => Array.from(await t.data());
  assert.deepEqual(await v(x.add(1)), [2, 5, 10, 17, 26, 37]);
  assert.deepEqual(await v(x.sub(1)), [0, 3, 8, 15, 24, 35]);
  assert.deepEqual(await v(x.mul(2)), [2, 8, 18, 32, 50, 72]);
  assert.deepEqual(await v(x.div(x)), [1, 1, 1, 1, 1, 1]);
  assert.deepEqual(await v(x.sqrt()), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(await v(x.pow(0.5).neg().abs()), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(await v(x.neg().relu()), [0, 0, 0, 0, 0, 0]);
  assert.deepEqual(await v(x.sum(1)), [14, 77]);
  assert.deepEqual(await v(x.mean(0)), [8.5, 14.5, 22.5]);
  assert.deepEqual(await v(x.max()), [36]);
  assert.deepEqual(await v(x.argmax()), [2, 2]);
  assert.deepEqual(await v(x.sum(1, true).reshape([2])), [14, 77]);
  assert.deepEqual((x.flatten(0)).shape, [6]);
  assert.deepEqual(await v(x.transpose()), [1, 16, 4, 25, 9, 36]);
  assert.deepEqual(await v(x.permute([1, 0])), [1, 16, 4, 25, 9, 36]);
  assert.deepEqual(await v(x.matmul(Tensor.ones([3, 1]))), [14, 77]);
  const p = await v(Tensor.from([0, Math.log(3)], [1, 2]).softmax());
  assert.ok(Math.abs(p[0] - 0.25) < 1e-6 && Math.abs(p[1] - 0.75) < 1e-6);
  const lp = await v(Tensor.from([0, Math.log(3)], [1, 2]).logSoftmax());
  assert.ok(Math.abs(lp[0] - Math.log(0.25)) < 1e-6);
  const e = await v(Tensor.from([0, 1], [2]).exp().log());
  assert.ok(Math.abs(e[1] - 1) < 1e-6);
  const s = await v(Tensor.from([0], [1]).sigmoid().add(Tensor.from([0], [1]).tanh()));
  assert.deepEqual(s, [0.5]);
  const d = x.detach();
  assert.equal(d.storage, x.storage);
  assert.equal(d.requiresGrad, false);
  assert.equal(x.rank, 2);
});

Deno.test("runtime: prepare() builds a use's pipelines asynchronously and dispatches nothing", async () => {
  // A specialisation no other test makes (the scale is baked into nothing, the shape is odd).
  const use = () => ew.tanh(ew.mul(Tensor.full([37, 3], 0.5), Tensor.full([3], 2)));
  const before = rt.poolStats();
  const compiledBefore = new Set(rt.compiledKernels());
  const built = await rt.prepare(use);
  assert.equal(rt.poolStats().dispatches, before.dispatches, "prepare() dispatched");
  const added = rt.compiledKernels().filter((k) => !compiledBefore.has(k));
  assert.equal(added.length, built);
  assert.ok(added.some((k) => k.startsWith("tanh|")), `tanh not built: ${added}`);
  assert.equal(await rt.prepare(use), 0, "a second prepare() rebuilt pipelines");
  // The real run finds every pipeline built and computes the right values.
  const kernels = rt.compiledKernels().length;
  const y = await use().data();
  assert.equal(rt.compiledKernels().length, kernels);
  assert.ok(y.every((v) => Math.abs(v - Math.tanh(1)) < 1e-6), `${y.slice(0, 3)}`);
});

Deno.test("runtime: prepare() names the kernel that fails to compile", async () => {
  const broken = {
    name: "broken_probe",
    key: "k",
    bindings: ["write" as const],
    code: () => "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }",
  };
  const x = Tensor.empty([4]);
  await assert.rejects(
    () => rt.prepare(() => rt.launch(broken, { buffers: [x.storage], groups: [1] })),
    /kernel 'broken_probe\|k' failed to compile/,
  );
  x.dispose();
});
