// Adapter and device acquisition, shared by Deno and the browser (no Deno.* here).

export interface DeviceFeatures {
  shaderF16: boolean;
  subgroups: boolean;
  timestampQuery: boolean;
}

export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  features: string[];
  limits: Record<string, number>;
  /**
   * Loop iterations one invocation may run, all its loops together, before the driver cuts them
   * short (measured at start-up; Infinity where none was found). Mesa's llvmpipe (lavapipe and
   * its GL) shares one counter of 65,535 between every loop of a shader and then silently ends
   * them all, so a kernel past it computes garbage.
   */
  loopBudget: number;
}

export interface GpuContext {
  device: GPUDevice;
  adapter: GPUAdapter;
  features: DeviceFeatures;
  report: AdapterReport;
  /** Largest buffer a single storage binding may cover, in bytes. */
  maxBinding: number;
}

export const NO_WEBGPU_MESSAGE = "denograd: no WebGPU adapter found. " +
  "On Linux without a GPU install Mesa's Vulkan software driver (`apt-get install -y mesa-vulkan-drivers`) " +
  "or pick the GL backend with DENO_WEBGPU_BACKEND=gl; in Chromium start it with --enable-unsafe-webgpu.";

/** Name of the kernel most recently encoded, so asynchronous GPU errors can say where they came from. */
let lastKernel = "(none)";
export function noteKernel(name: string): void {
  lastKernel = name;
}

let pending: Promise<GpuContext> | undefined;

/** Returns the process-wide GPU context, creating it on first use. */
export function gpu(): Promise<GpuContext> {
  return pending ??= acquire(globalThis.navigator?.gpu);
}

/** Acquires adapter and device from a given `GPU` object (exported so the no-adapter path is testable). */
export async function acquire(gpuApi: GPU | undefined): Promise<GpuContext> {
  if (!gpuApi) throw new Error(NO_WEBGPU_MESSAGE);
  const adapter = await gpuApi.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error(NO_WEBGPU_MESSAGE);

  const wanted: GPUFeatureName[] = ["shader-f16", "subgroups", "timestamp-query"];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const key of limitNames(adapter.limits)) {
    const value = (adapter.limits as unknown as Record<string, number>)[key];
    if (typeof value === "number") requiredLimits[key] = value;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });

  device.addEventListener("uncapturederror", (event) => {
    const error = (event as GPUUncapturedErrorEvent).error;
    console.error(`denograd: GPU error after kernel '${lastKernel}': ${error.message}`);
  });
  device.lost.then((info) => {
    if (info.reason !== "destroyed") {
      console.error(`denograd: GPU device lost after kernel '${lastKernel}': ${info.message}`);
    }
  });

  const info = adapter.info;
  const report: AdapterReport = {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallbackAdapter: Boolean(
      (info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
        (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter,
    ),
    features: [...adapter.features].sort(),
    limits: requiredLimits,
    loopBudget: await measureLoopBudget(device),
  };
  return {
    device,
    adapter,
    report,
    features: {
      shaderF16: device.features.has("shader-f16"),
      subgroups: device.features.has("subgroups"),
      timestampQuery: device.features.has("timestamp-query"),
    },
    maxBinding: Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize),
  };
}

/** Iterations the probe asks for: far past llvmpipe's limit, a few milliseconds anywhere. */
const LOOP_PROBE_ITERATIONS = 1 << 20;

/** Runs one loop of LOOP_PROBE_ITERATIONS and reads back how many iterations it completed. */
async function measureLoopBudget(device: GPUDevice): Promise<number> {
  const module = device.createShaderModule({
    code: `@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1) fn main() {
  var n = 0u;
  for (var i = 0u; i < arrayLength(&out) * ${LOOP_PROBE_ITERATIONS}u; i++) { n++; }
  out[0] = n;
}`,
  });
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const out = device.createBuffer({
    size: 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: out } }],
  });
  const done = await dispatchOnce(device, pipeline, bindGroup, out);
  out.destroy();
  return done < LOOP_PROBE_ITERATIONS ? done : Infinity;
}

/**
 * Runs one workgroup of `pipeline` outside the runtime (no pooling, no loop watch) and reads back
 * the first u32 of `out`: start-up probes, and tests that measure the driver itself.
 */
export async function dispatchOnce(
  device: GPUDevice,
  pipeline: GPUComputePipeline,
  bindGroup: GPUBindGroup,
  out: GPUBuffer,
): Promise<number> {
  const readback = device.createBuffer({
    size: 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(1);
  pass.end();
  encoder.copyBufferToBuffer(out, 0, readback, 0, 4);
  device.queue.submit([encoder.finish()]);
  await readback.mapAsync(GPUMapMode.READ);
  const value = new Uint32Array(readback.getMappedRange())[0];
  readback.unmap();
  readback.destroy();
  return value;
}

function limitNames(limits: GPUSupportedLimits): string[] {
  const names = new Set<string>();
  for (const key in limits) names.add(key);
  let proto = Object.getPrototypeOf(limits);
  while (proto && proto !== Object.prototype) {
    for (const key of Object.getOwnPropertyNames(proto)) if (key !== "constructor") names.add(key);
    proto = Object.getPrototypeOf(proto);
  }
  return [...names];
}
