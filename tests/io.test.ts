// safetensors bytes, model config, weights and full training checkpoints.
import assert from "node:assert/strict";
import { setup, testRng } from "./helpers.ts";
import { Rng } from "../engine/random.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { runtime } from "../engine/runtime.ts";
import { Module } from "../engine/nn/module.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { Linear } from "../engine/nn/linear.ts";
import { BatchNorm } from "../engine/nn/batchnorm.ts";
import { Dropout } from "../engine/nn/dropout.ts";
import { Flatten } from "../engine/nn/flatten.ts";
import "../engine/nn/rnn.ts"; // registers GRU for the hostile-config test
import { ReLU, Softmax } from "../engine/nn/activation.ts";
import { Adam, SGD } from "../engine/optim/optimizers.ts";
import { softmaxCrossEntropy } from "../engine/ops/loss.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type TensorEntryInput,
} from "../engine/io/safetensors.ts";
import { buildModel, modelConfig } from "../engine/io/config.ts";
import {
  loadModel,
  loadModelState,
  loadTrainingCheckpoint,
  modelState,
  saveModel,
  saveTrainingCheckpoint,
} from "../engine/io/checkpoint.ts";

await setup();

// ---- safetensors bytes ----------------------------------------------------------------------

function randomEntries(rng: Rng): Record<string, TensorEntryInput> {
  const entries: Record<string, TensorEntryInput> = {};
  const count = 1 + rng.int(6);
  for (let k = 0; k < count; k++) {
    const rank = rng.int(4);
    const shape = Array.from({ length: rank }, () => rng.int(5));
    const size = shape.reduce((a, b) => a * b, 1);
    const kind = rng.int(3);
    const data = kind === 0
      ? Float32Array.from({ length: size }, () => rng.normal())
      : kind === 1
      ? Int32Array.from({ length: size }, () => rng.int(2 ** 31) - 2 ** 30)
      : Uint32Array.from({ length: size }, () => rng.nextU32());
    entries[`layer.${k}.${["w", "β", "__proto__"][rng.int(3)]}${rng.int(10)}`] = { shape, data };
  }
  return entries;
}

Deno.test("safetensors round trip: dtypes, 0-d and empty tensors, metadata, odd names", () => {
  const { rng, seed } = testRng();
  for (let trial = 0; trial < 50; trial++) {
    const entries = randomEntries(rng);
    Object.defineProperty(entries, "__proto__", {
      value: { shape: [1], data: Float32Array.of(trial) },
      enumerable: true,
    });
    // JSON.parse makes "__proto__" an ordinary own key, as a file's header would.
    const metadata = JSON.parse(
      '{"config": "{\\"a\\": [1]}", "__proto__": "x", "note": "é\\u0000\\n"}',
    );
    const bytes = encodeSafetensors(entries, metadata);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(headerLength % 8, 0, `seed ${seed}: header length ${headerLength}`);
    const decoded = decodeSafetensors(bytes);
    assert.deepEqual(Object.keys(decoded.tensors).sort(), Object.keys(entries).sort());
    for (const [name, entry] of Object.entries(entries)) {
      const got = decoded.tensors[name];
      assert.deepEqual(got.shape, entry.shape, `seed ${seed}: ${name}`);
      assert.equal(got.data.constructor, entry.data.constructor, `seed ${seed}: ${name}`);
      assert.deepEqual(Array.from(got.data), Array.from(entry.data), `seed ${seed}: ${name}`);
    }
    assert.equal(Object.getPrototypeOf(decoded.metadata), Object.prototype);
    assert.deepEqual(Object.entries(decoded.metadata), Object.entries(metadata));
    assert.deepEqual(Object.keys(decoded.metadata), ["config", "__proto__", "note"]);
    assert.ok(Object.hasOwn(decoded.tensors, "__proto__"));
  }
});

