// Loads the in-page engine (web/engine_bundle.ts, built to /static/build/engine.js) once, when
// an island first needs it: the islands bundle itself stays free of the engine.
export type Engine = typeof import("../engine_bundle.ts");

export const ENGINE_BUNDLE_PATH = "/static/build/engine.js";

let loading: Promise<Engine> | null = null;

export function loadEngine(): Promise<Engine> {
  // A specifier in a variable: the bundler leaves the import to the browser.
  const url = ENGINE_BUNDLE_PATH;
  return loading ??= import(url) as Promise<Engine>;
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
