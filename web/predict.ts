// The TP1 predict API (spec §2.5, the handout's Flask `app.py`) over the engine: request
// validation, a micro-batcher that stacks concurrent requests into one forward pass, and a
// fetch-style handler (Request → Response). No Deno.* here: web/serve.ts owns the model file,
// the flags and the socket, so the same handler runs under any fetch-compatible server.
import { noGrad } from "../engine/autograd.ts";
import { type JsonValue, modelConfig } from "../engine/io/config.ts";
import { loadModel, type LoadOptions } from "../engine/io/checkpoint.ts";
// loadModel rebuilds registered classes only: this registers every layer the MNIST MLPs are made of.
import "../models/mlp.ts";
import { Softmax } from "../engine/nn/activation.ts";
import type { AnyModule } from "../engine/nn/module.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { softmax } from "../engine/ops/reduce.ts";
import { formatShape, Tensor, tidy } from "../engine/tensor.ts";

/** 28×28 pixels, flattened as in training. */
export const IMAGE_VALUES = 784;
export const MAX_BODY_BYTES = 1 << 20;
/** Deeper nesting than [1][28][28] is not an image (and bounds the validator's recursion). */
const MAX_IMAGE_DEPTH = 3;

/** An error that becomes a JSON `{"error": message}` response with this status. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

// ---- request validation ---------------------------------------------------------------------

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === "string") {
    return `the string ${JSON.stringify(value.length > 20 ? `${value.slice(0, 20)}…` : value)}`;
  }
  if (typeof value === "object") return "an object";
  return `${typeof value === "boolean" ? "the boolean" : typeof value} ${String(value)}`;
}

const EXPECTED_IMAGE = `${IMAGE_VALUES} pixel values 0–255 (a flat list, or 28 lists of 28)`;

/**
 * The image of a parsed `/predict` body as the model's input: any rectangular nesting of at
 * most 3 lists holding 784 finite numbers in [0, 255] (flat 784, 28×28, 1×784, 1×28×28 — the
 * handout reshapes whatever it gets to (1, 784)), divided by 255 exactly as the training data
 * was. Throws HttpError(400) naming the first problem and where it is.
 */
export function parseImage(body: unknown): Float32Array {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(
      400,
      `the body is ${describe(body)}; expected a JSON object {"image": [${EXPECTED_IMAGE}]}`,
    );
  }
  if (!Object.hasOwn(body, "image")) {
    throw new HttpError(400, `No image provided: expected {"image": [${EXPECTED_IMAGE}]}`);
  }
  const image = (body as { image: unknown }).image;
  if (!Array.isArray(image)) {
    throw new HttpError(400, `"image" is ${describe(image)}; expected a list of ${EXPECTED_IMAGE}`);
  }

  // The shape follows the first element at each level; every other element must agree.
  const shape: number[] = [];
  for (let level: unknown = image; Array.isArray(level); level = level[0]) {
    shape.push(level.length);
    if (shape.length > MAX_IMAGE_DEPTH) {
      throw new HttpError(
        400,
        `"image" is nested more than ${MAX_IMAGE_DEPTH} lists deep; expected ${EXPECTED_IMAGE}`,
      );
    }
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== IMAGE_VALUES) {
    const layout = shape.length === 1 ? "" : ` (shape ${shape.join("×")})`;
    throw new HttpError(
      400,
      `"image" has ${count} value${count === 1 ? "" : "s"}${layout}; expected ${EXPECTED_IMAGE}`,
    );
  }

  const pixels = new Float32Array(IMAGE_VALUES);
  let next = 0;
  const walk = (node: unknown, depth: number, path: string): void => {
    if (depth < shape.length) {
      if (!Array.isArray(node) || node.length !== shape[depth]) {
        throw new HttpError(
          400,
          `${path} is ${describe(node)}, expected a list of ${shape[depth]} ` +
            `("image" must be rectangular: shape ${shape.join("×")} from its first elements)`,
        );
      }
      for (let i = 0; i < node.length; i++) walk(node[i], depth + 1, `${path}[${i}]`);
      return;
    }
    const where = shape.length > 1 ? `${path} (pixel ${next})` : path;
    if (typeof node !== "number") {
      const hint = typeof node === "string" && /^[+-]?(nan|inf)/i.test(node.trim())
        ? " (NaN and Infinity are not pixel values)"
        : "";
      throw new HttpError(400, `${where} is ${describe(node)}${hint}; expected a number 0–255`);
    }
    if (!Number.isFinite(node)) {
      // JSON cannot spell NaN or Infinity, but 1e999 parses to Infinity.
      throw new HttpError(400, `${where} is not finite (${node}); expected a number 0–255`);
    }
    if (node < 0 || node > 255) {
      throw new HttpError(400, `${where} = ${node} is outside 0–255`);
    }
    pixels[next++] = node / 255;
  };
  walk(image, 0, "image");
  return pixels;
}

