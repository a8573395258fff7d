// The predict API end to end: a small MLP trained here on real MNIST, saved with saveModel,
// served by the real server (Deno.serve on a free port) and compared with a float64 CPU forward
// of the same weights; every malformed request, the body limit, micro-batching, a seeded fuzz
// run, start-up failures (subprocesses) and the Dockerfile's paths.
import assert from "node:assert/strict";
import * as path from "node:path";
import { modelState, saveModel } from "../engine/io/checkpoint.ts";
import { modelConfig } from "../engine/io/config.ts";
import { encodeSafetensors } from "../engine/io/safetensors.ts";
import { ReLU, Softmax } from "../engine/nn/activation.ts";
import { Linear } from "../engine/nn/linear.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { softmaxCrossEntropy } from "../engine/ops/loss.ts";
import { Adam } from "../engine/optim/optimizers.ts";
import { Rng } from "../engine/random.ts";
import { runtime } from "../engine/runtime.ts";
import { Tensor } from "../engine/tensor.ts";
import { fit } from "../engine/train/fit.ts";
import { loadMnist } from "../labs/data/mnist.ts";
import { HttpError, MicroBatcher, parseImage, Predictor } from "../web/predict.ts";
import { DEFAULT_MODEL, parseServeArgs, startServer } from "../web/serve.ts";
import { setup } from "./helpers.ts";

await setup();
const root = path.resolve(import.meta.dirname!, "..");
const PIXELS = 784;

// ---- a model trained here: 784 → 64 ReLU → 10 logits, ~315 Adam steps on 4,000 digits ------

const mnist = await loadMnist();
const TRAIN = 4000;
const rng = new Rng(7);
const model = new Sequential(
  new Linear(PIXELS, 64, { activation: "relu", rng }),
  new Linear(64, 10, { rng }),
);
await fit(model, new Adam(model.parameters(), { lr: 3e-3 }), {
  x: Tensor.from(mnist.trainImages.subarray(0, TRAIN * PIXELS), [TRAIN, PIXELS]),
  y: Tensor.from(mnist.trainLabels.subarray(0, TRAIN), [TRAIN], "i32"),
}, { loss: softmaxCrossEntropy, epochs: 5, batchSize: 64, seed: 1 });

const tmp = await Deno.makeTempDir();
const modelPath = path.join(tmp, "mnist-model.safetensors");
await Deno.writeFile(modelPath, await saveModel(model));

/** Independent float64 forward of the trained weights (the server must agree). */
const weights = Object.fromEntries(
  Object.entries(await modelState(model)).map(([name, entry]) => [name, entry.data]),
);
function cpuProbabilities(pixels: ArrayLike<number>): number[] {
  const hidden = new Float64Array(64);
  for (let j = 0; j < 64; j++) {
    let s = weights["0.bias"][j];
    for (let i = 0; i < PIXELS; i++) s += (pixels[i] / 255) * weights["0.weight"][i * 64 + j];
    hidden[j] = Math.max(s, 0);
  }
  const logits = Array.from({ length: 10 }, (_, c) => {
    let s = weights["1.bias"][c];
    for (let j = 0; j < 64; j++) s += hidden[j] * weights["1.weight"][j * 10 + c];
    return s;
  });
  const top = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - top));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

/** Test digit i as the handout's client sends it: 784 integers 0–255. */
function testDigit(i: number): number[] {
  return Array.from(
    mnist.testImages.subarray(i * PIXELS, (i + 1) * PIXELS),
    (v) => Math.round(v * 255),
  );
}

const { server, port, batcher } = await startServer({
  modelPath,
  port: 0,
  host: "127.0.0.1",
  maxBatch: 64,
  maxWaitMs: 2,
}, { quiet: true });
const base = `http://127.0.0.1:${port}`;

interface Answer {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
  headers: Headers;
}

async function call(
  pathname: string,
  init: RequestInit & { json?: unknown } = {},
): Promise<Answer> {
  const { json, ...rest } = init;
  const request: RequestInit = json === undefined ? rest : {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(json),
    ...rest,
  };
  const response = await fetch(base + pathname, request);
  const text = await response.text();
  return {
    status: response.status,
    body: text ? JSON.parse(text) : null,
    headers: response.headers,
  };
}

const post = (body: BodyInit, headers: HeadersInit = { "content-type": "application/json" }) =>
  call("/predict", { method: "POST", body, headers });

function assertProbabilities(body: Answer["body"], expected: number[]): void {
  assert.deepEqual(Object.keys(body).sort(), ["prediction", "probabilities"]);
  assert.equal(body.probabilities.length, 1, "probabilities is a 1×10 nested list");
  const p: number[] = body.probabilities[0];
  assert.equal(p.length, 10);
  for (let c = 0; c < 10; c++) {
    assert.ok(Math.abs(p[c] - expected[c]) < 1e-4, `p[${c}] = ${p[c]}, expected ${expected[c]}`);
  }
  assert.equal(body.prediction, p.indexOf(Math.max(...p)));
}

