// Tensor: shape, dtype, pooled GPU storage, gradient; creation, readback, scopes.
import { gpu } from "./device.ts";
import { Runtime, runtime, type RuntimeOptions, setRuntime, type Storage } from "./runtime.ts";
import { backward, type Node, noGrad } from "./autograd.ts";
import { globalRng, type Rng } from "./random.ts";
import * as ew from "./ops/elementwise.ts";
import * as red from "./ops/reduce.ts";
import * as shp from "./ops/shape.ts";
import { matmul, type MatmulOptions } from "./ops/matmul.ts";

export type DType = "f32" | "i32" | "u32";
export type Shape = readonly number[];
type HostArray = Float32Array | Int32Array | Uint32Array;

/**
 * Initialises WebGPU; every other call needs it to have resolved once. The options of the first
 * call hold for the process; later calls return the same runtime.
 */
export async function init(options: RuntimeOptions = {}): Promise<Runtime> {
  try {
    return runtime();
  } catch {
    const rt = new Runtime(await gpu(), options);
    setRuntime(rt);
    return rt;
  }
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

function checkShape(shape: Shape, where: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(
        `${where}: invalid shape ${formatShape(shape)}: dimensions must be integers ≥ 0`,
      );
    }
  }
  checkAllocation(shape, where);
}

// ---- allocation limit ---------------------------------------------------------------------

let allocationLimit: { bytes: number; what: string } | null = null;

/**
 * Runs `fn` allowing it at most `bytes` bytes of new tensors in all: the tensor that would go
 * over throws (naming `what`) before anything is allocated for it, host arrays included. Loaders
 * build models from untrusted configs under it, bounded by what the file holds.
 */
export function withAllocationLimit<T>(bytes: number, what: string, fn: () => T): T {
  const outer = allocationLimit;
  allocationLimit = { bytes, what };
  try {
    return fn();
  } finally {
    allocationLimit = outer;
  }
}

/**
 * Throws if `count` values of shape `shape` (4 bytes each) do not fit in the allocation limit
 * (none outside withAllocationLimit); `charge` uses them up. Host-side initialisers that work
 * before creating their tensor call it first.
 */
export function checkAllocation(shape: Shape, where: string, charge = false): void {
  const limit = allocationLimit;
  if (limit === null) return;
  const bytes = 4 * Math.max(sizeOf(shape), charge ? 1 : 0);
  if (!(bytes <= limit.bytes)) {
    throw new Error(
      `${limit.what}: ${where} ${formatShape(shape)} needs ${bytes} bytes; only ` +
        `${limit.bytes} are left`,
    );
  }
  if (charge) limit.bytes -= bytes;
}

// ---- scopes -------------------------------------------------------------------------------

interface Scope {
  tensors: Set<Tensor>;
  /** Tensors `keep()`-ed inside the scope: their graphs must survive it. */
  kept: Tensor[];
}
const scopes: Scope[] = [];

/**
 * Runs `fn` and disposes every tensor created inside it except those it returns (a tensor, or
 * an array / object of tensors) and those marked with `keep()`. Returned tensors move to the
 * enclosing scope. A training step runs in one: its intermediates vanish, parameters persist.
 * Autograd nodes of disposed tensors that no surviving tensor depends on are freed too.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = { tensors: new Set(), kept: [] };
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const returned = new Set<Tensor>();
  collectTensors(result, returned);
  const parent = scopes[scopes.length - 1];
  const live = graphOf([...returned, ...scope.kept]);
  for (const t of scope.tensors) {
    if (returned.has(t)) {
      parent?.tensors.add(t);
      continue;
    }
    t.dispose();
    if (!live.has(t)) releaseNode(t);
  }
  if (parent) parent.kept.push(...scope.kept.filter((t) => t.node));
  return result;
}

/** Every tensor whose node a backward() from `roots` could still visit. */
function graphOf(roots: Tensor[]): Set<Tensor> {
  const seen = new Set<Tensor>();
  const stack = roots.filter((t) => t.node);
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    for (const input of t.node?.inputs ?? []) if (input.node && !seen.has(input)) stack.push(input);
  }
  return seen;
}

function releaseNode(t: Tensor): void {
  const node = t.node;
  if (!node) return;
  for (const s of node.saved) s.dispose();
  node.saved = [];
  node.freed = true;
  t.node = null;
}

/** Puts a tensor made outside the scope rules (a `retainView`) into the innermost scope. */
export function adoptIntoScope(t: Tensor): Tensor {
  scopes[scopes.length - 1]?.tensors.add(t);
  return t;
}

