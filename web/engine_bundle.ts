// The engine as the web UI's pages run it: `deno task web:build` bundles this file for the
// browser into /static/build/engine.js, and the islands that need a GPU load it on demand
// (web/islands/engine.ts), so other pages never download it. Everything those pages call comes
// through this one module, so they share one runtime, one pipeline cache and one buffer pool.
import { type AdapterReport, gpu } from "../engine/device.ts";
import type { Runtime } from "../engine/runtime.ts";
import { init } from "../engine/tensor.ts";

export { noGrad } from "../engine/autograd.ts";
export { loadModelState } from "../engine/io/checkpoint.ts";
export { buildModel, type LayerConfig } from "../engine/io/config.ts";
export { decodeSafetensors } from "../engine/io/safetensors.ts";
export { softmaxCrossEntropy } from "../engine/ops/loss.ts";
export { softmax } from "../engine/ops/reduce.ts";
export { Adam } from "../engine/optim/optimizers.ts";
export { Tensor, tidy } from "../engine/tensor.ts";
export { fit, predict } from "../engine/train/fit.ts";
export { Predictor } from "./predict.ts";
export { AttentionGru } from "../models/attention_gru.ts";
export { burstTask, sumTask } from "../labs/data/attention_tasks.ts";

/** Why this browser cannot run the engine, in words for the page; null when it can. */
export async function webGpuProblem(): Promise<string | null> {
  if (!globalThis.navigator?.gpu) {
    return "This browser has no WebGPU (navigator.gpu is missing). Use a recent Chrome, Edge " +
      "or Safari, or Firefox with WebGPU enabled; on Linux, Chromium needs " +
      "--enable-unsafe-webgpu (and --enable-features=Vulkan for a GPU).";
  }
  try {
    await gpu();
    return null;
  } catch (e) {
    return `WebGPU is present but no adapter could be opened: ${(e as Error).message}`;
  }
}

/** The runtime and the adapter it runs on (the first call opens the device). */
export async function startEngine(): Promise<{ rt: Runtime; adapter: AdapterReport }> {
  const rt = await init();
  return { rt, adapter: rt.ctx.report };
}