/** Media types accepted for a JSON body (a missing Content-Type is accepted too). */
function isJsonType(contentType: string): boolean {
  const mediaType = contentType.split(";")[0].trim().toLowerCase();
  return mediaType === "application/json" || /^application\/[\w.+-]+\+json$/.test(mediaType);
}

/**
 * Reads and parses a JSON body of at most `limit` bytes: 413 when the declared Content-Length
 * or the bytes actually streamed exceed it (chunked bodies declare nothing), 415 for a non-JSON
 * Content-Type, 400 for an empty body, invalid UTF-8, malformed JSON or a body cut short by the
 * client, 408 when the server's body timeout ran out.
 */
export async function readJsonBody(request: Request, limit = MAX_BODY_BYTES): Promise<unknown> {
  const contentType = request.headers.get("content-type");
  if (contentType !== null && !isJsonType(contentType)) {
    throw new HttpError(
      415,
      `Content-Type is ${JSON.stringify(contentType)}; expected application/json`,
    );
  }
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) {
    throw new HttpError(413, `the body is ${declared} bytes; the limit is ${limit} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (e) {
        // The client went away mid-body, or stalled past the server's body timeout
        // (web/server.ts's BodyError carries the status): theirs to fix, not a 500.
        const status = (e as { status?: unknown }).status;
        throw new HttpError(
          typeof status === "number" && status >= 400 && status < 500 ? status : 400,
          `the request body could not be read: ${(e as Error).message}`,
        );
      }
      const { done, value } = chunk;
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel();
        throw new HttpError(413, `the body is over the limit of ${limit} bytes`);
      }
      chunks.push(value);
    }
  }
  if (size === 0) {
    throw new HttpError(400, `the body is empty; expected a JSON object {"image": [...]}`);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, "the body is not valid UTF-8 text; expected JSON");
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `malformed JSON: ${(e as Error).message}`);
  }
}

// ---- the model ------------------------------------------------------------------------------

/** The last leaf module that a Sequential tree applies. */
function lastLayer(module: AnyModule): AnyModule {
  if (module instanceof Sequential && module.layers.length > 0) {
    return lastLayer(module.layers[module.layers.length - 1] as AnyModule);
  }
  return module;
}

export interface ModelInfo {
  path: string;
  params: number;
  trainable_params: number;
  non_trainable_params: number;
  input_shape: number[];
  input_range: [number, number];
  classes: number;
  /** "probabilities" (the model ends in Softmax) or "logits" (the server applies softmax). */
  model_output: "probabilities" | "logits";
  architecture: JsonValue;
}

/** A loaded model in inference mode: [n, 784] pixels in [0, 1] → [n, classes] probabilities. */
export class Predictor {
  readonly classes: number;
  readonly info: ModelInfo;
  readonly #model: AnyModule;
  readonly #appliesSoftmax: boolean;

  private constructor(model: AnyModule, path: string) {
    this.#model = model.eval();
    // The TP1 model ends in Softmax (Keras Dense(10, softmax)); a model trained on logits ends
    // in a plain Linear and gets softmax here, so `probabilities` are probabilities either way.
    this.#appliesSoftmax = !(lastLayer(model) instanceof Softmax);
    this.classes = this.#probeClasses();
    this.info = {
      path,
      params: model.trainableCount() + model.nonTrainableCount(),
      trainable_params: model.trainableCount(),
      non_trainable_params: model.nonTrainableCount(),
      input_shape: [IMAGE_VALUES],
      input_range: [0, 255],
      classes: this.classes,
      model_output: this.#appliesSoftmax ? "logits" : "probabilities",
      architecture: modelConfig(model) as unknown as JsonValue,
    };
  }

  /**
   * Rebuilds a `saveModel` file and checks that it maps [1, 784] to [1, classes]. Throws an
   * Error naming `path` and the problem. Weights holding NaN or Infinity are refused unless
   * `allowNonFinite` (they would answer `null` probabilities).
   */
  static load(bytes: Uint8Array, path: string, options: LoadOptions = {}): Predictor {
    let model: AnyModule;
    try {
      model = loadModel(bytes, options);
    } catch (e) {
      throw new Error(`${path} is not a model saved by saveModel: ${(e as Error).message}`);
    }
    try {
      return new Predictor(model, path);
    } catch (e) {
      model.dispose();
      throw new Error(`${path}: ${(e as Error).message}`);
    }
  }

  #forward(x: Tensor): Tensor {
    const out = this.#model.forward(x);
    if (!(out instanceof Tensor)) throw new Error("the model does not return a tensor");
    return this.#appliesSoftmax ? softmax(out, -1) : out;
  }

  #probeClasses(): number {
    return noGrad(() =>
      tidy(() => {
        let out: Tensor;
        try {
          out = this.#forward(Tensor.zeros([1, IMAGE_VALUES]));
        } catch (e) {
          throw new Error(
            `the model does not accept [1, ${IMAGE_VALUES}] images: ${(e as Error).message}`,
          );
        }
        if (out.rank !== 2 || out.shape[0] !== 1 || out.shape[1] < 1 || out.dtype !== "f32") {
          throw new Error(
            `the model maps [1, ${IMAGE_VALUES}] to ${out.dtype} ${formatShape(out.shape)}; ` +
              "expected f32 [1, classes]",
          );
        }
        return out.shape[1];
      })
    );
  }

  /** Frees the model's GPU memory. */
  dispose(): void {
    this.#model.dispose();
  }

  /** One forward pass and one readback for `rows` stacked images. */
  async predict(pixels: Float32Array, rows: number): Promise<Float32Array> {
    const probabilities = noGrad(() =>
      tidy(() => this.#forward(Tensor.from(pixels, [rows, IMAGE_VALUES])))
    );
    try {
      return (await probabilities.data()) as Float32Array;
    } finally {
      probabilities.dispose();
    }
  }
}

// ---- micro-batching -------------------------------------------------------------------------

export interface BatcherOptions {
  /** Most images per forward pass (default 64). */
  maxBatch?: number;
  /** How long the first request of an idle batcher waits for company, in ms (default 2). */
  maxWaitMs?: number;
  /** Forward passes allowed in flight at once (default 2: one computes while one reads back). */
  maxInFlight?: number;
  /** Requests queued beyond this get 503 (default 4096). */
  maxQueued?: number;
}

export interface BatcherStats {
  requests: number;
  forward_passes: number;
  largest_batch: number;
}

type RunBatch = (pixels: Float32Array, rows: number) => Promise<Float32Array>;

interface Pending {
  pixels: Float32Array;
  resolve(probabilities: Float32Array): void;
  reject(error: unknown): void;
}

/**
 * Collects single-image requests and answers them from shared forward passes: a request that
 * finds the batcher idle waits up to `maxWaitMs` for others (or until `maxBatch` are queued);
 * requests that arrive while passes are in flight queue up and leave together as soon as one
 * finishes — under load the batch size grows with the load instead of with the timer.
 */
export class MicroBatcher {
  readonly maxBatch: number;
  readonly maxWaitMs: number;
  readonly maxInFlight: number;
  readonly maxQueued: number;
  readonly stats: BatcherStats = { requests: 0, forward_passes: 0, largest_batch: 0 };
  #queue: Pending[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inFlight = 0;

  constructor(
    private readonly run: RunBatch,
    private readonly width: number,
    private readonly classes: number,
    options: BatcherOptions = {},
  ) {
    const { maxBatch = 64, maxWaitMs = 2, maxInFlight = 2, maxQueued = 4096 } = options;
    for (
      const [name, n, min] of [
        ["maxBatch", maxBatch, 1],
        ["maxWaitMs", maxWaitMs, 0],
        ["maxInFlight", maxInFlight, 1],
        ["maxQueued", maxQueued, 1],
      ] as const
    ) {
      if (!Number.isInteger(n) || n < min) {
        throw new Error(`MicroBatcher: ${name} ${n}, expected an integer ≥ ${min}`);
      }
    }
    this.maxBatch = maxBatch;
    this.maxWaitMs = maxWaitMs;
    this.maxInFlight = maxInFlight;
    this.maxQueued = maxQueued;
  }

  /** Queues one image (`width` values); resolves with its `classes` outputs. */
  predict(pixels: Float32Array): Promise<Float32Array> {
    if (pixels.length !== this.width) {
      throw new Error(`MicroBatcher: ${pixels.length} values, expected ${this.width}`);
    }
    if (this.#queue.length >= this.maxQueued) {
      return Promise.reject(
        new HttpError(503, `the server is busy (${this.#queue.length} requests queued); retry`),
      );
    }
    this.stats.requests++;
    const answer = new Promise<Float32Array>((resolve, reject) => {
      this.#queue.push({ pixels, resolve, reject });
    });
    this.#schedule();
    return answer;
  }

  #schedule(): void {
    if (this.#inFlight >= this.maxInFlight) return; // a finishing pass picks the queue up
    if (this.#queue.length >= this.maxBatch) this.#launch();
    else this.#timer ??= setTimeout(() => this.#launch(), this.maxWaitMs);
  }

  #launch(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#queue.length === 0 || this.#inFlight >= this.maxInFlight) return;
    const batch = this.#queue.splice(0, this.maxBatch);
    const stacked = new Float32Array(batch.length * this.width);
    batch.forEach((p, i) => stacked.set(p.pixels, i * this.width));
    this.#inFlight++;
    this.stats.forward_passes++;
    this.stats.largest_batch = Math.max(this.stats.largest_batch, batch.length);
    // A run that throws synchronously must reject this batch, not escape into the caller.
    Promise.resolve().then(() => this.run(stacked, batch.length)).then(
      (out) => {
        batch.forEach((p, i) => p.resolve(out.slice(i * this.classes, (i + 1) * this.classes)));
      },
      (error) => batch.forEach((p) => p.reject(error)),
    ).finally(() => {
      this.#inFlight--;
      // Whatever queued meanwhile has already waited a whole pass: send it now.
      if (this.#queue.length > 0) this.#launch();
    });
    // Enough left for another full pass and a free slot: no reason to wait.
    if (this.#queue.length >= this.maxBatch) this.#launch();
    else if (this.#queue.length > 0) this.#schedule();
  }
}

// ---- HTTP -----------------------------------------------------------------------------------

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" };

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

export interface HandlerOptions {
  maxBodyBytes?: number;
  /** Extra fields for GET /health (e.g. the adapter). */
  health?: Record<string, unknown>;
}

/**
 * The API as a fetch handler. `POST /predict` → `{"prediction": int, "probabilities": [[…]]}`
 * (the handout's 1×classes nested list); `GET /health` → status, model info, batching
 * counters. Every error is JSON `{"error": "…"}`: 400 bad body, 404 unknown route, 405 wrong
 * method (with Allow), 413 body too large, 415 not JSON, 503 queue full, 500 if a forward
 * pass fails.
 */
export function createHandler(
  predictor: Pick<Predictor, "info" | "classes">,
  batcher: MicroBatcher,
  options: HandlerOptions = {},
): (request: Request) => Promise<Response> {
  const maxBodyBytes = options.maxBodyBytes ?? MAX_BODY_BYTES;
  const routes: Record<string, Record<string, (request: Request) => Promise<Response>>> = {
    "/predict": {
      POST: async (request) => {
        const pixels = parseImage(await readJsonBody(request, maxBodyBytes));
        const probabilities = await batcher.predict(pixels);
        let prediction = 0;
        for (let c = 1; c < probabilities.length; c++) {
          if (probabilities[c] > probabilities[prediction]) prediction = c;
        }
        return json(200, { prediction, probabilities: [Array.from(probabilities)] });
      },
    },
    "/health": {
      GET: () =>
        Promise.resolve(json(200, {
          status: "ok",
          model: predictor.info,
          batching: {
            max_batch: batcher.maxBatch,
            max_wait_ms: batcher.maxWaitMs,
            max_in_flight: batcher.maxInFlight,
            ...batcher.stats,
          },
          ...options.health,
        })),
    },
  };
  const routeList = "POST /predict, GET /health";

  return async (request) => {
    const path = new URL(request.url).pathname;
    const route = routes[path];
    if (!route) {
      return json(404, { error: `no route ${request.method} ${path}; routes: ${routeList}` });
    }
    const method = request.method === "HEAD" && route.GET ? "GET" : request.method;
    const handle = route[method];
    if (!handle) {
      const allowed = Object.keys(route).join(", ");
      return json(405, { error: `${path} accepts ${allowed}, not ${request.method}` }, {
        allow: allowed,
      });
    }
    try {
      const response = await handle(request);
      return request.method === "HEAD" ? new Response(null, response) : response;
    } catch (e) {
      if (e instanceof HttpError) return json(e.status, { error: e.message });
      console.error(`predict API: ${request.method} ${path} failed:`, e);
      return json(500, { error: `internal error: ${(e as Error).message}` });
    }
  };
}