// The server's connections outlive single tests (keep-alive): skip the op/resource sanitizers.
function serverTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });
}

// ---- correct answers -------------------------------------------------------------------------

serverTest("predict API: real test digits are classified, matching a float64 forward", async () => {
  let correct = 0;
  for (let i = 0; i < 10; i++) {
    const { status, body } = await call("/predict", { json: { image: testDigit(i) } });
    assert.equal(status, 200);
    assertProbabilities(body, cpuProbabilities(testDigit(i)));
    if (i === 0) assert.equal(body.prediction, 7, "the first MNIST test digit is a 7");
    if (body.prediction === mnist.testLabels[i]) correct++;
  }
  assert.ok(correct >= 9, `${correct}/10 of the first test digits classified correctly`);
});

serverTest("predict API: 28×28, 1×784 and 1×28×28 nestings give the flat answer", async () => {
  const flat = testDigit(3);
  const rows = Array.from({ length: 28 }, (_, r) => flat.slice(r * 28, r * 28 + 28));
  const expected = cpuProbabilities(flat);
  for (const image of [flat, rows, [flat], [rows]]) {
    const { status, body } = await call("/predict", { json: { image, extra: "ignored" } });
    assert.equal(status, 200);
    assertProbabilities(body, expected);
  }
  // Fractional pixels are fine; charset parameters and a missing Content-Type too.
  const soft = flat.map((v) => v * 0.5 + 0.25);
  const charset = await post(JSON.stringify({ image: soft }), {
    "content-type": "application/json; charset=utf-8",
  });
  assertProbabilities(charset.body, cpuProbabilities(soft));
  const untyped = await post(new TextEncoder().encode(JSON.stringify({ image: flat })), {});
  assert.equal(untyped.status, 200);
});

serverTest(
  "predict API: 200 concurrent requests are micro-batched and answered correctly",
  async () => {
    const before = { ...batcher.stats };
    const n = 200;
    const answers = await Promise.all(
      Array.from(
        { length: n },
        (_, i) => call("/predict", { json: { image: testDigit(100 + i) } }),
      ),
    );
    let correct = 0;
    answers.forEach(({ status, body }, i) => {
      assert.equal(status, 200);
      assertProbabilities(body, cpuProbabilities(testDigit(100 + i)));
      if (body.prediction === mnist.testLabels[100 + i]) {
        correct++;
      }
    });
    assert.ok(correct / n >= 0.85, `accuracy ${correct / n} on ${n} test digits`);
    const passes = batcher.stats.forward_passes - before.forward_passes;
    assert.equal(batcher.stats.requests - before.requests, n);
    assert.ok(passes <= n / 4, `${n} concurrent requests took ${passes} forward passes`);
    assert.ok(batcher.stats.largest_batch > 1);
  },
);

