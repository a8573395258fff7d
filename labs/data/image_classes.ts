// The labelled image sets TP3 classifies, in one host-side form: channels-last pixels / 255 and
// integer labels, with the class names. Loaders: labs/data/fashion_mnist.ts, labs/data/cifar10.ts.

export interface ImageSplit {
  /** [count, height, width, channels] row-major, pixels / 255 in [0, 1]. */
  images: Float32Array;
  /** [count], class ids. */
  labels: Int32Array;
}

export interface ImageClasses {
  name: string;
  /** [height, width, channels] of one image. */
  shape: readonly [number, number, number];
  classes: readonly string[];
  train: ImageSplit;
  test: ImageSplit;
}

/** Pixels per image. */
export const pixelsOf = (set: Pick<ImageClasses, "shape">) =>
  set.shape[0] * set.shape[1] * set.shape[2];

/** The first `count` images of a split (a view, no copy). */
export function headOf(split: ImageSplit, count: number, pixels: number): ImageSplit {
  return {
    images: split.images.subarray(0, count * pixels),
    labels: split.labels.subarray(0, count),
  };
}

/** Keras one-hot labels (`to_categorical`): [count, classes] with a 1 at each label. */
export function oneHot(labels: Int32Array, classes: number): Float32Array {
  const out = new Float32Array(labels.length * classes);
  for (const [i, label] of labels.entries()) {
    if (!(label >= 0 && label < classes)) {
      throw new Error(`oneHot: label ${label} at ${i} is outside [0, ${classes})`);
    }
    out[i * classes + label] = 1;
  }
  return out;
}
