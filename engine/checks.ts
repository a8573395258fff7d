// Checks on the GPU: NaN / Inf in an op's outputs (DENOGRAD_CHECK_NAN=1) and indices outside
// their bound (DENOGRAD_CHECK_INDICES=1). Each check is one small dispatch after the op that
// records the first failing check's index in a flag buffer; the flag is read at the next sync,
// so checking adds no GPU→CPU round trip of its own.
import type { IndexRange, KernelSpec, LaunchArgs, Storage } from "./runtime.ts";
import { type UniformBlock, uniformBlock, type UniformFields } from "./uniforms.ts";

/** What the checks need of the runtime. */
export interface CheckHost {
  alloc(bytes: number): Storage;
  upload(storage: Storage, data: ArrayBufferView): void;
  launch<F extends UniformFields>(kernel: KernelSpec<F>, args: LaunchArgs<F>): void;
  read(storage: Storage, bytes: number): Promise<ArrayBuffer>;
}

const ALL_PASS = 0xffffffff;

export class GpuChecks {
  /** The first failed check (an index into `messages`), ALL_PASS while all pass. */
  private flag: Storage | null = null;
  /** What each check encoded since the last failure reports if it fails (by flag index). */
  private messages: string[] = [];

  constructor(private readonly host: CheckHost) {}

  /** Encodes a check that records `opName` if `storage` holds a NaN or Inf in its first `n` floats. */
  finite(storage: Storage, n: number, opName: string): void {
    this.encode(
      CHECK_FINITE,
      storage,
      n,
      `op '${opName}' produced NaN or Inf (DENOGRAD_CHECK_NAN)`,
    );
  }

  /** Encodes a check that records `opName` if an index of `range` is outside [0, bound). */
  range(range: IndexRange, opName: string): void {
    if (range.size === 0) return;
    this.encode(
      CHECK_RANGE,
      range.storage,
      range.size,
      `op '${opName}' got ${range.what ?? "an index"} outside [0, ${range.bound}) ` +
        "(DENOGRAD_CHECK_INDICES)",
      range.bound,
    );
  }

  /** Throws the first failed check's message since the last call (reads the flag back). */
  async throwIfFailed(): Promise<void> {
    const flag = this.flag;
    if (!flag) return;
    this.flag = null; // reading it below must not recurse into this check
    const first = new Uint32Array(await this.host.read(flag, 4))[0];
    this.flag = flag;
    if (first !== ALL_PASS) {
      const failed = this.messages[first];
      this.host.upload(flag, new Uint32Array([ALL_PASS]));
      this.messages = [];
      throw new Error(`denograd: ${failed}`);
    }
  }

  private encode(
    kernel: KernelSpec<typeof CHECK_UNIFORMS.fields>,
    storage: Storage,
    n: number,
    message: string,
    bound = 0,
  ): void {
    if (!this.flag) {
      this.flag = this.host.alloc(4);
      this.host.upload(this.flag, new Uint32Array([ALL_PASS]));
    }
    this.messages.push(message);
    const index = this.messages.length - 1;
    const groups = Math.ceil(n / 256);
    const gx = Math.min(groups, 65535);
    this.host.launch(kernel, {
      buffers: [storage, this.flag],
      params: { n, bound, index, gx },
      groups: [gx, Math.ceil(groups / gx)],
    });
  }
}

const CHECK_UNIFORMS = uniformBlock({ n: "u32", bound: "u32", index: "u32", gx: "u32" });

/**
 * A kernel that records `u.index` in `flag` (the smallest wins) when element i of x, read as
 * u32, fails `test`.
 */
function flagKernel<F extends UniformFields>(
  name: string,
  uniforms: UniformBlock<F>,
  test: string,
): KernelSpec<F> {
  return {
    name,
    key: "",
    bindings: ["read", "write"],
    uniforms,
    code: () => `
${uniforms.struct()}
@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> flag: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * u.gx + wg.x) * 256u + li;
  if (i >= u.n) { return; }
  if (${test}) { atomicMin(&flag[0], u.index); }
}`,
  };
}

const CHECK_FINITE = flagKernel(
  "check_finite",
  CHECK_UNIFORMS,
  "(x[i] & 0x7f800000u) == 0x7f800000u",
);

// i32 indices are read as u32: a negative one becomes huge and fails the same test.
const CHECK_RANGE = flagKernel("check_range", CHECK_UNIFORMS, "x[i] >= u.bound");
