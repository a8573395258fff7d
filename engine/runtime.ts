// Pipeline cache, buffer pool, lazy command submission, per-dispatch uniforms, debug counters.
import { GpuChecks } from "./checks.ts";
import { type GpuContext, noteKernel } from "./device.ts";
import { LOOP_WATCH_COST, LoopWatch } from "./loop_watch.ts";
import {
  type UniformBlock,
  uniformBlock,
  type UniformFields,
  type UniformValues,
} from "./uniforms.ts";

/** How a kernel binds each buffer, in binding order (0, 1, …); the uniform block, if any, comes last. */
export type Binding = "read" | "write";

export interface KernelSpec<F extends UniformFields = UniformFields> {
  /** Kernel family name, e.g. "matmul"; shows in errors and debug counters. */
  name: string;
  /** Specialisation key: everything baked into the WGSL besides the name. */
  key: string;
  /** Builds the WGSL source; called once per (name, key). */
  code: () => string;
  bindings: Binding[];
  /** The block the shader declares as `@binding(bindings.length) var<uniform>`, if any. */
  uniforms?: UniformBlock<F>;
}

/** A buffer an op wrote, checked under DENOGRAD_CHECK_NAN (its first `size` floats). */
export interface Written {
  storage: Storage;
  size: number;
}

/**
 * An index buffer a kernel reads (i32 or u32, its first `size` values), each of which must lie
 * in [0, bound): checked under `checkIndices`, reported as `what` (default "an index").
 */
export interface IndexRange {
  storage: Storage;
  size: number;
  bound: number;
  what?: string;
}

export interface LaunchArgs<F extends UniformFields> {
  buffers: Storage[];
  /** Values of the kernel's uniform block, packed into a slot of their own. */
  params?: UniformValues<F>;
  groups: [number, number?, number?];
  /** Work declared for DENOGRAD_DEBUG GFLOP/s reporting. */
  flops?: number;
  /** Outputs to check for NaN/Inf when checking is on, reported under `op`. */
  outputs?: Written[];
  /** Index inputs to check for out-of-range values when index checking is on. */
  indices?: IndexRange[];
  /** The op named by the NaN and index checks (default: the kernel's name). */
  op?: string;
  /**
   * The most loop iterations one invocation runs, every loop together, each loop counted as its
   * trips + 1 (the exit test): refused when over the adapter's loop budget, where the driver
   * would silently cut the loops short. Kernels whose loops grow with runtime sizes declare it.
   */
  loopIterations?: number;
}

/** A pooled GPU buffer with a reference count shared by tensor views. */
export class Storage {
  refs = 1;
  constructor(readonly buffer: GPUBuffer, readonly bytes: number, readonly capacity: number) {}
}

/** Id of the command batch that last referenced each buffer: uploads must not overtake it. */
const lastBatch = new WeakMap<GPUBuffer, number>();

export interface PoolStats {
  liveBytes: number;
  liveBuffers: number;
  pooledBytes: number;
  allocations: number;
  submissions: number;
  dispatches: number;
}

interface KernelStats {
  count: number;
  flops: number;
  gpuNs: number;
}

const BUFFER_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const UNIFORM_SLOT_MAX = 256;
const ARENA_BYTES = 256 * 1024;
const TIMESTAMP_PAIRS = 512;

/**
 * Debug switches, given to `init()`. The engine never reads the environment: the Deno entry
 * points map DENOGRAD_DEBUG and DENOGRAD_CHECK_NAN to these (host/env.ts).
 */
export interface RuntimeOptions {
  /** Per-kernel dispatch counts, GPU time and GFLOP/s; "keys": per specialisation (name|key). */
  debug?: boolean | "keys";
  /** Check every op's output and name the first op that produced a NaN or Inf. */
  checkNaN?: boolean;
  /**
   * Check the indices every op reads (gather, scatter-add, class labels) and name the first op
   * that got one out of range. Unchecked, such an index reads zeros (gather), is dropped
   * (scatter-add) or gives a NaN loss (softmaxCrossEntropy): nothing is read out of bounds.
   */
  checkIndices?: boolean;
  /**
   * The WebGPU backend the host picked, when it knows it (Deno: DENO_WEBGPU_BACKEND). Mesa's GL
   * path compiles large kernels minutes slower than its Vulkan one, so tuning tables may hold an
   * entry for it (engine/tuning.ts).
   */
  backend?: string;
}