serverTest("predict API: GET /health reports the model and the batching counters", async () => {
  const { status, body } = await call("/health");
  assert.equal(status, 200);
  assert.equal(body.status, "ok");
  assert.equal(body.model.path, modelPath);
  assert.equal(body.model.params, 784 * 64 + 64 + 64 * 10 + 10);
  assert.deepEqual(body.model.input_shape, [784]);
  assert.equal(body.model.classes, 10);
  assert.equal(body.model.model_output, "logits");
  assert.equal(body.model.architecture.class, "Sequential");
  assert.equal(body.batching.max_batch, 64);
  assert.equal(body.batching.forward_passes, batcher.stats.forward_passes);
  assert.equal(typeof body.adapter.description, "string");
  const head = await fetch(`${base}/health`, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
});

// ---- bad requests ----------------------------------------------------------------------------

const good = testDigit(0);
const withValue = (index: number, value: unknown) => good.map((v, i) => i === index ? value : v);
const replaceToken = (index: number, token: string) =>
  `{"image": [${good.map((v, i) => i === index ? token : String(v)).join(",")}]}`;
const rows28 = (image: unknown[]) =>
  Array.from({ length: 28 }, (_, r) => image.slice(r * 28, r * 28 + 28));

const BAD_REQUESTS: [string, () => Promise<Answer>, number, RegExp][] = [
  ["no image key", () => call("/predict", { json: {} }), 400, /^No image provided/],
  ["other key", () => call("/predict", { json: { img: good } }), 400, /^No image provided/],
  [
    "array body",
    () => call("/predict", { json: [good] }),
    400,
    /body is a list of 1; expected a JSON object/,
  ],
  ["null body", () => call("/predict", { json: null }), 400, /body is null/],
  ["number body", () => call("/predict", { json: 7 }), 400, /body is number 7/],
  [
    "image string",
    () => call("/predict", { json: { image: "0,0,0" } }),
    400,
    /"image" is the string "0,0,0"; expected a list/,
  ],
  [
    "image object",
    () => call("/predict", { json: { image: { a: 1 } } }),
    400,
    /"image" is an object/,
  ],
  [
    "783 values",
    () => call("/predict", { json: { image: good.slice(1) } }),
    400,
    /"image" has 783 values; expected 784/,
  ],
  [
    "785 values",
    () => call("/predict", { json: { image: [...good, 0] } }),
    400,
    /"image" has 785 values/,
  ],
  ["empty list", () => call("/predict", { json: { image: [] } }), 400, /"image" has 0 values/],
  [
    "28×27",
    () => call("/predict", { json: { image: rows28(good).map((r) => r.slice(1)) } }),
    400,
    /756 values \(shape 28×27\)/,
  ],
  [
    "ragged rows",
    () => {
      const rows = rows28(good);
      rows[5] = rows[5].slice(1);
      return call("/predict", { json: { image: rows } });
    },
    400,
    /image\[5\] is a list of 27, expected a list of 28 \("image" must be rectangular/,
  ],
  [
    "number among rows",
    () => {
      const rows: unknown[] = rows28(good);
      rows[27] = 0;
      return call("/predict", { json: { image: rows } });
    },
    400,
    /image\[27\] is number 0, expected a list of 28/,
  ],
  [
    "too deep",
    () => call("/predict", { json: { image: [[[[1]]]] } }),
    400,
    /nested more than 3 lists deep/,
  ],
  [
    "numeric string",
    () => call("/predict", { json: { image: withValue(12, "12") } }),
    400,
    /image\[12\] is the string "12"; expected a number 0–255/,
  ],
  [
    'string "NaN"',
    () => call("/predict", { json: { image: withValue(3, "NaN") } }),
    400,
    /image\[3\] is the string "NaN" \(NaN and Infinity are not pixel values\)/,
  ],
  [
    'string "-Infinity"',
    () => call("/predict", { json: { image: withValue(4, "-Infinity") } }),
    400,
    /image\[4\] is the string "-Infinity" \(NaN and Infinity/,
  ],
  [
    "null pixel",
    () => call("/predict", { json: { image: withValue(0, null) } }),
    400,
    /image\[0\] is null; expected a number/,
  ],
  [
    "boolean pixel",
    () => call("/predict", { json: { image: withValue(1, true) } }),
    400,
    /image\[1\] is the boolean true/,
  ],
  [
    "object pixel",
    () => call("/predict", { json: { image: withValue(2, {}) } }),
    400,
    /image\[2\] is an object/,
  ],
  ["1e999", () => post(replaceToken(7, "1e999")), 400, /image\[7\] is not finite \(Infinity\)/],
  ["-1e999", () => post(replaceToken(8, "-1e999")), 400, /image\[8\] is not finite \(-Infinity\)/],
  ["bare NaN token", () => post(replaceToken(9, "NaN")), 400, /^malformed JSON: /],
  [
    "256",
    () => call("/predict", { json: { image: withValue(9, 256) } }),
    400,
    /image\[9\] = 256 is outside 0–255/,
  ],
  [
    "-0.5",
    () => call("/predict", { json: { image: withValue(10, -0.5) } }),
    400,
    /image\[10\] = -0.5 is outside 0–255/,
  ],
  [
    "28×28 out of range",
    () => call("/predict", { json: { image: rows28(withValue(59, 300)) } }),
    400,
    /image\[2\]\[3\] \(pixel 59\) = 300 is outside 0–255/,
  ],
  ["truncated JSON", () => post('{"image": [1, 2'), 400, /^malformed JSON: /],
  ["empty body", () => post(""), 400, /body is empty/],
  ["invalid UTF-8", () => post(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), 400, /not valid UTF-8/],
  [
    "text/plain",
    () => post(JSON.stringify({ image: good }), { "content-type": "text/plain" }),
    415,
    /Content-Type is "text\/plain"; expected application\/json/,
  ],
  [
    "form body",
    () => post("image=1", { "content-type": "application/x-www-form-urlencoded" }),
    415,
    /expected application\/json/,
  ],
  ["GET /predict", () => call("/predict"), 405, /\/predict accepts POST, not GET/],
  [
    "POST /health",
    () => call("/health", { method: "POST", body: "{}" }),
    405,
    /\/health accepts GET, not POST/,
  ],
  [
    "unknown route",
    () => call("/nope"),
    404,
    /no route GET \/nope; routes: POST \/predict, GET \/health/,
  ],
  [
    "trailing slash",
    () => call("/predict/", { json: { image: good } }),
    404,
    /no route POST \/predict\//,
  ],
];

serverTest(
  "predict API: every malformed request gets its 4xx and a message; serving goes on",
  async () => {
    for (const [what, send, status, message] of BAD_REQUESTS) {
      const answer = await send();
      assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer.body)}`);
      assert.deepEqual(Object.keys(answer.body), ["error"], what);
      assert.match(answer.body.error, message, what);
      assert.match(answer.headers.get("content-type") ?? "", /^application\/json/, what);
      if (status === 405) assert.ok(answer.headers.get("allow"), `${what}: Allow header`);
    }
    const after = await call("/predict", { json: { image: good } });
    assert.equal(after.status, 200);
    assert.equal(after.body.prediction, 7);
  },
);

serverTest("predict API: bodies over 1 MiB get 413, declared or streamed", async () => {
  const big = `{"image": [${"0,".repeat(600_000)}0]}`;
  const declared = await post(big);
  assert.equal(declared.status, 413);
  assert.match(declared.body.error, /the body is \d+ bytes; the limit is 1048576 bytes/);
  // Chunked: no Content-Length, so only the streamed byte count can catch it.
  const chunk = new TextEncoder().encode("0,".repeat(32_768));
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ < 40) controller.enqueue(chunk);
      else controller.close();
    },
  });
  const streamed = await post(stream);
  assert.equal(streamed.status, 413);
  assert.match(streamed.body.error, /the body is over the limit of 1048576 bytes/);
  const after = await call("/predict", { json: { image: good } });
  assert.equal(after.status, 200);
});

// ---- fuzz --------------------------------------------------------------------------------------

/** Seeded random and mutated requests: any 4xx is fine, a 5xx or a dropped connection is not. */
function fuzzRequest(
  rng: Rng,
): { path: string; method: string; body?: Uint8Array<ArrayBuffer>; type?: string } {
  const pick = <T>(items: readonly T[]): T => items[rng.int(items.length)];
  const valid = JSON.stringify({ image: testDigit(rng.int(50)) });
  const randomValue = (depth: number): unknown => {
    const kind = rng.int(depth > 2 ? 5 : 8);
    if (kind === 0) return rng.uniform(-1e3, 1e3);
    if (kind === 1) return rng.int(256);
    if (kind === 2) return pick(["NaN", "Infinity", "", "12", "x", "\u0000", "é"]);
    if (kind === 3) return pick([null, true, false]);
    if (kind === 4) return pick([1e308, -1e-308, -0, 255.0001, 1e-7]);
    if (kind === 5) return Array.from({ length: rng.int(30) }, () => randomValue(depth + 1));
    if (kind === 6) return { image: randomValue(depth + 1) };
    return Array.from({ length: pick([783, 784, 785, 28]) }, () => rng.int(300) - 20);
  };
  let text: string;
  const mutation = rng.int(9);
  if (mutation === 0) text = valid;
  else if (mutation === 1) text = valid.slice(0, rng.int(valid.length)); // truncated
  else if (mutation === 2) {
    const at = rng.int(valid.length);
    text = valid.slice(0, at) + pick(["}", "]", "[", ",", '"', "NaN", "-", "e9", "\\"]) +
      valid.slice(at);
  } else if (mutation === 3) {
    // One number replaced by a random JSON value.
    const image = JSON.parse(valid).image;
    image[rng.int(image.length)] = randomValue(1);
    text = JSON.stringify({ image });
  } else if (mutation === 4) text = JSON.stringify(randomValue(0));
  else if (mutation === 5) text = JSON.stringify({ image: randomValue(0) });
  else if (mutation === 6) {
    const bytes = new Uint8Array(rng.int(64));
    for (let i = 0; i < bytes.length; i++) bytes[i] = rng.int(256);
    return { path: "/predict", method: "POST", body: bytes, type: "application/json" };
  } else if (mutation === 7) text = valid.replace(/\d+/, pick(["1e999", "-1", "256", "0x10"]));
  else text = "[".repeat(rng.int(5000)) + "]".repeat(rng.int(5000)); // deep nesting
  return {
    path: rng.next() < 0.95 ? "/predict" : pick(["/health", "/", "/predict?x=1", "/%00"]),
    method: rng.next() < 0.95 ? "POST" : pick(["GET", "PUT", "DELETE", "PATCH"]),
    body: new TextEncoder().encode(text),
    type: pick(["application/json", "application/json", "application/json", "text/plain", ""]) ||
      undefined,
  };
}

serverTest("predict API: 2,000 seeded fuzz requests, no 5xx, server still serving", async () => {
  const rng = new Rng(20240);
  const statuses = new Map<number, number>();
  const liveBytes = runtime().poolStats().liveBytes;
  for (let round = 0; round < 40; round++) {
    const requests = Array.from({ length: 50 }, () => fuzzRequest(rng));
    const answers = await Promise.all(requests.map(async (r) => {
      const response = await fetch(base + r.path, {
        method: r.method,
        body: r.method === "GET" ? undefined : r.body,
        headers: r.type ? { "content-type": r.type } : {},
      });
      return { request: r, status: response.status, text: await response.text() };
    }));
    for (const { request, status, text } of answers) {
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      const what = `${request.method} ${request.path} ${
        new TextDecoder().decode(request.body?.slice(0, 80))
      }`;
      assert.ok(status < 500, `${status} for ${what}: ${text}`);
      const body = JSON.parse(text);
      if (status === 200 && request.path === "/predict") {
        assert.ok(
          Number.isInteger(body.prediction) && body.prediction >= 0 && body.prediction < 10,
        );
        const total = body.probabilities[0].reduce((a: number, b: number) => a + b, 0);
        assert.ok(Math.abs(total - 1) < 1e-4, what);
      } else if (status !== 200) {
        assert.equal(typeof body.error, "string", what);
      }
    }
  }
  assert.ok((statuses.get(200) ?? 0) > 100, `statuses ${JSON.stringify([...statuses])}`);
  assert.ok((statuses.get(400) ?? 0) > 500, `statuses ${JSON.stringify([...statuses])}`);
  const after = await call("/predict", { json: { image: good } });
  assert.equal(after.body.prediction, 7);
  // Every request's tensors are freed: GPU memory does not grow with traffic.
  assert.ok(runtime().poolStats().liveBytes <= liveBytes, "live GPU bytes grew under load");
});

// ---- pieces on their own -----------------------------------------------------------------------

Deno.test("predict API: the micro-batcher stacks queued requests and answers each its own", async () => {
  const sizes: number[] = [];
  const waiting: (() => void)[] = [];
  // Each "forward pass" returns [row sum, row index] per row and waits to be released.
  const batcher = new MicroBatcher(
    async (pixels, rows) => {
      sizes.push(rows);
      await new Promise<void>((resolve) => waiting.push(resolve));
      const out = new Float32Array(rows * 2);
      for (let r = 0; r < rows; r++) {
        out[r * 2] = pixels.subarray(r * 3, r * 3 + 3).reduce((a, b) => a + b, 0);
        out[r * 2 + 1] = r;
      }
      return out;
    },
    3,
    2,
    { maxBatch: 64, maxWaitMs: 1, maxInFlight: 2 },
  );
  const answers = Array.from(
    { length: 130 },
    (_, i) => batcher.predict(new Float32Array([i, i, 1])),
  );
  // Two full passes leave at once; the last 2 wait for a free slot.
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(sizes, [64, 64]);
  while (sizes.length < 3 || waiting.length > 0) {
    waiting.shift()?.();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const results = await Promise.all(answers);
  assert.deepEqual(sizes, [64, 64, 2]);
  results.forEach((r, i) => assert.deepEqual([...r], [2 * i + 1, i % 64]));
  assert.deepEqual(batcher.stats, { requests: 130, forward_passes: 3, largest_batch: 64 });
});

Deno.test("predict API: a failed pass rejects its batch only; a full queue answers 503", async () => {
  let fail = true;
  const batcher = new MicroBatcher(
    (pixels, rows) => {
      if (fail) throw new Error("device lost");
      return Promise.resolve(pixels.slice(0, rows));
    },
    1,
    1,
    { maxWaitMs: 0, maxInFlight: 1, maxQueued: 3 },
  );
  await assert.rejects(batcher.predict(new Float32Array([1])), /device lost/);
  fail = false;
  assert.deepEqual([...await batcher.predict(new Float32Array([5]))], [5]);
  const queued = [1, 2, 3].map((v) => batcher.predict(new Float32Array([v])));
  await assert.rejects(
    batcher.predict(new Float32Array([4])),
    (e) =>
      e instanceof HttpError && e.status === 503 && /busy \(3 requests queued\)/.test(e.message),
  );
  assert.deepEqual((await Promise.all(queued)).map((r) => r[0]), [1, 2, 3]);
});

Deno.test("predict API: parseImage scales by 255 exactly as the training data", () => {
  const pixels = parseImage({ image: testDigit(0) });
  assert.deepEqual(pixels, mnist.testImages.subarray(0, PIXELS));
});

Deno.test("predict API: a model ending in Softmax is not softmaxed twice", async () => {
  const [first, second] = model.layers as [Linear, Linear];
  const withSoftmax = new Sequential(first, second, new Softmax());
  const predictor = Predictor.load(await saveModel(withSoftmax), "softmax.safetensors");
  assert.equal(predictor.info.model_output, "probabilities");
  const p = await predictor.predict(parseImage({ image: testDigit(0) }), 1);
  const expected = cpuProbabilities(testDigit(0));
  p.forEach((v, c) => assert.ok(Math.abs(v - expected[c]) < 1e-4));
});

Deno.test("predict API: unusable models are refused with the reason", async () => {
  const wrongInput = new Sequential(new Linear(100, 10), new ReLU());
  assert.throws(
    () => Predictor.load(new Uint8Array([1, 2, 3]), "junk.bin"),
    /^Error: junk\.bin is not a model saved by saveModel: /,
  );
  const bytes = await saveModel(wrongInput);
  wrongInput.dispose();
  assert.throws(
    () => Predictor.load(bytes, "small.safetensors"),
    /small\.safetensors: the model does not accept \[1, 784\] images: Linear: input \[1, 784\]/,
  );
});

Deno.test("predict API: NaN or Infinity weights are refused at load, unless --allow-non-finite", async () => {
  const state = await modelState(model);
  const weight = Float32Array.from(state["1.weight"].data as Float32Array);
  weight[17] = Infinity;
  const bytes = encodeSafetensors(
    { ...state, "1.weight": { shape: state["1.weight"].shape, data: weight } },
    { format: "denograd.model", config: JSON.stringify(modelConfig(model)) },
  );
  assert.throws(
    () => Predictor.load(bytes, "diverged.safetensors"),
    /^Error: diverged\.safetensors is not a model saved by saveModel: loadModel: tensor '1\.weight' holds 1 non-finite value \(Infinity at index 17\)/,
  );
  const file = path.join(tmp, "diverged.safetensors");
  await Deno.writeFile(file, bytes);
  const refused = await serve(["--model", file]);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /tensor '1\.weight' holds 1 non-finite value[^]*\nTo serve it anyway \(debugging\), pass --allow-non-finite/,
  );
  // For debugging it loads (and would answer null probabilities where the math breaks).
  const predictor = Predictor.load(bytes, "diverged.safetensors", { allowNonFinite: true });
  predictor.dispose();
  assert.equal(parseServeArgs(["--allow-non-finite"]).allowNonFinite, true);
});

async function serve(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "web/serve.ts", "--port", "0", ...args],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000), // a server that wrongly starts must not hang the suite
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("predict API: start-up fails with a message on a missing or invalid model, bad flags", async () => {
  const missing = await serve(["--model", "/nonexistent"]);
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /^serve: cannot read the model file '\/nonexistent' \(no such file\); train it with `deno task train tp1`/,
  );
  const junk = path.join(tmp, "junk.safetensors");
  await Deno.writeTextFile(junk, "not a model");
  const invalid = await serve(["--model", junk]);
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /^serve: .*junk\.safetensors is not a model saved by saveModel: /);
  const badFlag = await serve(["--port", "http"]);
  assert.equal(badFlag.code, 2);
  assert.match(
    badFlag.stderr,
    /--port http: expected an integer from 0 to 65535\nusage: deno task serve/,
  );
});

// ---- a server that cannot be knocked over (web/server.ts) ----------------------------------------

/** Bounds a test that would otherwise hang; no assertion depends on it. */
const HANG_MS = 30_000;

/** Everything the server sends until it closes the connection (bounded by HANG_MS). */
async function readToClose(conn: Deno.Conn): Promise<string> {
  let text = "";
  const timer = setTimeout(() => conn.close(), HANG_MS);
  const buf = new Uint8Array(65536);
  try {
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
  return text;
}

async function rawSend(port: number, text: string): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(text));
  return conn;
}

serverTest(
  "predict API: a body cut short by the client is a quiet 400, not a logged 500",
  async () => {
    const logged: unknown[][] = [];
    const error = console.error;
    console.error = (...args: unknown[]) => logged.push(args);
    try {
      for (let i = 0; i < 5; i++) {
        const conn = await rawSend(
          port,
          "POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" +
            'content-length: 5000\r\n\r\n{"image": [1, 2, 3',
        );
        await conn.closeWrite();
        const answer = await readToClose(conn);
        assert.match(answer, /^HTTP\/1\.1 400 /, answer);
        assert.match(
          answer,
          /the request body could not be read: the client closed the connection/,
        );
      }
    } finally {
      console.error = error;
    }
    assert.deepEqual(logged, []);
    assert.equal((await call("/predict", { json: { image: good } })).body.prediction, 7);
  },
);

serverTest(
  "predict API: a slow-drip head and a stalled upload are cut after their timeouts",
  async () => {
    const running = await startServer({
      modelPath,
      port: 0,
      host: "127.0.0.1",
      maxBatch: 8,
      maxWaitMs: 1,
      limits: { headersTimeoutMs: 300, bodyTimeoutMs: 300 },
    }, { quiet: true });
    try {
      const drip = await rawSend(running.port, "P");
      let stopped = false;
      const dripping = (async () => {
        for (const ch of "OST /predict HTTP/1.1\r\nx-pad: " + "a".repeat(1000)) {
          await new Promise((r) => setTimeout(r, 50));
          if (
            stopped || await drip.write(new TextEncoder().encode(ch)).catch(() => 0) === 0
          ) return;
        }
      })();
      const dripped = await readToClose(drip);
      stopped = true;
      await dripping;
      assert.match(dripped, /^HTTP\/1\.1 408 [\s\S]*did not arrive within 300 ms/);

      const stalled = await rawSend(
        running.port,
        'POST /predict HTTP/1.1\r\ncontent-length: 5000\r\n\r\n{"image": [1, 2',
      );
      const answer = await readToClose(stalled);
      assert.match(answer, /^HTTP\/1\.1 408 [\s\S]*the request body did not arrive within 300 ms/);
      assert.equal(running.server.stats.timeouts.headers, 1);
      assert.equal(running.server.stats.timeouts.body, 1);
    } finally {
      await running.server.shutdown();
      running.predictor.dispose();
    }
  },
);

/** `deno task serve`'s flags: what runs between `deno run` and the script. */
async function serveTaskFlags(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(path.join(root, "deno.json")));
  const words: string[] = config.tasks.serve.split(/\s+/);
  assert.equal(words.slice(0, 2).join(" "), "deno run");
  assert.equal(words.at(-1), "web/serve.ts");
  return words.slice(2, -1);
}

/**
 * The server as `deno task serve` runs it (same flags; cwd = a folder whose models/ holds the
 * trained model), optionally under `ulimit -n`. Resolves once it listens, with its port.
 */
async function spawnServe(args: string[], { ulimit }: { ulimit?: number } = {}) {
  const cwd = path.join(tmp, "task");
  await Deno.mkdir(path.join(cwd, "models"), { recursive: true });
  await Deno.copyFile(modelPath, path.join(cwd, "models", "mnist-model.safetensors"));
  const denoArgs = [
    "run",
    "--config",
    path.join(root, "deno.json"),
    ...await serveTaskFlags(),
    path.join(root, "web/serve.ts"),
    "--port",
    "0",
    ...args,
  ];
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `${ulimit ? `ulimit -n ${ulimit}; ` : ""}exec "$0" "$@"`,
      Deno.execPath(),
      ...denoArgs,
    ],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const killer = setTimeout(() => child.kill("SIGKILL"), 4 * HANG_MS); // a hang bound only
  let stderr = "";
  const stderrDone = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (stderr += chunk) }),
  );
  let stdout = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let listening = 0;
  while (!listening) {
    const { done, value } = await reader.read();
    if (done) break;
    stdout += value;
    listening = Number(/on http:\/\/[\d.]+:(\d+)/.exec(stdout)?.[1] ?? 0);
  }
  const drained = (async () => {
    while (!(await reader.read()).done) { /* keep the pipe flowing */ }
  })();
  let exited = false;
  const status = child.status.then(async (s) => {
    exited = true;
    clearTimeout(killer);
    await Promise.all([stderrDone, drained]);
    return s;
  });
  return {
    child,
    port: listening,
    status,
    exited: () => exited,
    stderr: () => stderr,
  };
}

serverTest(
  "predict API: the serve task's narrow permissions serve; other files are refused",
  async () => {
    const flags = await serveTaskFlags();
    assert.ok(!flags.some((f) => f === "-A" || f === "--allow-all"), flags.join(" "));
    assert.ok(flags.includes("--allow-read=models"), flags.join(" "));
    const served = await spawnServe(["--model", "models/mnist-model.safetensors"]);
    try {
      assert.ok(served.port > 0, served.stderr());
      const health = await fetch(`http://127.0.0.1:${served.port}/health`);
      assert.equal((await health.json()).status, "ok");
      const digit = await fetch(`http://127.0.0.1:${served.port}/predict`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ image: testDigit(0) }),
      });
      assertProbabilities(await digit.json(), cpuProbabilities(testDigit(0)));
    } finally {
      served.child.kill("SIGTERM");
      assert.equal((await served.status).code, 0);
    }
    const outside = await spawnServe(["--model", modelPath]);
    assert.equal((await outside.status).code, 1);
    assert.match(
      outside.stderr(),
      /^serve: no permission to read the model file '.*mnist-model\.safetensors': the serve task may read models\/ only/,
    );
  },
);

