// Load test of the predict API: `deno run -A bench/api_load.ts [--model PATH | --quick-model]
// [--duration 30] [--connections 64] [--threads 2] [--out FILE]`.
// Starts `web/serve.ts` as its own process on a free loopback port, checks its answers on 100
// real MNIST test digits, then drives it with wrk (Debian: `apt-get install -y wrk`) POSTing
// those digits (bench/api_load.lua) and reports requests/s, latency percentiles, errors, the
// mean micro-batch size and the machine load (CPU busy share, the server's own CPU use).
// --quick-model trains the TP1 architecture (784 → 512 ReLU → Dropout 0.2 → 10 softmax) for
// 300 steps here when no model from `deno task train tp1` is at hand: serving cost is the same.
import { parseArgs } from "node:util";
import * as path from "node:path";
import { saveModel } from "../engine/io/checkpoint.ts";
import { Softmax } from "../engine/nn/activation.ts";
import { Dropout } from "../engine/nn/dropout.ts";
import { Linear } from "../engine/nn/linear.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { softmaxCrossEntropy } from "../engine/ops/loss.ts";
import { Adam } from "../engine/optim/optimizers.ts";
import { Rng } from "../engine/random.ts";
import { init, Tensor } from "../engine/tensor.ts";
import { fit } from "../engine/train/fit.ts";
import { loadMnist, type Mnist, MNIST_PIXELS } from "../labs/data/mnist.ts";
import { DEFAULT_MODEL } from "../web/serve.ts";
import { engineOptionsFromEnv } from "../host/env.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: DEFAULT_MODEL },
    "quick-model": { type: "boolean", default: false },
    duration: { type: "string", default: "30" },
    connections: { type: "string", default: "64" },
    threads: { type: "string", default: "2" },
    out: { type: "string" },
  },
});
const root = path.resolve(import.meta.dirname!, "..");
const duration = Number(values.duration);
const tmp = await Deno.makeTempDir({ prefix: "denograd-api-load-" });
const mnist = await loadMnist();

/** TP1's model, briefly trained on logits, then ended with Softmax as Keras' Dense(10, softmax). */
async function quickModel(data: Mnist): Promise<string> {
  await init(engineOptionsFromEnv());
  const rng = new Rng(0);
  const hidden = new Linear(MNIST_PIXELS, 512, { activation: "relu", rng });
  const out = new Linear(512, 10, { rng });
  const train = new Sequential(hidden, new Dropout(0.2), out);
  const n = 300 * 128;
  await fit(train, new Adam(train.parameters()), {
    x: Tensor.from(data.trainImages.subarray(0, n * MNIST_PIXELS), [n, MNIST_PIXELS]),
    y: Tensor.from(data.trainLabels.subarray(0, n), [n], "i32"),
  }, { loss: softmaxCrossEntropy, batchSize: 128 });
  const file = path.join(tmp, "mnist-model.safetensors");
  await Deno.writeFile(file, await saveModel(new Sequential(train, new Softmax())));
  return file;
}

const modelPath = values["quick-model"] ? await quickModel(mnist) : values.model;

/** CPU jiffies: whole machine (busy, total) and one process (user + system). */
async function machineCpu(): Promise<{ busy: number; total: number }> {
  const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0];
  const ticks = line.split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  return { busy: total - ticks[3] - ticks[4], total }; // idle and iowait are not busy
}
async function processCpuTicks(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime, stime
}
const CLOCK_TICKS_PER_S = 100;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

const port = freePort();
const base = `http://127.0.0.1:${port}`;
const server = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", "web/serve.ts", "--model", modelPath, "--port", String(port)],
  cwd: root,
  stdout: "inherit",
  stderr: "inherit",
}).spawn();