/** Little-endian u64 header length + header + data, written out by hand. */
function file(header: string, ...data: ArrayBufferView[]): Uint8Array {
  const json = new TextEncoder().encode(header);
  const dataBytes = data.reduce((n, d) => n + d.byteLength, 0);
  const out = new Uint8Array(8 + json.length + dataBytes);
  out[0] = json.length & 0xff;
  out[1] = json.length >> 8;
  out.set(json, 8);
  let at = 8 + json.length;
  for (const d of data) {
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), at);
    at += d.byteLength;
  }
  return out;
}

Deno.test("safetensors byte layout matches the format exactly", () => {
  // The reference implementation's own fixtures (safetensors/src/tensor.rs tests).
  assert.deepEqual(
    Array.from(
      encodeSafetensors({
        attn0: { shape: [1, 1, 2, 3], data: Float32Array.of(0, 1, 2, 3, 4, 5) },
      }),
    ),
    [
      72,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      123,
      34,
      97,
      116,
      116,
      110,
      48,
      34,
      58,
      123,
      34,
      100,
      116,
      121,
      112,
      101,
      34,
      58,
      34,
      70,
      51,
      50,
      34,
      44,
      34,
      115,
      104,
      97,
      112,
      101,
      34,
      58,
      91,
      49,
      44,
      49,
      44,
      50,
      44,
      51,
      93,
      44,
      34,
      100,
      97,
      116,
      97,
      95,
      111,
      102,
      102,
      115,
      101,
      116,
      115,
      34,
      58,
      91,
      48,
      44,
      50,
      52,
      93,
      125,
      125,
      32,
      32,
      32,
      32,
      32,
      32,
      32,
      0,
      0,
      0,
      0,
      0,
      0,
      128,
      63,
      0,
      0,
      0,
      64,
      0,
      0,
      64,
      64,
      0,
      0,
      128,
      64,
      0,
      0,
      160,
      64,
    ],
  );
  assert.deepEqual(
    Array.from(encodeSafetensors({}, { framework: "pt" })),
    [
      40,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      123,
      34,
      95,
      95,
      109,
      101,
      116,
      97,
      100,
      97,
      116,
      97,
      95,
      95,
      34,
      58,
      123,
      34,
      102,
      114,
      97,
      109,
      101,
      119,
      111,
      114,
      107,
      34,
      58,
      34,
      112,
      116,
      34,
      125,
      125,
      32,
      32,
      32,
      32,
      32,
    ],
  );
  assert.deepEqual(Array.from(encodeSafetensors({})), [
    8,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    123,
    125,
    32,
    32,
    32,
    32,
    32,
    32,
  ]);

  // Three dtypes: written F32, U32, I32 (descending alignment rank), then by name; metadata first.
  const a = Float32Array.of(1.5, -2, 3e-8);
  const b = Int32Array.of(7, -1);
  const c = Uint32Array.of(4294967295);
  const z = Float32Array.of();
  const json = '{"__metadata__":{"k":"v"},' +
    '"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},' +
    '"z":{"dtype":"F32","shape":[0,2],"data_offsets":[12,12]},' +
    '"c":{"dtype":"U32","shape":[],"data_offsets":[12,16]},' +
    '"b":{"dtype":"I32","shape":[2,1],"data_offsets":[16,24]}}';
  const padded = json + " ".repeat((8 - json.length % 8) % 8);
  const expected = file(padded, a, c, b);
  const actual = encodeSafetensors(
    {
      b: { shape: [2, 1], data: b },
      c: { shape: [], data: c },
      a: { shape: [3], data: a },
      z: { shape: [0, 2], data: z },
    },
    { k: "v" },
  );
  assert.deepEqual(Array.from(actual), Array.from(expected));
  assert.equal((actual.length - 24) % 8, 0, "tensor data starts 8-byte aligned");
});