function collectTensors(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (value instanceof Tensor) out.add(value);
  else if (depth < 4 && Array.isArray(value)) {
    value.forEach((v) => collectTensors(v, out, depth + 1));
  } else if (depth < 4 && value && typeof value === "object" && !ArrayBuffer.isView(value)) {
    for (const v of Object.values(value)) collectTensors(v, out, depth + 1);
  }
}

// Safety net for tensors dropped outside any scope: their buffers return to the pool on GC.
const finalizer = new FinalizationRegistry<Storage>((storage) => {
  try {
    runtime().release(storage);
  } catch { /* runtime gone at exit */ }
});

// ---- the tensor ---------------------------------------------------------------------------

export class Tensor {
  readonly size: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: Node | null = null;
  private disposed = false;

  constructor(
    readonly shape: Shape,
    readonly dtype: DType,
    readonly storage: Storage,
  ) {
    this.size = sizeOf(shape);
    scopes[scopes.length - 1]?.tensors.add(this);
    finalizer.register(this, storage, this);
  }

  /** An uninitialised tensor whose storage comes from the pool (ops write into it). */
  static empty(shape: Shape, dtype: DType = "f32"): Tensor {
    checkShape(shape, "Tensor.empty");
    checkAllocation(shape, "Tensor.empty", true);
    return new Tensor([...shape], dtype, runtime().alloc(Math.max(sizeOf(shape), 1) * 4));
  }

  /** From host data (row-major); `data.length` must match the shape. */
  static from(
    data: ArrayLike<number>,
    shape: Shape = [data.length],
    dtype: DType = "f32",
  ): Tensor {
    checkShape(shape, "Tensor.from");
    if (data.length !== sizeOf(shape)) {
      throw new Error(
        `Tensor.from: ${data.length} values do not fill shape ${formatShape(shape)} ` +
          `(expected ${sizeOf(shape)})`,
      );
    }
    const host = toHost(data, dtype);
    const t = Tensor.empty(shape, dtype);
    if (host.length) runtime().upload(t.storage, host);
    return t;
  }

  static scalar(value: number, dtype: DType = "f32"): Tensor {
    return Tensor.from([value], [], dtype);
  }

  static full(shape: Shape, value: number, dtype: DType = "f32"): Tensor {
    checkShape(shape, "Tensor.full");
    return ew.fill(shape, value, dtype);
  }

  static zeros(shape: Shape, dtype: DType = "f32"): Tensor {
    return Tensor.full(shape, 0, dtype);
  }

  static ones(shape: Shape, dtype: DType = "f32"): Tensor {
    return Tensor.full(shape, 1, dtype);
  }

  /** Uniform in [low, high) from a seeded host generator (deterministic per seed). */
  static uniform(shape: Shape, low = 0, high = 1, rng: Rng = globalRng): Tensor {
    checkShape(shape, "Tensor.uniform");
    const data = new Float32Array(sizeOf(shape));
    for (let i = 0; i < data.length; i++) data[i] = rng.uniform(low, high);
    return Tensor.from(data, shape);
  }

  /** Normal(mean, std) from a seeded host generator. */
  static normal(shape: Shape, mean = 0, std = 1, rng: Rng = globalRng): Tensor {
    checkShape(shape, "Tensor.normal");
    const data = new Float32Array(sizeOf(shape));
    for (let i = 0; i < data.length; i++) data[i] = rng.normal(mean, std);
    return Tensor.from(data, shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  // ---- lifetime ---------------------------------------------------------------------------

  /** Releases this handle's reference to its storage (views keep the storage alive). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    finalizer.unregister(this);
    for (const scope of scopes) scope.tensors.delete(this);
    runtime().release(this.storage);
    // The node stays: a later backward() from a surviving tensor may pass through it.
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  /** Takes this tensor out of every scope: it lives until disposed (parameters, state). */
  keep(): this {
    for (const scope of scopes) scope.tensors.delete(this);
    if (this.node) scopes[scopes.length - 1]?.kept.push(this);
    return this;
  }

  /** A new handle on the same storage, outside every scope (used by the tape for saved tensors). */
  retainView(shape: Shape = this.shape): Tensor {
    this.assertAlive("retainView");
    this.storage.refs++;
    const view = new Tensor(shape, this.dtype, this.storage);
    return view.keep();
  }

  assertAlive(op: string): void {
    if (this.disposed) {
      throw new Error(`${op}: tensor of shape ${formatShape(this.shape)} was already disposed`);
    }
  }

  // ---- readback ---------------------------------------------------------------------------

  /** Copies the values to the host (submits pending work; never blocks the thread). */
  async data(): Promise<HostArray> {
    this.assertAlive("data");
    if (this.size === 0) return emptyHost(this.dtype);
    const bytes = await runtime().read(this.storage, this.size * 4);
    return this.dtype === "f32"
      ? new Float32Array(bytes)
      : this.dtype === "i32"
      ? new Int32Array(bytes)
      : new Uint32Array(bytes);
  }

  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new Error(`item: tensor has ${this.size} elements, expected exactly 1`);
    }
    return (await this.data())[0];
  }

