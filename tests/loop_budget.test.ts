// The adapter's loop budget (Mesa's llvmpipe ends every loop of a shader after 65,535 iterations
// in all): the runtime's watch and launch check, and the decoder's count against it, which must
// bound what the driver counts, or a layout past it computes garbage, as an 8-row, 4-lane
// decoder table once did.
import assert from "node:assert/strict";
import { dispatchOnce } from "../engine/device.ts";
import { gruDecode } from "../engine/ops/decode.ts";
import { Rng } from "../engine/random.ts";
import type { KernelSpec } from "../engine/runtime.ts";
import { DECODE_TUNING, decodeForwardKernel } from "../engine/shaders/decode.ts";
import { decodeBackwardKernel } from "../engine/shaders/decode_backward.ts";
import {
  type DecodeDims,
  decodeLoopIterations,
  gradLayout,
  savedLayout,
  weightLayout,
} from "../engine/shaders/decode_layout.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { setup } from "./helpers.ts";
import { decodeArgs } from "./op_checks/decode.ts";

const rt = await setup();
const measured = rt.ctx.report.loopBudget;
const budget = rt.loopBudget;

/** A kernel whose one loop runs `trips` times (a runtime bound) and writes how many it ran. */
const counter: KernelSpec = {
  name: "loop_counter",
  key: "",
  bindings: ["write"],
  code: () =>
    `@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1) fn main() {
  var n = 0u;
  for (var i = 0u; i < out[0]; i++) { n++; }
  out[0] = n;
}`,
};

async function runCounter(trips: number, declared?: number): Promise<number> {
  const out = Tensor.from(new Float32Array(new Uint32Array([trips]).buffer), [1]);
  rt.launch(counter, { buffers: [out.storage], groups: [1], loopIterations: declared });
  const ran = new Uint32Array((await out.data() as Float32Array).buffer)[0];
  out.dispose();
  return ran;
}

Deno.test("loop budget: measured at start-up, refused before the driver cuts a loop short", async () => {
  if (/llvmpipe|lavapipe/i.test(rt.ctx.report.description)) assert.equal(measured, 65535);
  assert.ok(budget === Infinity || (Number.isInteger(budget) && budget > 1000), `${budget}`);
  const within = Math.min(budget - 10, 100_000);
  assert.equal(await runCounter(within, within + 1), within);
  if (budget !== Infinity) {
    // Past the budget the driver stops the loop; the watch reports the kernel at the next read,
    // and the read after it is clean again.
    await assert.rejects(
      () => runCounter(budget + 500),
      /kernel 'loop_counter\|' ran out of this adapter's loop budget \(65535 loop iterations/,
    );
    assert.equal(await runCounter(within), within);
    assert.throws(
      () => rt.launch(counter, { buffers: [], groups: [1], loopIterations: budget + 2 }),
      new RegExp(
        `'loop_counter' would run ${budget + 2} loop iterations .* over this adapter's ${budget}`,
      ),
    );
  }
});

/**
 * The iterations one workgroup of `spec` uses, counted by the driver itself: a loop appended to
 * the kernel runs until the budget is spent and writes how many trips it got. Run on the bare
 * device, since the runtime's loop watch would (rightly) report the spent budget.
 */
