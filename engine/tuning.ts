// Tuning tables. Each kernel family declares its tunables per adapter class beside its kernels;
// they all register here, the one place that picks the table of the adapter in use and lets
// tests and benchmarks read every table or force a value.
import type { AdapterReport } from "./device.ts";
import { runtime } from "./runtime.ts";

/** CPU implementations of WebGPU (lavapipe, llvmpipe, SwiftShader) want other layouts than GPUs. */
export type AdapterClass = "cpu" | "gpu";

export function adapterClass(
  report: Pick<AdapterReport, "isFallbackAdapter" | "description">,
): AdapterClass {
  const cpu = report.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(report.description);
  return cpu ? "cpu" : "gpu";
}

/** Threads a CPU adapter runs workgroups on: one per core, one workgroup each at a time. */
export function cpuThreads(): number {
  return globalThis.navigator?.hardwareConcurrency ?? 8;
}

/**
 * A family's values per adapter class. Two CPU adapters' compilers need their own entries, which
 * replace `cpu` where given: `cpu-gl` on Mesa's GL path (the host says so through
 * RuntimeOptions.backend), whose GLSL compiler takes minutes on kernels that its Vulkan path
 * compiles in a second; `cpu-swiftshader` on Chromium's SwiftShader, which loses the device on
 * some large unrolled kernels that lavapipe runs.
 */
export type TuningTable<T> = Record<AdapterClass, T> & { "cpu-gl"?: T; "cpu-swiftshader"?: T };

/** The entry of `table` for an adapter and host backend. */
export function tableEntry<T>(
  table: Readonly<TuningTable<T>>,
  report: Pick<AdapterReport, "isFallbackAdapter" | "description" | "architecture">,
  backend: string | null,
): T {
  const kind = adapterClass(report);
  if (kind === "gpu") return table.gpu;
  const swiftShader = /swiftshader/i.test(`${report.architecture} ${report.description}`);
  const variant = backend === "gl"
    ? table["cpu-gl"]
    : swiftShader
    ? table["cpu-swiftshader"]
    : undefined;
  return variant ?? table.cpu;
}

export class Tunable<T> {
  private forced: T | null = null;

  constructor(
    readonly family: string,
    readonly table: Readonly<TuningTable<T>>,
    private readonly validate: (value: T) => void,
  ) {
    for (const value of Object.values(table)) validate(value);
  }

  /** The forced value, or the entry for the adapter in use. */
  get(): T {
    if (this.forced !== null) return this.forced;
    const rt = runtime();
    return tableEntry(this.table, rt.ctx.report, rt.backend);
  }

  /** Forces a value (tests run every table; benchmarks compare them); null restores the table. */
  set(value: T | null): void {
    if (value !== null) this.validate(value);
    this.forced = value;
  }
}

const registry = new Map<string, Tunable<unknown>>();

/**
 * Declares a family's tunables (one declaration per family); `validate` throws on a value the
 * kernels cannot run with, for the table's entries and for every forced value.
 */
export function tunable<T>(
  family: string,
  table: TuningTable<T>,
  validate: (value: T) => void = () => {},
): Tunable<T> {
  if (registry.has(family)) throw new Error(`tunable: family '${family}' is declared twice`);
  const entry = new Tunable(family, table, validate);
  registry.set(family, entry as Tunable<unknown>);
  return entry;
}

/** Every declared table, by family (benchmarks record them with their results). */
export function tuningTables(): Record<string, Readonly<TuningTable<unknown>>> {
  return Object.fromEntries([...registry].map(([family, t]) => [family, t.table]));
}