/** Rounds a byte size up to its pool class: ≤ 12.5 % waste, at least 256 bytes. */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const step = 2 ** Math.max(8, Math.floor(Math.log2(bytes)) - 3);
  return Math.ceil(bytes / step) * step;
}

export class Runtime {
  readonly device: GPUDevice;
  readonly debug: boolean;
  /** Counters per specialisation (name|key) instead of per family. */
  readonly debugKeys: boolean;
  checkNaN: boolean;
  checkIndices: boolean;
  /** The host's backend name (RuntimeOptions.backend), null when it did not say. */
  readonly backend: string | null;
  /** Submit after this many dispatches even if nobody reads a result. */
  maxPendingDispatches = 256;
  /** Upper bound on bytes kept in the pool for reuse; beyond it released buffers are destroyed. */
  maxPooledBytes = 1 << 30;
  /** Tests: fill every allocation with NaN so elements a kernel fails to write show up. */
  poison = false;

  private pipelines = new Map<string, GPUComputePipeline>();
  private layouts = new Map<string, GPUBindGroupLayout>();
  private pool = new Map<number, GPUBuffer[]>();
  private stagingPool = new Map<number, GPUBuffer[]>();
  private stats: PoolStats = {
    liveBytes: 0,
    liveBuffers: 0,
    pooledBytes: 0,
    allocations: 0,
    submissions: 0,
    dispatches: 0,
  };
  readonly kernelStats = new Map<string, KernelStats>();

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pendingDispatches = 0;
  private batchId = 0;

  private arena: GPUBuffer;
  private arenaCpu = new Uint8Array(ARENA_BYTES);
  private arenaUsed = 0;
  private readonly slotAlign: number;

  private timestamps: {
    set: GPUQuerySet;
    resolve: GPUBuffer;
    names: string[];
  } | null = null;

  private readonly checks = new GpuChecks(this);
  /** Set where the adapter cuts loops short (see loop_watch.ts). */
  private readonly loopWatch: LoopWatch | null;

