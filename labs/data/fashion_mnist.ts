// Fashion-MNIST (Zalando): 28×28 grey images of 10 kinds of clothing in MNIST's IDX format, 60,000
// training and 10,000 test images. Read from `--data DIR`, or from Debian's `dataset-fashion-mnist`
// package (installed by .ci/run where apt is available), or from $DENOGRAD_DATA/fashion-mnist.
import { loadMnist } from "./mnist.ts";
import { DataError } from "../registry.ts";
import type { ImageClasses } from "./image_classes.ts";

export const FASHION_CLASSES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
] as const;

export const DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist";
const FIRST_FILE = "train-images-idx3-ubyte";

async function holdsFashion(dir: string): Promise<boolean> {
  for (const name of [FIRST_FILE, `${FIRST_FILE}.gz`]) {
    try {
      if ((await Deno.stat(`${dir}/${name}`)).isFile) return true;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return false;
}

/** Where the IDX files are: `dataDir` when given, else the first default place that has them. */
export async function findFashionMnist(
  dataDir?: string,
  cacheRoot = Deno.env.get("DENOGRAD_DATA"),
): Promise<string> {
  const places = dataDir !== undefined
    ? [dataDir]
    : [DEBIAN_FASHION_DIR, ...(cacheRoot ? [`${cacheRoot}/fashion-mnist`] : [])];
  for (const dir of places) if (await holdsFashion(dir)) return dir;
  throw new DataError(
    `Fashion-MNIST: no ${FIRST_FILE}[.gz] in ${places.join(" or ")}. Install Debian's ` +
      "dataset-fashion-mnist package (apt-get install dataset-fashion-mnist), or put the four " +
      "IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, " +
      "t10k-labels-idx1-ubyte, gzipped or not) in a folder and pass --data DIR",
  );
}

export async function loadFashionMnist(dataDir?: string): Promise<ImageClasses> {
  const dir = await findFashionMnist(dataDir);
  const set = await loadMnist(new URL(`file://${await Deno.realPath(dir)}/`));
  return {
    name: "fashion-mnist",
    shape: [28, 28, 1],
    classes: FASHION_CLASSES,
    train: { images: set.trainImages, labels: set.trainLabels },
    test: { images: set.testImages, labels: set.testLabels },
  };
}
