// Keras-like model.summary(): one row per layer (name, type, output shape, parameters incl.
// buffers), then total / trainable / non-trainable counts. The layers are the model's children,
// with every Graph among them (Sequential, a residual block, a U-Net) opened up into the layers
// it calls. Output shapes and connections come from one batch-1 forward pass in inference mode,
// recorded at each layer's forward.
//
// Keras prints a functional model that is not a plain chain (a skip, a merge, a layer called
// twice) with an InputLayer row and a "Connected to" column naming each layer's inputs as
// `layer[call][output]`; so does this, for a Graph model. Any other model reads as a sequence of
// layers, as Keras treats subclassed models.
import { noGrad } from "../autograd.ts";
import { type Shape, Tensor, tidy } from "../tensor.ts";
import { type AnyModule, Graph, type Module } from "./module.ts";

export interface SummaryRow {
  name: string;
  type: string;
  /** Output shape with the batch axis as null (Keras' `None`); null when never called. */
  outputShape: (number | null)[] | null;
  params: number;
  /** The outputs this layer was called on, as `layer[call][output]` (the model input: `input`). */
  connectedTo: string[];
}

export interface ModelSummary {
  rows: SummaryRow[];
  total: number;
  trainable: number;
  nonTrainable: number;
  /** False when the rows are not a chain: the table then has Keras' "Connected to" column. */
  sequential: boolean;
  /** The Keras-style table. */
  text: string;
}

const INPUT = "input";

const thousands = (n: number) => n.toLocaleString("en-US");

/** Keras' readable_memory_size (f32 weights, 1024-based units). */
function memory(count: number): string {
  let bytes = count * 4;
  for (const unit of ["B", "KB", "MB", "GB"]) {
    if (bytes < 1024 || unit === "GB") return `${bytes.toFixed(2)} ${unit}`;
    bytes /= 1024;
  }
  return "";
}

function shapeText(shape: (number | null)[] | null): string {
  if (!shape) return "?";
  return `(${shape.map((d) => d ?? "None").join(", ")}${shape.length === 1 ? "," : ""})`;
}

function ownCount(module: AnyModule): number {
  const count = (ts: Tensor[]) => ts.reduce((n, t) => n + t.size, 0);
  return count(module.parameters()) + count(module.buffers());
}

function layerRow(
  name: string,
  layer: AnyModule,
  outputShape: SummaryRow["outputShape"],
): SummaryRow {
  return {
    name,
    type: layer.constructor.name,
    outputShape,
    params: ownCount(layer),
    connectedTo: [],
  };
}

function tensorsIn(value: unknown): Tensor[] {
  if (value instanceof Tensor) return [value];
  if (Array.isArray(value)) return value.flatMap(tensorsIn);
  if (typeof value === "object" && value !== null) return Object.values(value).flatMap(tensorsIn);
  return [];
}

/** The layers under `module` with their dotted paths: children, Graphs opened up, each once. */
function layersOf(
  module: AnyModule,
  prefix = "",
  seen = new Set<AnyModule>(),
): [string, AnyModule][] {
  return module.namedChildren().flatMap(([name, child]): [string, AnyModule][] => {
    if (seen.has(child)) return [];
    seen.add(child);
    const path = prefix + name;
    return child instanceof Graph ? layersOf(child, `${path}.`, seen) : [[path, child]];
  });
}

/** Whether each row takes exactly the previous row's single output (the first: the input). */
function isChain(rows: SummaryRow[]): boolean {
  return rows.every((row, i) => {
    const previous = i === 0 ? INPUT : rows[i - 1].name;
    return row.connectedTo.length === 1 && row.connectedTo[0] === `${previous}[0][0]`;
  });
}

/**
 * Summarises `model` for inputs of `inputShape` (without the batch axis); `dtype` is the input's.
 * Runs one forward pass on a batch of 1 (zeros) under noGrad in inference mode.
 */