Deno.test("safetensors decoding reads converted dtypes and files from other writers", () => {
  // F16 1, -2, 0.5 (0x3c00, 0xc000, 0x3800); BF16 1.5 (0x3fc0); F64; I64 counter.
  const f16 = Uint16Array.of(0x3c00, 0xc000, 0x3800);
  const bf16 = Uint16Array.of(0x3fc0);
  const f64 = Float64Array.of(0.1);
  const i64 = BigInt64Array.of(-3n);
  const bytes = file(
    '{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},' +
      '"g":{"dtype":"BF16","shape":[1],"data_offsets":[6,8]},' +
      '"d":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},' +
      '"n":{"dtype":"I64","shape":[],"data_offsets":[16,24]}}',
    f16,
    bf16,
    f64,
    i64,
  );
  const { tensors, metadata } = decodeSafetensors(bytes);
  assert.deepEqual(metadata, {});
  assert.deepEqual([...tensors.h.data], [1, -2, 0.5]);
  assert.equal(tensors.h.dtype, "F32");
  assert.deepEqual([...tensors.g.data], [1.5]);
  assert.deepEqual([...tensors.d.data], [Math.fround(0.1)]);
  assert.deepEqual(tensors.n, { dtype: "I32", shape: [], data: Int32Array.of(-3) });
  // A header that is not padded (allowed) and a file not aligned in its ArrayBuffer.
  const unaligned = new Uint8Array(bytes.length + 1).fill(9);
  unaligned.set(bytes, 1);
  assert.deepEqual([...decodeSafetensors(unaligned.subarray(1)).tensors.h.data], [1, -2, 0.5]);
});

Deno.test("safetensors decoding names what is wrong", () => {
  const ok = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const eight = new Float32Array(2);
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(5), /shorter than the 8-byte header length/],
    [
      (() => {
        const f = file(ok, eight);
        new DataView(f.buffer).setBigUint64(0, 2n ** 63n, true);
        return f;
      })(),
      /header length 9223372036854775808 is over the 100000000-byte limit/,
    ],
    [file(ok, eight).subarray(0, 40), /runs past the end of the 40-byte file/],
    [file(ok, eight).subarray(0, 69), /go past the 7-byte data buffer \(file truncated\?\)/],
    [file(ok, eight, eight), /cover 8 bytes of the 16-byte data buffer/],
    [file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},}', eight), /not valid JSON/],
    [file('["a"]'), /does not start with '\{'/],
    [file("[]          "), /does not start with '\{'/],
    [
      file('{"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}', eight),
      /tensor 'a': unknown dtype 'Q7'/,
    ],
    [file('{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}', eight), /unsupported dtype U8/],
    [
      file('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', eight),
      /F32 shape \[3\] needs 12 bytes, data_offsets \[0, 8\] span 8/,
    ],
    [file('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', eight), /shape contains -2/],
    [
      file('{"a":{"dtype":"F32","shape":[1e300,1e300,0],"data_offsets":[0,0]}}'),
      /shape contains 1e\+300/,
    ],
    [
      file(
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
          '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
        eight,
      ),
      /overlap another tensor/,
    ],
    [
      file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', eight),
      /bytes 0..4 before it belong to no tensor/,
    ],
    [
      file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}', eight),
      /end before they begin/,
    ],
    [
      file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}', eight),
      /unknown header field 'x'/,
    ],
    [file('{"__metadata__":{"n":1}}'), /metadata 'n' is not a string/],
    [
      file(
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
          '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
        eight,
      ),
      /header names 'a' twice in one object \(a duplicate tensor name/,
    ],
    [
      file('{"__metadata__":{"config":"x","config":"y"}}'),
      /header names 'config' twice in one object/,
    ],
    [file('{"a":[1,2]}'), /tensor 'a': header entry is not an object/],
    [
      (() => {
        const f = file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', eight);
        f[20] = 0xff;
        return f;
      })(),
      /not valid UTF-8/,
    ],
  ];
  cases.forEach(([bytes, pattern], i) => {
    assert.throws(() => decodeSafetensors(bytes), pattern, `case ${i}`);
  });
  assert.throws(
    () => encodeSafetensors({ __metadata__: { shape: [1], data: new Float32Array(1) } }),
    /'__metadata__' is reserved/,
  );
  assert.throws(
    () => encodeSafetensors({ w: { shape: [2, 2], data: new Float32Array(3) } }),
    /tensor 'w': shape \[2, 2\] holds 4 values, data has 3/,
  );
  assert.throws(
    () => encodeSafetensors({ w: { dtype: "I32", shape: [1], data: new Float32Array(1) } }),
    /dtype I32 does not match its Float32Array/,
  );
});

