// Mesa's llvmpipe (lavapipe, and its GL) gives each shader invocation 65,535 loop iterations, all
// its loops together, and then ends every loop silently: a kernel past the budget writes garbage
// and reports nothing. On such an adapter every kernel ends with one more loop of two trips (a
// loop's first trip runs even with the budget spent); an invocation that gets one trip has spent
// the budget, and records its kernel in a flag buffer. The flag travels back with the next read,
// so watching costs no round trip.

const ALL_PASS = 0xffffffff;

/** What the watch's own loop spends of the budget: two trips and the exit test. */
export const LOOP_WATCH_COST = 3;

export class LoopWatch {
  /** The flag: the smallest watched-kernel index that ran out, ALL_PASS while none did. */
  readonly flag: GPUBuffer;
  /** Kernel names (`name|key`) by the index baked into their code. */
  private readonly kernels: string[] = [];

  constructor(private readonly device: GPUDevice, readonly budget: number) {
    this.flag = device.createBuffer({
      size: 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    this.reset();
  }

  /**
   * `code` with the flag bound at `binding` and the last-loop test closing `main`; unchanged
   * without loops (the layout still holds the binding; the shader need not declare it).
   */
  instrument(code: string, binding: number, kernel: string): string {
    // A kernel without loops cannot spend the budget (and an elementwise kernel would pay ~15 %
    // for the test).
    if (!/\b(for|loop|while)\s*[({]/.test(code.replace(/\/\/.*$/gm, ""))) return code;
    const index = this.kernels.push(kernel) - 1;
    const end = endOfMain(code, kernel);
    return `${code.slice(0, end)}
  {
    var denograd_trips = 0u;
    for (var denograd_i = 0u; denograd_i <= arrayLength(&denograd_loop_flag); denograd_i++) {
      denograd_trips++;
    }
    if (denograd_trips < 2u) { atomicMin(&denograd_loop_flag[0], ${index}u); }
  }
${code.slice(end)}
@group(0) @binding(${binding}) var<storage, read_write> denograd_loop_flag: array<atomic<u32>>;
`;
  }

  /** Throws if the flag word read back names a kernel that ran out (and clears it). */
  check(word: number): void {
    if (word === ALL_PASS) return;
    this.reset();
    throw new Error(
      `denograd: kernel '${this.kernels[word]}' ran out of this adapter's loop budget ` +
        `(${this.budget} loop iterations per invocation, all its loops together); the driver ` +
        `cut its loops short, so its results are wrong. Use smaller sizes or a GPU adapter.`,
    );
  }

  private reset(): void {
    this.device.queue.writeBuffer(this.flag, 0, new Uint32Array([ALL_PASS]));
  }
}

/** Offset of the `}` that closes `fn main`'s body (line comments skipped). */
function endOfMain(code: string, kernel: string): number {
  const main = code.search(/\bfn main\s*\(/);
  if (main < 0) throw new Error(`denograd: kernel '${kernel}' has no fn main to watch`);
  const start = code.indexOf("{", main);
  let depth = 0;
  for (let i = start; i < code.length; i++) {
    const c = code[i];
    if (c === "/" && code[i + 1] === "/") {
      i = code.indexOf("\n", i);
      if (i < 0) break;
    } else if (c === "{") {
      depth++;
    } else if (c === "}" && --depth === 0) {
      return i;
    }
  }
  throw new Error(`denograd: kernel '${kernel}' has no fn main body to watch`);
}
