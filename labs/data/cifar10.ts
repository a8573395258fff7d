// CIFAR-10 from its official binary release (https://www.cs.toronto.edu/~kriz/cifar.html):
// `cifar-10-batches-bin/` holds data_batch_1..5.bin (training, Keras order) and test_batch.bin,
// each a run of 3,073-byte records — 1 label byte, then 1,024 red, 1,024 green and 1,024 blue
// bytes (row-major 32×32 planes). Read from `--data DIR`, or from the cache folder
// ($DENOGRAD_DATA, default ~/.cache/denograd) where the first use downloads the archive, checks
// its published MD5 and extracts the batches.
import { createHash } from "node:crypto";
import { parseTarGzip } from "nanotar";
import { writeFileAtomic } from "../../tracking/files.ts";
import { DataError } from "../registry.ts";
import type { ImageClasses, ImageSplit } from "./image_classes.ts";

export const CIFAR10_CLASSES = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
] as const;

export const CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
export const CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530";
export const CIFAR10_FOLDER = "cifar-10-batches-bin";
export const TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const TEST_FILE = "test_batch.bin";
const SIDE = 32;
const PLANE = SIDE * SIDE;
const RECORD = 1 + 3 * PLANE;

/** Parses one batch file into channels-last pixels / 255 and labels; `what` names it in errors. */
export function parseCifarBatch(bytes: Uint8Array, what: string): ImageSplit {
  if (bytes.length === 0 || bytes.length % RECORD !== 0) {
    throw new DataError(
      `CIFAR-10: ${what} has ${bytes.length} bytes, not a whole number of ${RECORD}-byte ` +
        "records (1 label byte + 3,072 pixel bytes)",
    );
  }
  const count = bytes.length / RECORD;
  const images = new Float32Array(count * 3 * PLANE);
  const labels = new Int32Array(count);
  for (let n = 0; n < count; n++) {
    const record = n * RECORD;
    const label = bytes[record];
    if (label > 9) {
      throw new DataError(`CIFAR-10: ${what}, record ${n}: label byte ${label}, expected 0–9`);
    }
    labels[n] = label;
    const out = n * 3 * PLANE;
    for (let c = 0; c < 3; c++) {
      const plane = record + 1 + c * PLANE;
      for (let p = 0; p < PLANE; p++) images[out + 3 * p + c] = bytes[plane + p] / 255;
    }
  }
  return { images, labels };
}

function concat(splits: ImageSplit[]): ImageSplit {
  const images = new Float32Array(splits.reduce((n, s) => n + s.images.length, 0));
  const labels = new Int32Array(splits.reduce((n, s) => n + s.labels.length, 0));
  let i = 0, l = 0;
  for (const s of splits) {
    images.set(s.images, i);
    labels.set(s.labels, l);
    i += s.images.length;
    l += s.labels.length;
  }
  return { images, labels };
}

async function readBatch(dir: string, name: string): Promise<ImageSplit> {
  return parseCifarBatch(await Deno.readFile(`${dir}/${name}`), `${dir}/${name}`);
}

/** The six batch files under `dir` (itself or its cifar-10-batches-bin/), or null. */
async function batchFolder(dir: string): Promise<string | null> {
  for (const candidate of [dir, `${dir}/${CIFAR10_FOLDER}`]) {
    let complete = true;
    for (const name of [...TRAIN_FILES, TEST_FILE]) {
      try {
        if (!(await Deno.stat(`${candidate}/${name}`)).isFile) complete = false;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        complete = false;
      }
    }
    if (complete) return candidate;
  }
  return null;
}

export interface CifarSource {
  /** `--data DIR`: the batches are there (or in its cifar-10-batches-bin/); nothing downloads. */
  dataDir?: string;
  /** Where a download lands (default $DENOGRAD_DATA, else ~/.cache/denograd). */
  cacheRoot?: string;
  /** Tests point these at a local server and its archive. */
  url?: string;
  md5?: string;
  /** Progress lines. */
  log?: (line: string) => void;
}

export function defaultCacheRoot(): string {
  const explicit = Deno.env.get("DENOGRAD_DATA");
  if (explicit) return explicit;
  const cache = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "."}/.cache`;
  return `${cache}/denograd`;
}

const md5Of = (bytes: Uint8Array) => createHash("md5").update(bytes).digest("hex");

/** Downloads the archive, checks its MD5 and writes the six batch files into `folder`. */
async function download(folder: string, url: string, md5: string, log: (s: string) => void) {
  const where = `Put the official ${CIFAR10_FOLDER}/ folder (from ${CIFAR10_URL}) at ${folder}, ` +
    "or pass --data DIR";
  log(`CIFAR-10: downloading ${url} into ${folder} (about 163 MB, once)\n`);
  let archive: Uint8Array;
  try {
    const response = await fetch(url);
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`HTTP ${response.status} ${response.statusText}`);
    }
    archive = new Uint8Array(await response.arrayBuffer());
  } catch (e) {
    throw new DataError(`CIFAR-10: cannot download ${url} (${(e as Error).message}). ${where}`);
  }
  const digest = md5Of(archive);
  if (digest !== md5) {
    throw new DataError(
      `CIFAR-10: ${url} has MD5 ${digest}, expected ${md5} (a truncated or altered download; ` +
        `nothing was written). ${where}`,
    );
  }
  const wanted = new Set([...TRAIN_FILES, TEST_FILE]);
  const entries = await parseTarGzip(archive);
  // Only the known file names are written, by base name: an entry's path never picks the place.
  const found = entries.filter((e) => wanted.has(e.name.split("/").at(-1)!) && e.data);
  if (found.length !== wanted.size) {
    throw new DataError(
      `CIFAR-10: the archive from ${url} lacks ${
        [...wanted].filter((w) => !found.some((e) => e.name.endsWith(w))).join(", ")
      }. ${where}`,
    );
  }
  await Deno.mkdir(folder, { recursive: true });
  for (const entry of found) {
    await writeFileAtomic(`${folder}/${entry.name.split("/").at(-1)}`, entry.data!);
  }
}

/**
 * CIFAR-10 as Keras' `cifar10.load_data()`: 50,000 training images in batch order and 10,000
 * tests (any whole number of records per file is read, so small files in the format work).
 */
export async function loadCifar10(source: CifarSource = {}): Promise<ImageClasses> {
  const log = source.log ?? (() => {});
  let dir: string | null;
  if (source.dataDir !== undefined) {
    dir = await batchFolder(source.dataDir);
    if (!dir) {
      throw new DataError(
        `CIFAR-10: --data ${source.dataDir} holds neither the six batch files ` +
          `(${[...TRAIN_FILES, TEST_FILE].join(", ")}) nor a ${CIFAR10_FOLDER}/ folder with them`,
      );
    }
  } else {
    const folder = `${source.cacheRoot ?? defaultCacheRoot()}/${CIFAR10_FOLDER}`;
    dir = await batchFolder(folder);
    if (!dir) {
      await download(folder, source.url ?? CIFAR10_URL, source.md5 ?? CIFAR10_MD5, log);
      dir = folder;
    }
  }
  const train = concat(await Promise.all(TRAIN_FILES.map((name) => readBatch(dir!, name))));
  return {
    name: "cifar10",
    shape: [SIDE, SIDE, 3],
    classes: CIFAR10_CLASSES,
    train,
    test: await readBatch(dir, TEST_FILE),
  };
}