async function driverCount(spec: KernelSpec, d: DecodeDims, output: number): Promise<number> {
  const code = spec.code();
  const end = code.lastIndexOf("}");
  const tail = `  if (l == 0u) {
    var n = 0u;
    for (var i = 0u; i < 4000000000u + u.zero; i++) { n++; }
    ${output === 5 ? "pred[0] = bitcast<f32>(n)" : "grads[0] = vec4f(bitcast<f32>(n))"};
  }
}`;
  const device = rt.device;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
  const floats = Math.max(
    weightLayout(d).total,
    (savedLayout(d).total + gradLayout(d).total) * d.rows * d.steps,
    d.rows * (d.memory + d.steps) * d.keyDim * 2,
  );
  const buffers = spec.bindings.map(() => device.createBuffer({ size: 4 * floats, usage }));
  const uniforms = spec.uniforms!.pack({
    sizes: [d.rows, 0, d.hidden, d.content + d.flags, d.keyDim, d.content],
    zero: 0,
  });
  const uniform = device.createBuffer({
    size: uniforms.byteLength,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(uniform, 0, uniforms);
  const layout = device.createBindGroupLayout({
    entries: [
      ...spec.bindings.map((kind, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: {
          type: (kind === "read" ? "read-only-storage" : "storage") as GPUBufferBindingType,
        },
      })),
      { binding: buffers.length, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
    ],
  });
  const pipeline = device.createComputePipeline({
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: { module: device.createShaderModule({ code: code.slice(0, end) + tail }) },
  });
  const bindGroup = device.createBindGroup({
    layout,
    entries: [...buffers, uniform].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const left = await dispatchOnce(device, pipeline, bindGroup, buffers[output]);
  for (const b of [...buffers, uniform]) b.destroy();
  return measured - 1 - left;
}

Deno.test("gru_decode: the declared loop iterations bound what the driver counts", async () => {
  if (budget === Infinity) return; // nothing counts loops on this adapter, nothing to bound
  // Odd sizes, a window, no memory, few and many lanes, and the LOP-120 shape's context.
  const cases: DecodeDims[] = [
    [3, 16, 20, 5, 3, 3, 12, 11, 0],
    [4, 8, 12, 4, 1, 4, 8, 9, 0],
    [1, 4, 16, 5, 2, 6, 8, 20, 3],
    [7, 8, 12, 3, 1, 9, 4, 5, 0],
    [1, 64, 8, 2, 1, 3, 4, 3, 0],
    [5, 8, 36, 7, 1, 4, 0, 0, 0],
    [4, 64, 64, 14, 4, 3, 32, 100, 0],
  ].map(([rows, lanes, hidden, content, flags, steps, keyDim, memory, window]) => ({
    rows,
    lanes,
    hidden,
    content,
    flags,
    steps,
    keyDim,
    memory,
    window,
  }));
  for (const d of cases) {
    const declared = decodeLoopIterations(d);
    const forward = await driverCount(decodeForwardKernel(d), d, 5);
    const backward = await driverCount(decodeBackwardKernel(d), d, 4);
    const what = JSON.stringify(d);
    assert.ok(forward > 100 && forward <= declared.forward, `${what}: forward ${forward}`);
    assert.ok(backward > 100 && backward <= declared.backward, `${what}: backward ${backward}`);
    // Not so loose that it refuses layouts that fit: within 1.7× and a few hundred iterations.
    assert.ok(declared.forward < forward * 1.7 + 300, `${what}: forward ${declared.forward}`);
    assert.ok(declared.backward < backward * 1.7 + 300, `${what}: backward ${declared.backward}`);
  }
});

Deno.test("gru_decode: a table whose loops would pass the budget gets more lanes, same result", async () => {
  // LOP-120's context and steps: 4 rows on 4 lanes ran out of iterations at step 15.
  const [B, H, C, F, S, K, M] = [4, 64, 14, 4, 19, 32, 100];
  const decode = async (rows: number, lanes: number) => {
    DECODE_TUNING.set({ rows, lanes });
    try {
      const rng = new Rng(11);
      const r = (shape: number[]) => Tensor.uniform(shape, -0.5, 0.5, rng);
      const out = tidy(() =>
        gruDecode(decodeArgs({ B, H, C, F, S, K, M, window: 0 }, r)).predictions
      );
      const values = await out.data() as Float32Array;
      out.dispose();
      return values;
    } finally {
      DECODE_TUNING.set(null);
    }
  };
  const wide = await decode(4, 64);
  const narrow = await decode(4, 4);
  assert.ok(wide.every(Number.isFinite));
  assert.deepEqual(narrow, wide);
});