const TOKENS = [
  "0",
  "1",
  "-1",
  "7",
  "8",
  "99999999999999999999",
  "1e400",
  "1.5",
  "null",
  "true",
  "[]",
  "{}",
  '""',
  '"F16"',
  '"I64"',
  '"U8"',
  '"F64"',
  '"BF16"',
  '"X"',
  '"__metadata__"',
  '"dtype"',
  '"shape"',
  '"data_offsets"',
  "[0,0]",
  "[4,4]",
  ",",
  ":",
  "[",
  "]",
  "{",
  "}",
  '"',
  "\\",
  "\\u0000",
  "\ud800",
  "é",
];

/** One random corruption: bytes, lengths, or header tokens (with the length fixed up). */
function mutate(valid: Uint8Array, rng: Rng): Uint8Array {
  const bytes = valid.slice();
  const headerLength = Number(new DataView(valid.buffer).getBigUint64(0, true));
  switch (rng.int(7)) {
    case 0: { // random bytes anywhere
      for (let k = 1 + rng.int(4); k > 0; k--) bytes[rng.int(bytes.length)] = rng.int(256);
      return bytes;
    }
    case 1: // truncation
      return bytes.subarray(0, rng.int(bytes.length));
    case 2: { // trailing garbage
      const out = new Uint8Array(bytes.length + 1 + rng.int(16));
      out.set(bytes);
      return out;
    }
    case 3: { // absurd or off-by-some header length
      const view = new DataView(bytes.buffer);
      const choices = [
        BigInt(headerLength + rng.int(17) - 8),
        BigInt(rng.nextU32()) << BigInt(rng.int(33)),
        2n ** 64n - 1n,
        0n,
      ];
      view.setBigUint64(0, choices[rng.int(choices.length)], true);
      return bytes;
    }
    case 4: { // bytes of the header only
      for (let k = 1 + rng.int(3); k > 0; k--) bytes[8 + rng.int(headerLength)] = rng.int(128);
      return bytes;
    }
    default: { // splice a JSON token into the header and fix the header length
      const text = new TextDecoder().decode(valid.subarray(8, 8 + headerLength));
      const at = rng.int(text.length);
      const cut = rng.int(4);
      const token = TOKENS[rng.int(TOKENS.length)];
      const header = new TextEncoder().encode(text.slice(0, at) + token + text.slice(at + cut));
      const out = new Uint8Array(8 + header.length + valid.length - 8 - headerLength);
      new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
      out.set(header, 8);
      out.set(valid.subarray(8 + headerLength), 8 + header.length);
      return out;
    }
  }
}

