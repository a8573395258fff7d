// TP3's datasets: CIFAR-10's official binary format (files this test writes, record for record),
// its download path against a local HTTP server (MD5 checked, archive extracted, a bad archive or
// no network refused with a message saying where to put the files), Fashion-MNIST's finder, and
// Keras one-hot labels.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as path from "node:path";
import { createTarGzip } from "nanotar";
import {
  CIFAR10_FOLDER,
  loadCifar10,
  parseCifarBatch,
  TEST_FILE,
  TRAIN_FILES,
} from "../labs/data/cifar10.ts";
import { findFashionMnist } from "../labs/data/fashion_mnist.ts";
import { oneHot } from "../labs/data/image_classes.ts";
import { Rng } from "../engine/random.ts";

/** `count` records of random pixels; labels cycle from `firstLabel`. */
function batchBytes(count: number, seed: number, firstLabel = 0): Uint8Array {
  const rng = new Rng(seed);
  const bytes = new Uint8Array(count * 3073);
  for (let n = 0; n < count; n++) {
    bytes[n * 3073] = (firstLabel + n) % 10;
    for (let i = 1; i < 3073; i++) bytes[n * 3073 + i] = rng.int(256);
  }
  return bytes;
}

/** The six files of a small release: 7 records per training batch, 5 tests. */
function release(): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const [i, name] of TRAIN_FILES.entries()) files.set(name, batchBytes(7, 10 + i, i));
  files.set(TEST_FILE, batchBytes(5, 99, 3));
  return files;
}

async function writeRelease(dir: string, files: Map<string, Uint8Array>) {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, bytes] of files) await Deno.writeFile(path.join(dir, name), bytes);
}

Deno.test("CIFAR-10 batch: label byte, then R, G and B planes become channels-last pixels / 255", () => {
  const bytes = batchBytes(3, 1, 7);
  const { images, labels } = parseCifarBatch(bytes, "batch");
  assert.deepEqual([...labels], [7, 8, 9]);
  assert.equal(images.length, 3 * 32 * 32 * 3);
  for (const [n, y, x, c] of [[0, 0, 0, 0], [1, 5, 31, 2], [2, 31, 7, 1], [2, 0, 0, 2]]) {
    const source = bytes[n * 3073 + 1 + c * 1024 + y * 32 + x];
    assert.equal(
      images[((n * 32 + y) * 32 + x) * 3 + c],
      Math.fround(source / 255),
      `${n},${y},${x},${c}`,
    );
  }
  assert.throws(() => parseCifarBatch(bytes.subarray(1), "cut.bin"), /cut\.bin has 9218 bytes/);
  const badLabel = bytes.slice();
  badLabel[3073] = 12;
  assert.throws(() => parseCifarBatch(badLabel, "b.bin"), /record 1: label byte 12/);
});

Deno.test("CIFAR-10 from --data DIR: the five training batches in order, then the tests", async () => {
  const tmp = await Deno.makeTempDir();
  const files = release();
  await writeRelease(path.join(tmp, CIFAR10_FOLDER), files);
  // The folder itself or its parent both work.
  for (const dir of [tmp, path.join(tmp, CIFAR10_FOLDER)]) {
    const set = await loadCifar10({ dataDir: dir });
    assert.deepEqual(set.shape, [32, 32, 3]);
    assert.equal(set.classes.length, 10);
    assert.equal(set.train.labels.length, 35);
    assert.deepEqual([...set.train.labels.subarray(7, 10)], [1, 2, 3]); // batch 2 starts at 1
    assert.equal(set.test.labels.length, 5);
    assert.equal(set.train.images[7 * 3072], Math.fround(files.get(TRAIN_FILES[1])![1] / 255));
  }
  await Deno.remove(path.join(tmp, CIFAR10_FOLDER, TEST_FILE));
  await assert.rejects(
    loadCifar10({ dataDir: tmp }),
    /--data .* holds neither the six batch files/,
  );
});

Deno.test("CIFAR-10 download: MD5 checked, batches extracted into the cache once; a bad archive or no server stops with where to put the files", async () => {
  const files = release();
  const archive = await createTarGzip([
    { name: `${CIFAR10_FOLDER}/batches.meta.txt`, data: "airplane\n" },
    ...[...files].map(([name, data]) => ({ name: `${CIFAR10_FOLDER}/${name}`, data })),
  ]);
  const md5 = createHash("md5").update(archive).digest("hex");
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    requests++;
    return new URL(req.url).pathname === "/cifar.tar.gz"
      ? new Response(archive as Uint8Array<ArrayBuffer>)
      : new Response("gone", { status: 404 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    const cacheRoot = await Deno.makeTempDir();
    const log: string[] = [];
    const source = { cacheRoot, url: `${base}/cifar.tar.gz`, md5, log: (s: string) => log.push(s) };
    const set = await loadCifar10(source);
    assert.equal(set.train.labels.length, 35);
    assert.match(log.join(""), /downloading .*cifar\.tar\.gz/);
    for (const name of [...TRAIN_FILES, TEST_FILE]) {
      assert.deepEqual(
        await Deno.readFile(path.join(cacheRoot, CIFAR10_FOLDER, name)),
        files.get(name),
      );
    }
    // Second use: read from the cache, no request.
    await loadCifar10(source);
    assert.equal(requests, 1);

    const empty = await Deno.makeTempDir();
    await assert.rejects(
      loadCifar10({ cacheRoot: empty, url: `${base}/cifar.tar.gz`, md5: "0".repeat(32) }),
      (e: Error) => {
        assert.match(e.message, /has MD5 [0-9a-f]{32}, expected 0{32}/);
        assert.match(e.message, /nothing was written/);
        assert.match(e.message, /or pass --data DIR/);
        return true;
      },
    );
    assert.deepEqual([...Deno.readDirSync(empty)], []);
    await assert.rejects(
      loadCifar10({ cacheRoot: empty, url: `${base}/missing`, md5 }),
      /cannot download .*missing \(HTTP 404 Not Found\)\. Put the official cifar-10-batches-bin\/ folder/,
    );
  } finally {
    await server.shutdown();
  }
  // Nothing listens there any more: offline.
  await assert.rejects(
    loadCifar10({ cacheRoot: await Deno.makeTempDir(), url: `${base}/cifar.tar.gz` }),
    /CIFAR-10: cannot download .*\. Put the official cifar-10-batches-bin\/ folder/,
  );
});

Deno.test("Fashion-MNIST: found in --data DIR (gzipped or not); a folder without it names the package and the files", async () => {
  const tmp = await Deno.makeTempDir();
  await assert.rejects(findFashionMnist(tmp), (e: Error) => {
    assert.match(e.message, /no train-images-idx3-ubyte\[\.gz\] in /);
    assert.match(e.message, /apt-get install dataset-fashion-mnist/);
    assert.match(e.message, /--data DIR/);
    return true;
  });
  await Deno.writeFile(path.join(tmp, "train-images-idx3-ubyte.gz"), new Uint8Array(1));
  assert.equal(await findFashionMnist(tmp), tmp);
});

Deno.test("oneHot: Keras to_categorical, and a label outside the classes is refused", () => {
  assert.deepEqual([...oneHot(Int32Array.of(2, 0), 3)], [0, 0, 1, 1, 0, 0]);
  assert.throws(() => oneHot(Int32Array.of(1, 3), 3), /label 3 at 1 is outside \[0, 3\)/);
});