serverTest(
  "predict API: under `ulimit -n 256`, 400 open connections neither kill the server nor stop it answering",
  async () => {
    const served = await spawnServe([], { ulimit: 256 });
    const held: Deno.TcpConn[] = [];
    try {
      assert.ok(served.port > 0, served.stderr());
      // More connections than descriptors: those the server cannot accept wait in the backlog
      // (or in SYN retries past it) until idle ones are cut.
      await Promise.all(Array.from({ length: 400 }, async () => {
        const conn = await Promise.race([
          Deno.connect({ hostname: "127.0.0.1", port: served.port }),
          new Promise<null>((resolve) => setTimeout(() => resolve(null), 3000)),
        ]).catch(() => null);
        if (conn) held.push(conn);
      }));
      const health = await fetch(`http://127.0.0.1:${served.port}/health`, {
        signal: AbortSignal.timeout(HANG_MS),
      });
      assert.equal(health.status, 200);
      await health.body?.cancel();
      assert.ok(!served.exited(), served.stderr());
      for (const conn of held.splice(0)) conn.close();
      const digit = await fetch(`http://127.0.0.1:${served.port}/predict`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ image: testDigit(0) }),
        signal: AbortSignal.timeout(HANG_MS),
      });
      assertProbabilities(await digit.json(), cpuProbabilities(testDigit(0)));
    } finally {
      for (const conn of held) conn.close();
      served.child.kill("SIGTERM");
    }
    assert.equal((await served.status).code, 0);
    assert.doesNotMatch(served.stderr(), /Uncaught/);
    assert.match(served.stderr(), /server: accept failed \(Too many open files/);
  },
);