Deno.test("safetensors: 12,000 random corruptions give clean errors, bounded time and memory", () => {
  const { rng, seed } = testRng();
  const valid = encodeSafetensors(
    {
      "0.weight": { shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i) },
      "0.bias": { shape: [4], data: new Float32Array(4) },
      "2.running_mean": { shape: [2, 0], data: new Float32Array(0) },
      counter: { shape: [], data: Int32Array.of(3) },
      ids: { shape: [2], data: Uint32Array.of(1, 2) },
    },
    { config: '{"class":"Sequential"}', epoch: "3" },
  );
  /** Whether the decoder accepted `bytes`, and how long it took. */
  const attempt = (bytes: Uint8Array, trial: number): { ok: boolean; ms: number } => {
    const start = performance.now();
    try {
      const { tensors } = decodeSafetensors(bytes);
      const total = Object.values(tensors).reduce((n, t) => n + t.data.byteLength, 0);
      // F16/BF16 widen to F32 at most 2×; nothing bigger than the input is ever allocated.
      assert.ok(total <= 2 * bytes.length, `seed ${seed}, trial ${trial}: ${total} bytes decoded`);
      return { ok: true, ms: performance.now() - start };
    } catch (e) {
      if (
        !(e instanceof Error) || e.constructor !== Error || !e.message.startsWith("safetensors: ")
      ) {
        throw new Error(`seed ${seed}, trial ${trial}: unclean failure ${String(e)}`, { cause: e });
      }
      return { ok: false, ms: performance.now() - start };
    }
  };
  let accepted = 0;
  let slowest = 0;
  for (let trial = 0; trial < 12_000; trial++) {
    const bytes = mutate(valid, rng);
    let { ok, ms } = attempt(bytes, trial);
    if (ok) accepted++;
    // A decode is pure computation on its input: a slow input is slow on every rerun, while a
    // pause of the whole process (GC, a loaded machine) does not come back three times.
    for (let rerun = 0; rerun < 3 && ms >= 1000; rerun++) {
      ms = Math.min(ms, attempt(bytes, trial).ms);
    }
    slowest = Math.max(slowest, ms);
  }
  // A hang detector, not a speed assertion: one decode of a 200-byte file takes microseconds.
  assert.ok(slowest < 1000, `seed ${seed}: a decode took ${slowest} ms on each of 4 runs`);
  assert.ok(accepted < 12_000 / 2, `seed ${seed}: ${accepted} corruptions were accepted`);
});

// ---- model config, weights, checkpoints -----------------------------------------------------

function smallModel(seed: number): Sequential {
  const rng = new Rng(seed);
  return new Sequential(
    new Flatten(),
    new Linear(6, 8, { activation: "relu", rng }),
    new BatchNorm(8),
    new Dropout(0.25, { rng }),
    new Linear(8, 3, { rng }),
  );
}