  constructor(readonly ctx: GpuContext, options: RuntimeOptions = {}) {
    this.device = ctx.device;
    this.debug = Boolean(options.debug);
    this.debugKeys = options.debug === "keys";
    this.checkNaN = options.checkNaN ?? false;
    this.checkIndices = options.checkIndices ?? false;
    this.backend = options.backend ?? null;
    this.slotAlign = Math.max(ctx.device.limits.minUniformBufferOffsetAlignment, 16);
    const budget = ctx.report.loopBudget;
    this.loopWatch = Number.isFinite(budget) ? new LoopWatch(this.device, budget) : null;
    this.arena = this.device.createBuffer({
      size: ARENA_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    if (this.debug) {
      // Printed when the program ends (Deno and browsers both fire "unload").
      globalThis.addEventListener?.("unload", () => console.log(this.debugReport()));
    }
    if (this.debug && ctx.features.timestampQuery) {
      this.timestamps = {
        set: this.device.createQuerySet({ type: "timestamp", count: TIMESTAMP_PAIRS * 2 }),
        resolve: this.device.createBuffer({
          size: TIMESTAMP_PAIRS * 16,
          usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
        }),
        names: [],
      };
    }
  }

  /**
   * Loop iterations a kernel invocation may run, all its loops together (Infinity: no limit): the
   * adapter's measured budget less what the loop watch spends.
   */
  get loopBudget(): number {
    return this.ctx.report.loopBudget - (this.loopWatch ? LOOP_WATCH_COST : 0);
  }

  /** Storage buffers one kernel may bind: the device's limit less the loop watch's flag. */
  get maxStorageBuffers(): number {
    return this.device.limits.maxStorageBuffersPerShaderStage - (this.loopWatch ? 1 : 0);
  }

  // ---- buffers ------------------------------------------------------------------------------

  /** A buffer of at least `bytes` bytes from the pool (contents undefined). */
  alloc(bytes: number): Storage {
    if (bytes > this.ctx.maxBinding) {
      throw new Error(
        `denograd: a tensor of ${bytes} bytes exceeds this adapter's storage-binding limit of ` +
          `${this.ctx.maxBinding} bytes; split the data into smaller batches`,
      );
    }
    const capacity = sizeClass(Math.max(bytes, 4));
    const free = this.pool.get(capacity);
    let buffer = free?.pop();
    if (buffer) {
      this.stats.pooledBytes -= capacity;
    } else {
      buffer = this.device.createBuffer({ size: capacity, usage: BUFFER_USAGE });
      this.stats.allocations++;
    }
    this.stats.liveBytes += capacity;
    this.stats.liveBuffers++;
    const storage = new Storage(buffer, bytes, capacity);
    if (this.poison) {
      const words = capacity / 4;
      const [gx, gy] = [Math.min(Math.ceil(words / 256), 65535), Math.ceil(words / 256 / 65535)];
      this.launch(POISON, { buffers: [storage], params: { n: words, gx }, groups: [gx, gy] });
    }
    return storage;
  }

  private spareStorage: { read: Storage; write: Storage } | null = null;

  /**
   * Two tiny buffers to bind where a kernel ignores a binding (a missing optional input, an
   * output it does not write this time); two, because writable bindings must not alias.
   */
  spares(): { read: Storage; write: Storage } {
    return this.spareStorage ??= { read: this.alloc(16), write: this.alloc(16) };
  }

  /** Returns a storage's buffer to the pool once nothing references it. */
  release(storage: Storage): void {
    if (storage.refs <= 0) return;
    if (--storage.refs > 0) return;
    this.stats.liveBytes -= storage.capacity;
    this.stats.liveBuffers--;
    if (this.stats.pooledBytes + storage.capacity > this.maxPooledBytes) {
      // Destroying a buffer that an unsubmitted batch still uses would invalidate that batch.
      if (lastBatch.get(storage.buffer) === this.batchId && this.encoder) this.flush();
      storage.buffer.destroy();
      return;
    }
    let list = this.pool.get(storage.capacity);
    if (!list) this.pool.set(storage.capacity, list = []);
    list.push(storage.buffer);
    this.stats.pooledBytes += storage.capacity;
  }

  /** Destroys every pooled (unused) buffer. */
  trimPool(): void {
    for (const list of this.pool.values()) for (const b of list) b.destroy();
    this.pool.clear();
    this.stats.pooledBytes = 0;
  }

  poolStats(): PoolStats {
    return { ...this.stats };
  }

  /** Writes host data into a storage, ordered after every dispatch already encoded. */
  upload(storage: Storage, data: ArrayBufferView, byteOffset = 0): void {
    // queue.writeBuffer runs before commands still sitting in the encoder: flush them first
    // if they touch this buffer (it may have come back from the pool mid-batch).
    if (lastBatch.get(storage.buffer) === this.batchId && this.encoder) this.flush();
    this.device.queue.writeBuffer(
      storage.buffer,
      byteOffset,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  /** Copies `bytes` bytes from one storage to another inside the command stream. */
  copy(src: Storage, srcOffset: number, dst: Storage, dstOffset: number, bytes: number): void {
    const encoder = this.currentEncoder();
    this.endPass();
    lastBatch.set(src.buffer, this.batchId);
    lastBatch.set(dst.buffer, this.batchId);
    encoder.copyBufferToBuffer(src.buffer, srcOffset, dst.buffer, dstOffset, bytes);
  }

  /** Reads `bytes` bytes back to the host; submits pending work first. */
  async read(storage: Storage, bytes: number, byteOffset = 0): Promise<ArrayBuffer> {
    await this.checks.throwIfFailed();
    const size = Math.ceil(bytes / 4) * 4;
    // The loop watch's flag rides along in the same staging buffer (mapped ranges start at
    // multiples of 8 bytes).
    const flagAt = Math.ceil(size / 8) * 8;
    const total = this.loopWatch ? flagAt + 4 : size;
    const staging = this.stagingBuffer(total);
    const encoder = this.currentEncoder();
    this.endPass();
    encoder.copyBufferToBuffer(storage.buffer, byteOffset, staging, 0, size);
    if (this.loopWatch) encoder.copyBufferToBuffer(this.loopWatch.flag, 0, staging, flagAt, 4);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ, 0, total);
    const out = staging.getMappedRange(0, total).slice(0, bytes);
    const flag = this.loopWatch ? new Uint32Array(staging.getMappedRange(flagAt, 4))[0] : 0;
    staging.unmap();
    this.stagingPool.get(staging.size)!.push(staging);
    this.loopWatch?.check(flag);
    return out;
  }

  private stagingBuffer(size: number): GPUBuffer {
    const capacity = sizeClass(size);
    let list = this.stagingPool.get(capacity);
    if (!list) this.stagingPool.set(capacity, list = []);
    return list.pop() ?? this.device.createBuffer({
      size: capacity,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  // ---- pipelines and dispatch ---------------------------------------------------------------

  private pipeline(spec: KernelSpec): GPUComputePipeline {
    const cacheKey = `${spec.name}|${spec.key}`;
    let pipeline = this.pipelines.get(cacheKey);
    if (pipeline) return pipeline;
    this.device.pushErrorScope("validation");
    pipeline = this.device.createComputePipeline(this.pipelineDescriptor(spec));
    this.device.popErrorScope().then((error) => {
      if (error) {
        console.error(`denograd: kernel '${cacheKey}' failed to compile: ${error.message}`);
      }
    });
    this.pipelines.set(cacheKey, pipeline);
    return pipeline;
  }

  private pipelineDescriptor(spec: KernelSpec): GPUComputePipelineDescriptor {
    const watchBinding = spec.bindings.length + (spec.uniforms ? 1 : 0);
    const layoutKey = `${spec.bindings.join(",")}|${spec.uniforms !== undefined}`;
    let layout = this.layouts.get(layoutKey);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = spec.bindings.map((kind, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: kind === "read" ? "read-only-storage" : "storage" },
      }));
      if (spec.uniforms) {
        entries.push({
          binding: spec.bindings.length,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: "uniform" },
        });
      }
      if (this.loopWatch) {
        entries.push({
          binding: watchBinding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: "storage" },
        });
      }
      layout = this.device.createBindGroupLayout({ entries });
      this.layouts.set(layoutKey, layout);
    }
    const name = `${spec.name}|${spec.key}`;
    const code = this.loopWatch?.instrument(spec.code(), watchBinding, name) ?? spec.code();
    const module = this.device.createShaderModule({ code, label: spec.name });
    return {
      label: name,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    };
  }

  /** Kernels that `prepare` saw launched, by `name|key`; null outside `prepare`. */
  private preparing: Map<string, KernelSpec> | null = null;

  /**
   * Builds every pipeline that `use` launches with createComputePipelineAsync, so the compiles
   * (seconds in a browser) never block the thread that later runs the kernels. `use` runs once
   * as a dry run: launches are recorded, nothing is dispatched, and what it computes or reads
   * back is meaningless; host-side state it advances (an optimizer's step count, dropout's
   * counter) does advance, so dry-run scratch objects. Returns how many pipelines were built.
   */
  async prepare(use: () => unknown): Promise<number> {
    if (this.preparing) throw new Error("denograd: prepare() calls cannot nest");
    const seen = new Map<string, KernelSpec>();
    this.preparing = seen;
    try {
      await use();
    } finally {
      this.preparing = null;
    }
    const missing = [...seen].filter(([key]) => !this.pipelines.has(key));
    await Promise.all(missing.map(async ([key, spec]) => {
      // The scope catches the shader module's errors; push and pop stay on one synchronous
      // stretch so the concurrent builds cannot interleave their scopes.
      this.device.pushErrorScope("validation");
      const building = this.device.createComputePipelineAsync(this.pipelineDescriptor(spec));
      const moduleError = this.device.popErrorScope();
      try {
        const [pipeline, error] = await Promise.all([building, moduleError]);
        if (error) throw error;
        this.pipelines.set(key, pipeline);
      } catch (e) {
        throw new Error(`denograd: kernel '${key}' failed to compile: ${(e as Error).message}`);
      }
    }));
    return missing.length;
  }

  /** The kernels compiled so far, as `name|key` (the browser op suite reports its coverage). */
  compiledKernels(): string[] {
    return [...this.pipelines.keys()];
  }

  /** Compiles a kernel now and reports WGSL errors by kernel name (tests use this on every family). */
  async compile(spec: KernelSpec): Promise<void> {
    const code = spec.code();
    const module = this.device.createShaderModule({ code, label: spec.name });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error");
    if (errors.length) {
      throw new Error(
        `denograd: kernel '${spec.name}|${spec.key}' failed to compile:\n` +
          errors.map((m) => `  line ${m.lineNum}: ${m.message}`).join("\n"),
      );
    }
    this.pipeline(spec);
  }

  private currentEncoder(): GPUCommandEncoder {
    return this.encoder ??= this.device.createCommandEncoder();
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /**
   * Encodes one dispatch of `kernel`: packs its uniforms, binds the buffers, counts it for
   * DENOGRAD_DEBUG and, with NaN checking on, checks the outputs it names. The one way ops run
   * a kernel.
   */
  launch<F extends UniformFields>(kernel: KernelSpec<F>, args: LaunchArgs<F>): void {
    const [gx, gy = 1, gz = 1] = args.groups;
    if (gx === 0 || gy === 0 || gz === 0) return;
    const maxGroups = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (gx > maxGroups || gy > maxGroups || gz > maxGroups) {
      throw new Error(
        `denograd: kernel '${kernel.name}' needs ${gx}×${gy}×${gz} workgroups, over the ` +
          `adapter's ${maxGroups} per dimension`,
      );
    }
    if (kernel.uniforms && !args.params) {
      throw new Error(`denograd: kernel '${kernel.name}' launched without its uniform values`);
    }
    const budget = this.loopBudget;
    if ((args.loopIterations ?? 0) > budget) {
      throw new Error(
        `denograd: kernel '${kernel.name}' would run ${args.loopIterations} loop iterations in ` +
          `one invocation, over this adapter's ${budget} (its driver ends every loop of a ` +
          `shader after that many in all, which would leave the result silently wrong); ` +
          `use smaller sizes or a GPU adapter`,
      );
    }
    if (this.preparing) {
      this.preparing.set(`${kernel.name}|${kernel.key}`, kernel as unknown as KernelSpec);
      return;
    }
    const uniforms = kernel.uniforms?.pack(args.params!);
    if ((uniforms?.byteLength ?? 0) > UNIFORM_SLOT_MAX) {
      throw new Error(`uniform block too large: ${kernel.name}`);
    }
    if (this.arenaUsed + UNIFORM_SLOT_MAX > ARENA_BYTES) this.flush();
    this.encode(kernel, args, uniforms, [gx, gy, gz]);
    if (this.checkNaN) {
      for (const out of args.outputs ?? []) {
        this.checks.finite(out.storage, out.size, args.op ?? kernel.name);
      }
    }
    if (this.checkIndices) {
      for (const range of args.indices ?? []) this.checks.range(range, args.op ?? kernel.name);
    }
  }

  private encode<F extends UniformFields>(
    kernel: KernelSpec<F>,
    args: LaunchArgs<F>,
    uniforms: ArrayBuffer | undefined,
    [gx, gy, gz]: [number, number, number],
  ): void {
    const pipeline = this.pipeline(kernel);
    const entries: GPUBindGroupEntry[] = args.buffers.map((s, binding) => {
      lastBatch.set(s.buffer, this.batchId);
      return { binding, resource: { buffer: s.buffer, size: s.capacity } };
    });
    if (uniforms) {
      const offset = this.arenaUsed;
      const size = uniforms.byteLength;
      this.arenaCpu.set(new Uint8Array(uniforms), offset);
      this.arenaUsed = Math.ceil((offset + size) / this.slotAlign) * this.slotAlign;
      entries.push({
        binding: args.buffers.length,
        resource: { buffer: this.arena, offset, size },
      });
    }
    if (this.loopWatch) {
      entries.push({ binding: entries.length, resource: { buffer: this.loopWatch.flag } });
    }
    const bindGroup = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries,
    });

    const encoder = this.currentEncoder();
    const ts = this.timestamps;
    if (ts) {
      // One pass per dispatch so each gets its own begin/end timestamps.
      this.endPass();
      if (ts.names.length >= TIMESTAMP_PAIRS) {
        this.flush();
        return this.encode(kernel, args, uniforms, [gx, gy, gz]);
      }
      const i = ts.names.length;
      ts.names.push(this.debugLabel(kernel));
      this.pass = this.currentEncoder().beginComputePass({
        timestampWrites: {
          querySet: ts.set,
          beginningOfPassWriteIndex: 2 * i,
          endOfPassWriteIndex: 2 * i + 1,
        },
      });
    } else {
      this.pass ??= encoder.beginComputePass();
    }
    this.pass!.setPipeline(pipeline);
    this.pass!.setBindGroup(0, bindGroup);
    this.pass!.dispatchWorkgroups(gx, gy, gz);
    if (ts) this.endPass();
    noteKernel(kernel.name);

    this.stats.dispatches++;
    if (this.debug) {
      const label = this.debugLabel(kernel);
      let k = this.kernelStats.get(label);
      if (!k) this.kernelStats.set(label, k = { count: 0, flops: 0, gpuNs: 0 });
      k.count++;
      k.flops += args.flops ?? 0;
    }
    if (++this.pendingDispatches >= this.maxPendingDispatches) this.flush();
  }