  /** Nested arrays in row-major order (a number for 0-d tensors). */
  async toArray(): Promise<unknown> {
    const flat = Array.from(await this.data());
    if (this.rank === 0) return flat[0];
    const build = (dim: number, offset: number): unknown[] => {
      const n = this.shape[dim];
      if (dim === this.rank - 1) return flat.slice(offset, offset + n);
      const stride = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: n }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  // ---- autograd ---------------------------------------------------------------------------

  /** Marks this tensor as a leaf whose gradient is wanted. */
  requireGrad(on = true): this {
    this.requiresGrad = on;
    return this;
  }

  /** Reverse-mode sweep; `grad` defaults to ones for a one-element tensor. */
  backward(grad?: Tensor): void {
    if (!grad && this.size !== 1) {
      throw new Error(
        `backward: output has shape ${
          formatShape(this.shape)
        }; pass a gradient or reduce to a scalar`,
      );
    }
    backward(this, grad ?? noGrad(() => Tensor.ones(this.shape)), ew.add);
  }

  /** Same storage, no gradient history. */
  detach(): Tensor {
    const view = this.retainView();
    scopes[scopes.length - 1]?.tensors.add(view);
    return view;
  }

  // ---- op shortcuts (implementations live in engine/ops/*) -------------------------------

  reshape(shape: Shape): Tensor {
    return shp.reshape(this, shape);
  }
  flatten(startDim = 1): Tensor {
    return shp.reshape(this, [
      ...this.shape.slice(0, startDim),
      sizeOf(this.shape.slice(startDim)),
    ]);
  }
  permute(perm: readonly number[]): Tensor {
    return shp.permute(this, perm);
  }
  transpose(a = -2, b = -1): Tensor {
    return shp.transpose(this, a, b);
  }
  add(other: Tensor | number): Tensor {
    return ew.add(this, other);
  }
  sub(other: Tensor | number): Tensor {
    return ew.sub(this, other);
  }
  mul(other: Tensor | number): Tensor {
    return ew.mul(this, other);
  }
  div(other: Tensor | number): Tensor {
    return ew.div(this, other);
  }
  pow(other: Tensor | number): Tensor {
    return ew.pow(this, other);
  }
  neg(): Tensor {
    return ew.neg(this);
  }
  exp(): Tensor {
    return ew.exp(this);
  }
  log(): Tensor {
    return ew.log(this);
  }
  sqrt(): Tensor {
    return ew.sqrt(this);
  }
  abs(): Tensor {
    return ew.abs(this);
  }
  relu(): Tensor {
    return ew.relu(this);
  }
  sigmoid(): Tensor {
    return ew.sigmoid(this);
  }
  tanh(): Tensor {
    return ew.tanh(this);
  }
  matmul(other: Tensor, options?: MatmulOptions): Tensor {
    return matmul(this, other, options);
  }
  sum(axes?: number | readonly number[], keepDims = false): Tensor {
    return red.sum(this, axes, keepDims);
  }
  mean(axes?: number | readonly number[], keepDims = false): Tensor {
    return red.mean(this, axes, keepDims);
  }
  max(axes?: number | readonly number[], keepDims = false): Tensor {
    return red.max(this, axes, keepDims);
  }
  argmax(axis = -1): Tensor {
    return red.argmax(this, axis);
  }
  softmax(axis = -1): Tensor {
    return red.softmax(this, axis);
  }
  logSoftmax(axis = -1): Tensor {
    return red.logSoftmax(this, axis);
  }
}

function toHost(data: ArrayLike<number>, dtype: DType): HostArray {
  if (dtype === "f32") return data instanceof Float32Array ? data : Float32Array.from(data);
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!Number.isInteger(v)) {
      throw new Error(`Tensor.from: value ${v} at index ${i} is not an integer (dtype ${dtype})`);
    }
    if (dtype === "u32" && v < 0) {
      throw new Error(`Tensor.from: value ${v} at index ${i} is negative (dtype u32)`);
    }
  }
  if (dtype === "i32") return data instanceof Int32Array ? data : Int32Array.from(data);
  return data instanceof Uint32Array ? data : Uint32Array.from(data);
}

function emptyHost(dtype: DType): HostArray {
  return dtype === "f32"
    ? new Float32Array(0)
    : dtype === "i32"
    ? new Int32Array(0)
    : new Uint32Array(0);
}