export function summary(
  model: Module,
  inputShape: Shape,
  { name = model.constructor.name, dtype = "f32" as Tensor["dtype"] } = {},
): ModelSummary {
  const batchless = (shape: Shape) => [null, ...shape.slice(1)];
  const layers = layersOf(model);
  const rowOf = new Map<AnyModule, SummaryRow>();
  const calls = new Map<AnyModule, number>();
  /** Who produced each tensor of the pass, as `layer[call][output]`. */
  const producers = new Map<Tensor, string>();
  // Each layer's forward is wrapped on the instance for the pass, then the wrapper removed.
  const wrapped = layers.filter(([, layer]) => !Object.hasOwn(layer, "forward"));
  for (const [path, layer] of wrapped) {
    const forward = layer.forward;
    layer.forward = (...inputs: unknown[]) => {
      const sources = tensorsIn(inputs).flatMap((t) => producers.get(t) ?? []);
      const out = forward.apply(layer, inputs);
      const call = calls.get(layer) ?? 0;
      calls.set(layer, call + 1);
      const outputs = tensorsIn(out);
      let row = rowOf.get(layer);
      if (!row) {
        row = layerRow(path, layer, outputs.length ? batchless(outputs[0].shape) : null);
        rowOf.set(layer, row);
      }
      row.connectedTo.push(...sources);
      outputs.forEach((t, i) => producers.set(t, `${path}[${call}][${i}]`));
      return out;
    };
  }
  const wasTraining = model.training;
  let output: number[] = [];
  try {
    model.eval();
    noGrad(() =>
      tidy(() => {
        const input = Tensor.zeros([1, ...inputShape], dtype);
        producers.set(input, `${INPUT}[0][0]`);
        output = [...model.forward(input).shape];
      })
    );
  } finally {
    for (const [, layer] of wrapped) delete (layer as { forward?: unknown }).forward;
    model.train(wasTraining);
  }
  // Rows follow the order the layers were added in (Keras lists a model's layers that way);
  // a layer the pass never called keeps its place, with no shape.
  const rows = layers.map(([path, layer]) => rowOf.get(layer) ?? layerRow(path, layer, null));
  if (rows.length === 0) {
    rows.push({
      name,
      type: name,
      outputShape: batchless(output),
      params: ownCount(model),
      connectedTo: [],
    });
  }
  const sequential = !(model instanceof Graph) ||
    isChain(layers.flatMap(([, layer]) => rowOf.get(layer) ?? []));
  if (!sequential) {
    rows.unshift({
      name: INPUT,
      type: "InputLayer",
      outputShape: [null, ...inputShape],
      params: 0,
      connectedTo: [],
    });
  }
  const trainable = model.trainableCount();
  const nonTrainable = model.nonTrainableCount();
  const total = trainable + nonTrainable;
  return {
    rows,
    total,
    trainable,
    nonTrainable,
    sequential,
    text: table(name, rows, sequential, total, trainable, nonTrainable),
  };
}

/** Keras' box table; a cell with several lines (connections) makes its row that tall. */
function table(
  name: string,
  rows: SummaryRow[],
  sequential: boolean,
  total: number,
  trainable: number,
  nonTrainable: number,
): string {
  const header = ["Layer (type)", "Output Shape", "Param #"];
  if (!sequential) header.push("Connected to");
  const cells = rows.map((r) => {
    const values = [[`${r.name} (${r.type})`], [shapeText(r.outputShape)], [thousands(r.params)]];
    if (!sequential) values.push(r.connectedTo.length ? r.connectedTo : ["-"]);
    return values;
  });
  const widths = header.map((h, c) =>
    Math.max(h.length, ...cells.flatMap((row) => row[c].map((line) => line.length))) + 2
  );
  const line = (l: string, m: string, r: string, fill: string) =>
    l + widths.map((w) => fill.repeat(w)).join(m) + r;
  const row = (edge: string, values: string[]) =>
    edge +
    values.map((v, c) =>
      c === 2 ? ` ${v.padStart(widths[c] - 2)} ` : ` ${v.padEnd(widths[c] - 2)} `
    )
      .join(edge) +
    edge;
  const tall = (values: string[][]) => {
    const height = Math.max(...values.map((v) => v.length));
    return Array.from({ length: height }, (_, i) => row("│", values.map((v) => v[i] ?? "")))
      .join("\n");
  };
  return [
    `Model: "${name}"`,
    line("┏", "┳", "┓", "━"),
    row("┃", header),
    line("┡", "╇", "┩", "━"),
    cells.map(tall).join(`\n${line("├", "┼", "┤", "─")}\n`),
    line("└", "┴", "┘", "─"),
    ` Total params: ${thousands(total)} (${memory(total)})`,
    ` Trainable params: ${thousands(trainable)} (${memory(trainable)})`,
    ` Non-trainable params: ${thousands(nonTrainable)} (${memory(nonTrainable)})`,
  ].join("\n");
}
