// Keras-like model.summary(): one row per direct child module (name, type, output shape,
// parameters incl. buffers), then total / trainable / non-trainable counts. Output shapes
// come from one batch-1 forward pass in inference mode, recorded at each child's forward.
import { noGrad } from "../autograd.ts";
import { type Shape, Tensor, tidy } from "../tensor.ts";
import type { AnyModule, Module } from "./module.ts";

export interface SummaryRow {
  name: string;
  type: string;
  /** Output shape with the batch axis as null (Keras' `None`); null when never called. */
  outputShape: (number | null)[] | null;
  params: number;
}

export interface ModelSummary {
  rows: SummaryRow[];
  total: number;
  trainable: number;
  nonTrainable: number;
  /** The Keras-style table. */
  text: string;
}

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

/**
 * Summarises `model` for inputs of `inputShape` (without the batch axis); `dtype` is the input's.
 * Runs one forward pass on a batch of 1 (zeros) under noGrad in inference mode.
 */
export function summary(
  model: Module,
  inputShape: Shape,
  { name = model.constructor.name, dtype = "f32" as Tensor["dtype"] } = {},
): ModelSummary {
  const children = model.namedChildren();
  const shapes = new Map<AnyModule, number[]>();
  // Each child's forward is wrapped on the instance for the pass, then the wrapper removed.
  const wrapped = children.filter(([, child]) => !Object.hasOwn(child, "forward"));
  for (const [, child] of wrapped) {
    const forward = child.forward;
    child.forward = (...inputs: unknown[]) => {
      const out = forward.apply(child, inputs);
      if (out instanceof Tensor) shapes.set(child, [...out.shape]);
      return out;
    };
  }
  const wasTraining = model.training;
  let output: number[] = [];
  try {
    model.eval();
    noGrad(() =>
      tidy(() => {
        output = [...model.forward(Tensor.zeros([1, ...inputShape], dtype)).shape];
      })
    );
  } finally {
    for (const [, child] of wrapped) delete (child as { forward?: unknown }).forward;
    model.train(wasTraining);
  }
  const batchless = (shape: number[] | undefined) => shape ? [null, ...shape.slice(1)] : null;
  const rows: SummaryRow[] = children.map(([childName, child]) => ({
    name: childName,
    type: child.constructor.name,
    outputShape: batchless(shapes.get(child)),
    params: ownCount(child),
  }));
  if (rows.length === 0) {
    rows.push({ name, type: name, outputShape: batchless(output), params: ownCount(model) });
  }
  const trainable = model.trainableCount();
  const nonTrainable = model.nonTrainableCount();
  const total = trainable + nonTrainable;
  return {
    rows,
    total,
    trainable,
    nonTrainable,
    text: table(name, rows, total, trainable, nonTrainable),
  };
}

function table(
  name: string,
  rows: SummaryRow[],
  total: number,
  trainable: number,
  nonTrainable: number,
): string {
  const cells = rows.map((r) => [
    `${r.name} (${r.type})`,
    shapeText(r.outputShape),
    thousands(r.params),
  ]);
  const header = ["Layer (type)", "Output Shape", "Param #"];
  const widths = header.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c].length)) + 2);
  const line = (l: string, m: string, r: string, fill: string) =>
    l + widths.map((w) => fill.repeat(w)).join(m) + r;
  const row = (edge: string, values: string[]) =>
    edge +
    values.map((v, c) =>
      c === 2 ? ` ${v.padStart(widths[c] - 2)} ` : ` ${v.padEnd(widths[c] - 2)} `
    )
      .join(edge) +
    edge;
  const body = cells.map((values) => row("│", values));
  return [
    `Model: "${name}"`,
    line("┏", "┳", "┓", "━"),
    row("┃", header),
    line("┡", "╇", "┩", "━"),
    body.join(`\n${line("├", "┼", "┤", "─")}\n`),
    line("└", "┴", "┘", "─"),
    ` Total params: ${thousands(total)} (${memory(total)})`,
    ` Trainable params: ${thousands(trainable)} (${memory(trainable)})`,
    ` Non-trainable params: ${thousands(nonTrainable)} (${memory(nonTrainable)})`,
  ].join("\n");
}
