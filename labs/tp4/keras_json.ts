// A Sequential of conv / pooling / flatten / dense layers as Keras 3's `model.to_json()` writes
// the equivalent functional model: the string the TP4 handout logs with
// `mlflow.log_dict({"model_config": model.to_json()}, "artifacts/model_architecture.json")`.
// Keys, their order, layer names (conv3d, conv3d_1, …) and Python's json.dumps separators follow
// the students' file from Keras 3.12 (spec labs/TP1-TP4.md §5.4), so that file is reproduced byte
// for byte for the handout's Conv3D model.
import { Conv2D, Conv3D } from "../../engine/nn/conv.ts";
import { Flatten } from "../../engine/nn/flatten.ts";
import { Linear } from "../../engine/nn/linear.ts";
import type { AnyModule } from "../../engine/nn/module.ts";
import { AvgPool2D, AvgPool3D, MaxPool2D, MaxPool3D } from "../../engine/nn/pool.ts";
import type { Sequential } from "../../engine/nn/sequential.ts";
import { summary } from "../../engine/nn/summary.ts";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Shape = (number | null)[];

/** Python's `json.dumps` with its default separators (", " and ": "); numbers must be integers. */
export function pythonJson(value: Json): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new Error(`pythonJson: ${value} is not an integer (Python would write a float)`);
    }
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(", ")}]`;
  return `{${
    Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${pythonJson(v)}`).join(", ")
  }}`;
}

const FLOAT32_POLICY = {
  module: "keras",
  class_name: "DTypePolicy",
  config: { name: "float32" },
  registered_name: null,
};

const initializer = (className: string, config: { [key: string]: Json }) => ({
  module: "keras.initializers",
  class_name: className,
  config,
  registered_name: null,
});

interface KerasLayer {
  className: string;
  /** Keras' auto-name stem: conv3d, max_pooling3d, … */
  stem: string;
  /** Whether Keras writes a build_config (layers with weights or a build step). */
  built: boolean;
  config: { [key: string]: Json };
}

/** The Keras class and config of one of our layers (name and common fields added later). */
function kerasLayer(layer: AnyModule): KerasLayer {
  if (layer instanceof Conv2D || layer instanceof Conv3D) {
    const rank = layer.kernelSize.length;
    return {
      className: `Conv${rank}D`,
      stem: `conv${rank}d`,
      built: true,
      config: {
        filters: layer.filters,
        kernel_size: layer.kernelSize,
        strides: layer.strides,
        padding: layer.padding,
        data_format: "channels_last",
        dilation_rate: layer.dilation,
        groups: 1,
        activation: layer.activation ?? "linear",
        use_bias: layer.bias !== null,
        kernel_initializer: initializer("GlorotUniform", { seed: null }),
        bias_initializer: initializer("Zeros", {}),
        kernel_regularizer: null,
        bias_regularizer: null,
        activity_regularizer: null,
        kernel_constraint: null,
        bias_constraint: null,
      },
    };
  }
  const pools = [
    [MaxPool2D, "MaxPooling2D", "max_pooling2d"],
    [MaxPool3D, "MaxPooling3D", "max_pooling3d"],
    [AvgPool2D, "AveragePooling2D", "average_pooling2d"],
    [AvgPool3D, "AveragePooling3D", "average_pooling3d"],
  ] as const;
  for (const [type, className, stem] of pools) {
    if (layer instanceof type) {
      return {
        className,
        stem,
        built: false,
        config: {
          pool_size: layer.poolSize,
          padding: layer.padding,
          strides: layer.strides,
          data_format: "channels_last",
        },
      };
    }
  }
  if (layer instanceof Flatten) {
    return {
      className: "Flatten",
      stem: "flatten",
      built: true,
      config: { data_format: "channels_last" },
    };
  }
  if (layer instanceof Linear) {
    return {
      className: "Dense",
      stem: "dense",
      built: true,
      config: {
        units: layer.outFeatures,
        activation: layer.activation ?? "linear",
        use_bias: layer.bias !== null,
        kernel_initializer: initializer("GlorotUniform", { seed: null }),
        bias_initializer: initializer("Zeros", {}),
        kernel_regularizer: null,
        bias_regularizer: null,
        kernel_constraint: null,
        bias_constraint: null,
        quantization_config: null,
      },
    };
  }
  throw new Error(
    `kerasModelJson: no Keras equivalent written for ${layer.constructor.name} (conv, pooling, ` +
      "Flatten and Linear layers only)",
  );
}

const kerasTensor = (shape: Shape, from: string) => ({
  class_name: "__keras_tensor__",
  config: { shape, dtype: "float32", keras_history: [from, 0, 0] },
});

/**
 * Keras `to_json()` of `model` built as a functional model on inputs of `inputShape` (no batch
 * axis): InputLayer, then one entry per layer with its config, build input shape and inbound
 * node. The output shapes come from summary()'s batch-1 pass.
 */
export function kerasModelJson(model: Sequential, inputShape: readonly number[]): string {
  const rows = summary(model, [...inputShape]).rows;
  const used = new Map<string, number>();
  const autoName = (stem: string) => {
    const n = used.get(stem) ?? 0;
    used.set(stem, n + 1);
    return n === 0 ? stem : `${stem}_${n}`;
  };
  let previous = { name: "input_layer", shape: [null, ...inputShape] as Shape };
  const layers: Json[] = [{
    module: "keras.layers",
    class_name: "InputLayer",
    config: {
      batch_shape: previous.shape,
      dtype: "float32",
      sparse: false,
      ragged: false,
      name: previous.name,
      optional: false,
    },
    registered_name: null,
    name: previous.name,
    inbound_nodes: [],
  }];
  model.layers.forEach((layer, i) => {
    const keras = kerasLayer(layer);
    const name = autoName(keras.stem);
    const entry: { [key: string]: Json } = {
      module: "keras.layers",
      class_name: keras.className,
      config: { name, trainable: true, dtype: FLOAT32_POLICY, ...keras.config },
      registered_name: null,
    };
    if (keras.built) entry.build_config = { input_shape: previous.shape };
    entry.name = name;
    entry.inbound_nodes = [{ args: [kerasTensor(previous.shape, previous.name)], kwargs: {} }];
    layers.push(entry);
    const shape = rows[i].outputShape;
    if (!shape) throw new Error(`kerasModelJson: layer ${i} was not called by the forward pass`);
    previous = { name, shape };
  });
  return pythonJson({
    module: "keras.src.models.functional",
    class_name: "Functional",
    config: {
      name: "functional",
      trainable: true,
      layers,
      input_layers: ["input_layer", 0, 0],
      output_layers: [previous.name, 0, 0],
    },
    registered_name: "Functional",
    build_config: { input_shape: null },
    compile_config: {},
  });
}
