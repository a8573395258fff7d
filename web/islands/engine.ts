// Loads the in-page engine (web/engine_bundle.ts, built to /static/build/engine.js) and the
// browser benchmarks (bench/browser.ts, /static/build/bench.js) once, when an island first needs
// them: the islands bundle itself stays free of the engine.
export type Engine = typeof import("../engine_bundle.ts");
export type BrowserBench = typeof import("../../bench/browser.ts");

export const ENGINE_BUNDLE_PATH = "/static/build/engine.js";
export const BENCH_BUNDLE_PATH = "/static/build/bench.js";

let engine: Promise<Engine> | null = null;
let bench: Promise<BrowserBench> | null = null;

export function loadEngine(): Promise<Engine> {
  // A specifier in a variable: the bundler leaves the import to the browser.
  const url = ENGINE_BUNDLE_PATH;
  return engine ??= import(url) as Promise<Engine>;
}

/** The benchmarks open the device as they load: check `webGpuProblem()` first. */
export function loadBench(): Promise<BrowserBench> {
  const url = BENCH_BUNDLE_PATH;
  return bench ??= import(url) as Promise<BrowserBench>;
}

/**
 * Lets the browser paint and handle input before the caller goes on (between training steps).
 * A message, not requestAnimationFrame: that one stops in a hidden tab, and not setTimeout,
 * which browsers clamp to 4 ms once nested.
 */
export function yieldToBrowser(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}