try {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const health = await fetch(`${base}/health`);
      await health.body?.cancel();
      if (health.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error("the server did not come up within 60 s");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  // Correctness first: the 100 digits the load will send, answered one by one.
  const digits = 100;
  const bodies: string[] = [];
  let correct = 0;
  for (let i = 0; i < digits; i++) {
    const image = Array.from(
      mnist.testImages.subarray(i * MNIST_PIXELS, (i + 1) * MNIST_PIXELS),
      (v) => Math.round(v * 255),
    );
    bodies.push(JSON.stringify({ image }));
    const response = await fetch(`${base}/predict`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: bodies[i],
    });
    if (!response.ok) throw new Error(`digit ${i}: ${response.status} ${await response.text()}`);
    if ((await response.json()).prediction === mnist.testLabels[i]) correct++;
  }
  const bodiesFile = path.join(tmp, "bodies.jsonl");
  await Deno.writeTextFile(bodiesFile, bodies.join("\n") + "\n");

  const before = await (await fetch(`${base}/health`)).json();
  const cpu0 = await machineCpu();
  const server0 = await processCpuTicks(server.pid);
  const load0 = await Deno.readTextFile("/proc/loadavg");
  let wrk;
  try {
    wrk = await new Deno.Command("wrk", {
      args: [
        `-t${values.threads}`,
        `-c${values.connections}`,
        `-d${duration}s`,
        "--latency",
        "-s",
        path.join(root, "bench/api_load.lua"),
        `${base}/predict`,
        "--",
        bodiesFile,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error("wrk is not installed: apt-get install -y wrk");
    }
    throw e;
  }
  const cpu1 = await machineCpu();
  const server1 = await processCpuTicks(server.pid);
  const load1 = await Deno.readTextFile("/proc/loadavg");
  const after = await (await fetch(`${base}/health`)).json();
  const report = new TextDecoder().decode(wrk.stdout);
  if (wrk.code !== 0) throw new Error(`wrk failed: ${new TextDecoder().decode(wrk.stderr)}`);

  const ms = (text: string | undefined) => {
    const m = text?.match(/([\d.]+)(us|ms|s)\b/);
    if (!m) return NaN;
    return Number(m[1]) * (m[2] === "us" ? 1e-3 : m[2] === "s" ? 1e3 : 1);
  };
  const percentile = (p: number) => ms(report.match(new RegExp(`^\\s*${p}%\\s+(\\S+)`, "m"))?.[1]);
  const requests = Number(report.match(/(\d+) requests in/)?.[1]);
  const non2xx = Number(report.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const socket = report.match(
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/,
  );
  const socketErrors = socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const passes = after.batching.forward_passes - before.batching.forward_passes;
  const served = after.batching.requests - before.batching.requests;
  const result = {
    adapter: after.adapter.description,
    backend: Deno.env.get("DENO_WEBGPU_BACKEND") ?? "default",
    model: { path: modelPath, params: after.model.params },
    accuracy_on_sent_digits: correct / digits,
    load: { tool: "wrk 4.x", duration_s: duration, connections: Number(values.connections) },
    requests,
    requests_per_s: Number(report.match(/Requests\/sec:\s+([\d.]+)/)?.[1]),
    latency_ms: { p50: percentile(50), p90: percentile(90), p99: percentile(99) },
    errors: { non_2xx: non2xx, socket: socketErrors },
    batching: {
      forward_passes: passes,
      mean_batch: served / passes,
      largest_batch: after.batching.largest_batch,
    },
    machine: {
      cores: navigator.hardwareConcurrency,
      cpu_busy_share: (cpu1.busy - cpu0.busy) / (cpu1.total - cpu0.total),
      server_cpu_cores: (server1 - server0) / CLOCK_TICKS_PER_S / duration,
      loadavg_before: load0.trim(),
      loadavg_after: load1.trim(),
    },
  };
  console.log(report);
  console.log(JSON.stringify(result, null, 2));
  if (values.out) await Deno.writeTextFile(values.out, JSON.stringify(result, null, 2) + "\n");
} finally {
  server.kill("SIGTERM");
  await server.status;
  await Deno.remove(tmp, { recursive: true });
}