serverTest(
  "predict API: SIGTERM with a stalled upload in flight exits by the shutdown deadline",
  async () => {
    const served = await spawnServe([]); // the default shutdown deadline: 5 s
    assert.ok(served.port > 0, served.stderr());
    const stalled = await rawSend(
      served.port,
      'POST /predict HTTP/1.1\r\ncontent-length: 5000\r\n\r\n{"image": [1, 2',
    );
    const health = await fetch(`http://127.0.0.1:${served.port}/health`);
    await health.body?.cancel(); // the stalled request has reached the handler by now
    served.child.kill("SIGTERM");
    const status = await Promise.race([
      served.status,
      new Promise<null>((resolve) => setTimeout(() => resolve(null), HANG_MS)),
    ]);
    if (status === null) served.child.kill("SIGKILL");
    assert.equal(status?.code, 0, "still running after SIGTERM");
    assert.equal(await readToClose(stalled), "");
  },
);

// ---- the container recipe ----------------------------------------------------------------------

Deno.test("Dockerfile: pinned base, dependency layer first, every COPY source exists, CMD parses", async () => {
  const lines = (await Deno.readTextFile(path.join(root, "Dockerfile")))
    .split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const instructions = lines.map((l) => l.split(/\s+/)[0].toUpperCase());
  assert.match(lines[0], /^FROM denoland\/deno:(debian-)?2\.9\.6(@sha256:[0-9a-f]{64})?$/);
  assert.ok(instructions.includes("EXPOSE") && lines.includes("EXPOSE 5000"));

  const copies = lines.filter((l) => /^COPY\s/i.test(l)).map((l) => {
    const words = l.replace(/^COPY\s+/i, "").split(/\s+/).filter((w) => !w.startsWith("--"));
    return words.slice(0, -1);
  });
  const ignore = (await Deno.readTextFile(path.join(root, ".dockerignore"))).split("\n");
  for (const source of copies.flat()) {
    // The trained model is produced by `deno task train tp1`, not committed.
    if (source === DEFAULT_MODEL) continue;
    await Deno.stat(path.join(root, source)); // throws NotFound if missing
    const reincluded = ignore.some((l) => l.trim() === `!${source.replace(/\/$/, "")}`);
    assert.ok(reincluded, `.dockerignore excludes everything but must re-include '${source}'`);
  }
  assert.ok(copies.flat().includes(DEFAULT_MODEL), "the image carries the trained model");
  assert.ok(ignore.some((l) => l.trim() === `!${DEFAULT_MODEL}`));
  // Dependencies are cached (deno install) before the application code is copied.
  const install = lines.findIndex((l) => /^RUN .*deno (install|cache)/.test(l));
  const firstCode = copies.findIndex((c) => c.some((s) => s.startsWith("engine")));
  const copyLines = lines.map((l, i) => [l, i] as const).filter(([l]) => /^COPY\s/i.test(l));
  assert.ok(install > 0 && install < copyLines[firstCode][1], "deno install precedes the code");

  const cmd = JSON.parse(lines.find((l) => l.startsWith("CMD"))!.slice(3)) as string[];
  const entry = cmd.findIndex((a) => a.endsWith(".ts"));
  assert.equal(cmd[entry], "web/serve.ts");
  await Deno.stat(path.join(root, cmd[entry]));
  const options = parseServeArgs(cmd.slice(entry + 1));
  assert.equal(options.host, "0.0.0.0");
  assert.equal(options.port, 5000);
  assert.equal(options.modelPath, DEFAULT_MODEL);
});

serverTest("predict API: shut down", async () => {
  await server.shutdown();
  await Deno.remove(tmp, { recursive: true });
});