async function values(t: Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

function batch(rng: Rng, n = 5): { x: Tensor; y: Tensor } {
  const x = Tensor.from(Float32Array.from({ length: n * 6 }, () => rng.normal()), [n, 2, 3]);
  const y = Tensor.from(Int32Array.from({ length: n }, () => rng.int(3)), [n], "i32");
  return { x, y };
}

function trainStep(model: Module, optimizer: Adam | SGD, rng: Rng): void {
  tidy(() => {
    const { x, y } = batch(rng);
    softmaxCrossEntropy(model.forward(x), y).backward();
    optimizer.step();
    optimizer.zeroGrad();
  });
}

Deno.test("modelState / loadModelState copy weights and BatchNorm buffers in place", async () => {
  const source = smallModel(1);
  const target = smallModel(2);
  const opt = new SGD(source.parameters(), { lr: 0.1 });
  trainStep(source, opt, new Rng(5)); // moves the BatchNorm moving statistics off 0 / 1
  const state = await modelState(source);
  assert.deepEqual(Object.keys(state), [
    "1.weight",
    "1.bias",
    "2.weight",
    "2.bias",
    "4.weight",
    "4.bias",
    "2.running_mean",
    "2.running_var",
  ]);
  assert.deepEqual(state["1.weight"].shape, [6, 8]);
  assert.notDeepEqual([...state["2.running_mean"].data], new Array(8).fill(0));
  const weight = target.namedParameters()[0][1];
  loadModelState(target, state);
  assert.equal(target.namedParameters()[0][1], weight, "tensors are updated in place");
  source.eval();
  target.eval();
  const { x } = batch(new Rng(9));
  assert.deepEqual(await values(target.forward(x)), await values(source.forward(x)));
  opt.dispose();
  source.dispose();
  target.dispose();
});

Deno.test("loadModelState errors list missing / unexpected names and name shape mismatches", async () => {
  const model = smallModel(1);
  const state = await modelState(model);
  const { "4.bias": _dropped, ...missing } = state;
  assert.throws(
    () => loadModelState(model, { ...missing, "9.weight": state["4.bias"] }),
    /loadModelState: tensor names differ from the model's; missing \[4\.bias\], unexpected \[9\.weight\]/,
  );
  assert.throws(
    () => loadModelState(model, { ...state, "1.weight": { ...state["1.weight"], shape: [8, 6] } }),
    /loadModelState: '1\.weight' has shape \[8, 6\] in the state, the model expects \[6, 8\]/,
  );
  assert.throws(
    () =>
      loadModelState(model, {
        ...state,
        "4.bias": { dtype: "I32", shape: [3], data: new Int32Array(3) },
      }),
    /'4\.bias' is I32 in the state, the model expects F32/,
  );
  const wider = new Sequential(new Flatten(), new Linear(6, 9));
  assert.throws(
    () => loadModel(encodeSafetensors(state, { config: JSON.stringify(modelConfig(wider)) })),
    /missing \[\], unexpected \[2\.bias, 2\.running_mean, 2\.running_var, 2\.weight, 4\.bias, 4\.weight\]/,
  );
  model.dispose();
  wider.dispose();
});

Deno.test("saveModel / loadModel rebuild the architecture and weights", async () => {
  const model = new Sequential(
    new Flatten(),
    new Linear(6, 8, { activation: "tanh", rng: new Rng(3) }),
    new BatchNorm(8, { momentum: 0.9, epsilon: 1e-2 }),
    new ReLU(),
    new Dropout(0.5, { seed: 77 }),
    new Linear(8, 3, { bias: false, rng: new Rng(4) }),
    new Softmax(),
  );
  const opt = new SGD(model.parameters(), { lr: 0.1 });
  trainStep(model, opt, new Rng(6));
  const bytes = await saveModel(model, { author: "test" });
  const { metadata } = decodeSafetensors(bytes);
  assert.equal(metadata.author, "test");
  assert.deepEqual(JSON.parse(metadata.config), modelConfig(model));
  assert.deepEqual(modelConfig(model).children![2], {
    class: "BatchNorm",
    config: { numFeatures: 8, axis: -1, momentum: 0.9, epsilon: 1e-2 },
  });
  const loaded = loadModel(bytes) as Sequential;
  assert.deepEqual(modelConfig(loaded), modelConfig(model));
  assert.equal((loaded.layers[4] as Dropout).seed, 77);
  model.eval();
  loaded.eval();
  const { x } = batch(new Rng(10));
  assert.deepEqual(await values(loaded.forward(x)), await values(model.forward(x)));
  opt.dispose();
  model.dispose();
  loaded.dispose();

  assert.throws(
    () => buildModel({ class: "Conv9d", config: {} }),
    /buildModel: model has unknown layer class 'Conv9d'; registered: .*Linear/,
  );
  assert.throws(
    () =>
      buildModel({
        class: "Sequential",
        config: {},
        children: [{
          class: "Linear",
          config: { inFeatures: 2, outFeatures: 2, activation: "swish" },
        }],
      }),
    /buildModel: model\.0 \(Linear\): activation "swish", expected one of/,
  );
  class Custom extends Module {
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  assert.throws(
    () => modelConfig(new Sequential(new Custom())),
    /layer class Custom is not registered/,
  );
  assert.throws(
    () => loadModel(encodeSafetensors({})),
    /loadModel: the file has no 'config' metadata/,
  );
});

// ---- hostile model files --------------------------------------------------------------------

/** A saveModel-style file with any config (as JSON text) and tensors. */
function modelFile(config: unknown, tensors: Record<string, TensorEntryInput> = {}): Uint8Array {
  return encodeSafetensors(tensors, { format: "denograd.model", config: JSON.stringify(config) });
}

const linearConfig = (inFeatures: number, outFeatures: number) => ({
  class: "Linear",
  config: { inFeatures, outFeatures, bias: true, activation: null },
});

Deno.test("loadModel: a small file whose config asks for gigabytes fails before allocating them", () => {
  const rt = runtime();
  // 10 × Linear(5000, 5000) = 1 GB of weights, described in ~1.3 KB with one 4-byte tensor.
  const amplifying = modelFile(
    { class: "Sequential", config: {}, children: Array(10).fill(linearConfig(5000, 5000)) },
    { "0.bias": { shape: [1], data: new Float32Array(1) } },
  );
  assert.ok(amplifying.length < 2000);
  // A GRU's orthogonal init works on the host before it creates its tensor.
  const recurrent = modelFile(
    { class: "GRU", config: { inputSize: 1, units: 600 } },
    { kernel: { shape: [1], data: new Float32Array(1) } },
  );
  const pool = () => rt.poolStats().liveBytes + rt.poolStats().pooledBytes;
  const gpuBefore = pool();
  const hostBefore = Deno.memoryUsage().rss;
  assert.throws(
    () => loadModel(amplifying),
    /^Error: buildModel: model\.0 \(Linear\): loadModel: the config asks for more memory than the file's 4 bytes of tensors can fill: Tensor\.uniform \[5000, 5000\] needs 100000000 bytes/,
  );
  assert.throws(
    () => loadModel(recurrent),
    /loadModel: the config asks for more memory .*orthogonal \[2, 600, 1800\]/,
  );
  // Bytes, not time: what the failed loads left behind is bounded by the files, not the configs.
  assert.ok(pool() - gpuBefore <= 4 << 20, `${pool() - gpuBefore} more bytes in the GPU pool`);
  const hostGrowth = Deno.memoryUsage().rss - hostBefore;
  assert.ok(hostGrowth < 200 << 20, `RSS grew by ${hostGrowth} bytes`);
});

Deno.test("loadModel: malformed and deeply nested configs get clear errors", () => {
  const tensors = { "0.bias": { shape: [1], data: new Float32Array(1) } };
  const cases: [unknown, RegExp][] = [
    [
      { class: "Sequential", config: {}, children: "ReLU" },
      /^Error: loadModel: config model\.children is the string "ReLU", expected a list of layers/,
    ],
    [
      { class: "Sequential", config: {}, children: [{ class: "ReLU" }, null] },
      /^Error: loadModel: config model\.1 is null, expected a layer \{class, config, children\?\}/,
    ],
    [{ class: 7 }, /^Error: loadModel: config model\.class is number 7, expected a class name/],
    [{ class: "Linear", config: [1] }, /config model\.config is a list, expected an object/],
    [[], /config model is a list, expected a layer/],
  ];
  for (const [config, pattern] of cases) {
    assert.throws(() => loadModel(modelFile(config, tensors)), pattern);
  }
  let deep: unknown = { class: "ReLU", config: {} };
  for (let i = 0; i < 20_000; i++) deep = { class: "Sequential", config: {}, children: [deep] };
  assert.throws(
    () => loadModel(modelFile(deep)),
    /^Error: loadModel: the config nests layers more than 64 deep \(model\.0\.0/,
  );
});

Deno.test("loadModel: NaN or Infinity weights are refused, naming the tensor, unless allowed", async () => {
  const model = new Sequential(new Linear(4, 2, { rng: new Rng(1) }));
  const state = await modelState(model);
  const weight = Float32Array.from(state["0.weight"].data as Float32Array);
  weight[5] = NaN;
  weight[6] = -Infinity;
  const broken = encodeSafetensors(
    { ...state, "0.weight": { shape: [4, 2], data: weight } },
    { config: JSON.stringify(modelConfig(model)) },
  );
  assert.throws(
    () => loadModel(broken),
    /^Error: loadModel: tensor '0\.weight' holds 2 non-finite values \(NaN at index 5\).*\{ allowNonFinite: true \}/,
  );
  const loaded = loadModel(broken, { allowNonFinite: true }) as Sequential;
  const back = (await modelState(loaded))["0.weight"].data;
  assert.ok(Number.isNaN(back[5]) && back[6] === -Infinity);
  loaded.dispose();
  model.dispose();
});

Deno.test("training checkpoint: weights, BatchNorm stats, Adam state, Dropout stream and RNG resume exactly", async () => {
  // Straight run: 3 steps, checkpoint, 3 more.
  const model = smallModel(11);
  const adam = new Adam(model.parameters(), { lr: 0.01 });
  const rng = new Rng(42);
  for (let i = 0; i < 3; i++) trainStep(model, adam, rng);
  adam.learningRate = 0.005;
  const bytes = await saveTrainingCheckpoint({
    model,
    optimizer: adam,
    epoch: 1,
    step: 3,
    rng,
    extra: { best: 0.25, wait: [1, 2] },
  });
  for (let i = 0; i < 3; i++) trainStep(model, adam, rng);
  const straight = await modelState(model);

  const { metadata, tensors } = decodeSafetensors(bytes);
  assert.ok("model.2.running_var" in tensors && "optimizer.velocity.5" in tensors);
  const dropoutSeed = (model.layers[3] as Dropout).seed;
  assert.deepEqual(JSON.parse(metadata.layers), { "3": { seed: dropoutSeed, offset: 3 } });
  assert.deepEqual(JSON.parse(metadata.config), modelConfig(model));

  // Resumed run: a differently initialised model (other weights, other Dropout seed) and a
  // fresh optimizer.
  const resumed = smallModel(12);
  const adam2 = new Adam(resumed.parameters(), { lr: 0.01 });
  const restored = loadTrainingCheckpoint(bytes, { model: resumed, optimizer: adam2 });
  assert.equal(restored.epoch, 1);
  assert.equal(restored.step, 3);
  assert.deepEqual(restored.extra, { best: 0.25, wait: [1, 2] });
  assert.equal(adam2.iterations, 3);
  assert.equal(adam2.learningRate, 0.005);
  assert.equal((resumed.layers[3] as Dropout).offset, 3);
  assert.equal((resumed.layers[3] as Dropout).seed, dropoutSeed);
  for (let i = 0; i < 3; i++) trainStep(resumed, adam2, restored.rng);
  const resumedState = await modelState(resumed);
  for (const name of Object.keys(straight)) {
    assert.deepEqual([...resumedState[name].data], [...straight[name].data], name);
  }
  assert.deepEqual(restored.rng.state(), rng.state());

  // Mismatches are refused before anything is written.
  const sgd = new SGD(resumed.parameters(), { momentum: 0.9 });
  assert.throws(
    () => loadTrainingCheckpoint(bytes, { model: resumed, optimizer: sgd }),
    /loadTrainingCheckpoint: the checkpoint holds "Adam" optimizer state, the optimizer is SGD/,
  );
  const other = new Sequential(new Flatten(), new Linear(6, 8), new BatchNorm(8), new Linear(8, 3));
  const adam3 = new Adam(other.parameters());
  assert.throws(
    () => loadTrainingCheckpoint(bytes, { model: other, optimizer: adam3 }),
    /tensor names differ from the model's; missing \[3\.weight, 3\.bias\], unexpected \[4\.bias, 4\.weight\]/,
  );
  const modelOnly = await saveModel(model);
  assert.throws(
    () => loadTrainingCheckpoint(modelOnly, { model, optimizer: adam }),
    /metadata format is "denograd\.model", expected "denograd\.checkpoint"/,
  );
  for (const t of [adam, adam2, adam3, sgd]) t.dispose();
  for (const m of [model, resumed, other]) m.dispose();
});
