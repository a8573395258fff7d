// The Deno host's side of the engine's debug switches. engine/ never reads the environment (it
// runs in the browser too); every Deno entry point — the labs CLI, the web server, the benches
// and the tests — passes `engineOptionsFromEnv()` to `init()`.
import type { RuntimeOptions } from "../engine/runtime.ts";

/**
 * A variable's value, or undefined when it is unset, the process may not read it, or there is no
 * environment at all (the browser, where the shared test helpers also run).
 */
export function readEnv(name: string): string | undefined {
  if (typeof Deno === "undefined") return undefined;
  // Asking first: without --allow-env, Deno.env.get would throw or prompt.
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return undefined;
  }
  return Deno.env.get(name);
}

/**
 * `init()` options from DENOGRAD_DEBUG (`1`: per-kernel counters and GPU time, `keys`: per
 * kernel specialisation), DENOGRAD_CHECK_NAN (`1`: name the first op that produced a NaN or
 * Inf) and DENOGRAD_CHECK_INDICES (`1`: name the first op that got an out-of-range index or
 * class id). Unset, empty or `0` leaves a switch off. DENO_WEBGPU_BACKEND is passed on as the
 * backend the tuning tables see.
 */
export function engineOptionsFromEnv(
  env: (name: string) => string | undefined = readEnv,
): RuntimeOptions {
  const on = (value: string | undefined) => value !== undefined && value !== "" && value !== "0";
  const debug = env("DENOGRAD_DEBUG");
  // Deno's own switch between wgpu's Vulkan and GL backends; some tunings differ on GL.
  const backend = env("DENO_WEBGPU_BACKEND");
  return {
    debug: debug === "keys" ? "keys" : on(debug),
    checkNaN: on(env("DENOGRAD_CHECK_NAN")),
    checkIndices: on(env("DENOGRAD_CHECK_INDICES")),
    ...(backend ? { backend } : {}),
  };
}