  private debugLabel(kernel: KernelSpec): string {
    return this.debugKeys ? `${kernel.name}|${kernel.key}` : kernel.name;
  }

  /** Submits everything encoded so far without waiting for it. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    const ts = this.timestamps;
    let tsNames: string[] = [];
    let tsRead: GPUBuffer | null = null;
    if (ts && ts.names.length) {
      tsNames = ts.names;
      ts.names = [];
      tsRead = this.stagingBuffer(tsNames.length * 16);
      this.encoder.resolveQuerySet(ts.set, 0, tsNames.length * 2, ts.resolve, 0);
      this.encoder.copyBufferToBuffer(ts.resolve, 0, tsRead, 0, tsNames.length * 16);
    }
    if (this.arenaUsed > 0) {
      this.device.queue.writeBuffer(this.arena, 0, this.arenaCpu.buffer, 0, this.arenaUsed);
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.arenaUsed = 0;
    this.pendingDispatches = 0;
    this.batchId++;
    this.stats.submissions++;
    if (tsRead) this.collectTimestamps(tsRead, tsNames);
  }

  private async collectTimestamps(staging: GPUBuffer, names: string[]): Promise<void> {
    await staging.mapAsync(GPUMapMode.READ, 0, names.length * 16);
    const t = new BigUint64Array(staging.getMappedRange(0, names.length * 16));
    names.forEach((name, i) => {
      const ns = Number(t[2 * i + 1] - t[2 * i]);
      const k = this.kernelStats.get(name);
      if (k && ns > 0) k.gpuNs += ns;
    });
    staging.unmap();
    this.stagingPool.get(staging.size)!.push(staging);
  }

  /** Submits pending work and waits for the GPU to finish it. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.checks.throwIfFailed();
  }

  /** Per-kernel counts, and GPU time / GFLOP/s where timestamps exist (DENOGRAD_DEBUG=1). */
  debugReport(): string {
    const rows = [...this.kernelStats.entries()].sort((a, b) => b[1].gpuNs - a[1].gpuNs);
    const lines = ["kernel                     count    gpu ms   GFLOP/s"];
    for (const [name, k] of rows) {
      const ms = k.gpuNs / 1e6;
      const gflops = k.gpuNs > 0 && k.flops > 0 ? (k.flops / k.gpuNs).toFixed(2) : "-";
      lines.push(
        `${name.padEnd(24)} ${String(k.count).padStart(8)} ${
          k.gpuNs ? ms.toFixed(2).padStart(9) : "        -"
        } ${gflops.padStart(9)}`,
      );
    }
    return lines.join("\n");
  }
}

const POISON_UNIFORMS = uniformBlock({ n: "u32", gx: "u32" });
const POISON: KernelSpec<typeof POISON_UNIFORMS.fields> = {
  name: "poison",
  key: "",
  bindings: ["write"],
  uniforms: POISON_UNIFORMS,
  code: () => `
${POISON_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read_write> x: array<u32>;
@group(0) @binding(1) var<uniform> u: U;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * u.gx + wg.x) * 256u + li;
  if (i < u.n) { x[i] = 0x7fc00000u; }
}`,
};

let current: Runtime | null = null;

export function setRuntime(rt: Runtime): void {
  current = rt;
}

/** The initialised runtime; `await init()` must have run. */
export function runtime(): Runtime {
  if (!current) throw new Error("denograd: call `await init()` before creating tensors");
  return current;
}
