// Elementwise ops with NumPy broadcasting: unary activations and math, binary arithmetic,
// comparisons, where, clamp, fill. Every forward is one dispatch; every backward one fused
// dispatch plus a reduction where an operand was broadcast.
import { type DType, formatShape, type Shape, Tensor } from "../tensor.ts";
import { type BackwardRule, recorder, type Rules } from "../autograd.ts";
import { runtime } from "../runtime.ts";
import { grid1d } from "../shaders/common.ts";
import {
  FILL,
  mapKernel,
  mapLayout,
  mapParams,
  MAX_RANK,
  vectorReads,
} from "../shaders/elementwise.ts";
import { sum } from "./reduce.ts";
import { reshape } from "./shape.ts";

type UnaryOp =
  | "relu"
  | "leaky_relu"
  | "sigmoid"
  | "tanh"
  | "exp"
  | "log"
  | "sqrt"
  | "abs"
  | "neg"
  | "gelu";
type BinaryOp = "add" | "sub" | "mul" | "div" | "pow" | "maximum" | "minimum";

interface UnaryAttrs {
  alpha: number;
}
/** A binary op with a number operand records it here (it has no tensor and no gradient). */
interface BinaryAttrs {
  scalar: { value: number; side: "a" | "b" } | null;
}
type ElementwiseAttrs =
  & { [K in UnaryOp]: UnaryAttrs }
  & { [K in BinaryOp]: BinaryAttrs }
  & { where: Record<string, never>; clamp: { low: number; high: number } };

/** Forward expression of x, and its derivative from the saved tensor `s` (x or y). */
const UNARY: Record<UnaryOp, { fwd: string; grad: string; saves: "x" | "y" | "none" }> = {
  relu: { fwd: "max(a, 0.0)", grad: "select(0.0, g, s > 0.0)", saves: "y" },
  leaky_relu: {
    fwd: "select(alpha * a, a, a > 0.0)",
    grad: "select(alpha * g, g, s > 0.0)",
    saves: "x",
  },
  sigmoid: { fwd: "sigmoid(a)", grad: "g * s * (1.0 - s)", saves: "y" },
  tanh: { fwd: "tanh_safe(a)", grad: "g * (1.0 - s * s)", saves: "y" },
  exp: { fwd: "exp(a)", grad: "g * s", saves: "y" },
  log: { fwd: "log(a)", grad: "g / s", saves: "x" },
  sqrt: { fwd: "sqrt(a)", grad: "g * 0.5 / s", saves: "y" },
  abs: { fwd: "abs(a)", grad: "g * sign(s)", saves: "x" },
  neg: { fwd: "-a", grad: "-g", saves: "none" },
  gelu: { fwd: "gelu(a)", grad: "g * gelu_grad(s)", saves: "x" },
};

/** Forward expression of (a, b), and the two partial gradients scaled by g. */
const BINARY: Record<BinaryOp, { fwd: string; da: string; db: string }> = {
  add: { fwd: "a + b", da: "g", db: "g" },
  sub: { fwd: "a - b", da: "g", db: "-g" },
  mul: { fwd: "a * b", da: "g * b", db: "g * a" },
  div: { fwd: "a / b", da: "g / b", db: "-g * a / (b * b)" },
  pow: {
    fwd: "pow_real(a, b)",
    da: "g * b * pow_real(a, b - 1.0)",
    db: "select(0.0, g * pow_real(a, b) * log(a), a > 0.0)",
  },
  maximum: {
    fwd: "max(a, b)",
    da: "g * select(select(0.0, 0.5, a == b), 1.0, a > b)",
    db: "g * select(select(0.0, 0.5, a == b), 1.0, b > a)",
  },
  minimum: {
    fwd: "min(a, b)",
    da: "g * select(select(0.0, 0.5, a == b), 1.0, a < b)",
    db: "g * select(select(0.0, 0.5, a == b), 1.0, b < a)",
  },
};

const COMPARE = {
  equal: "a == b",
  notEqual: "a != b",
  less: "a < b",
  lessEqual: "a <= b",
  greater: "a > b",
  greaterEqual: "a >= b",
} as const;

/** NumPy broadcast of two or more shapes; throws naming the op when they are incompatible. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (let d = 0; d < rank; d++) {
    for (const s of shapes) {
      const dim = s[s.length - rank + d] ?? 1;
      if (dim === 1) continue;
      if (out[d] !== 1 && out[d] !== dim) {
        throw new Error(
          `${op}: shapes ${shapes.map(formatShape).join(" and ")} cannot be broadcast ` +
            `(dimension ${d - rank} is ${out[d]} vs ${dim}; expected equal sizes or 1)`,
        );
      }
      out[d] = dim;
    }
  }
  return out;
}

interface Operand {
  name: string;
  tensor: Tensor;
}

/** Dispatches one generated kernel computing `exprs` over broadcast operands into new tensors. */
function map(
  label: string,
  operands: Operand[],
  exprs: string[],
  outShape: Shape,
  { alpha = 0, beta = 0, outDtype = "f32" as DType } = {},
): Tensor[] {
  for (const { tensor } of operands) tensor.assertAlive(label);
  if (exprs.length === 0) return [];
  const layout = mapLayout(outShape, operands.map((o) => o.tensor.shape));
  if (layout.dims.length > MAX_RANK) {
    throw new Error(
      `${label}: broadcasting needs ${layout.dims.length} dimensions (max ${MAX_RANK})`,
    );
  }
  const outs = exprs.map(() => Tensor.empty(outShape, outDtype));
  const n = outs[0].size;
  if (n === 0) return outs;
  const reads = vectorReads(layout, n);
  const [gx, gy] = grid1d(n, reads ? 4 : 1);
  runtime().launch(
    mapKernel(label, {
      names: operands.map((o) => o.name),
      types: operands.map((o) => o.tensor.dtype),
      exprs,
      outTypes: exprs.map(() => outDtype),
      layout,
      reads,
    }),
    {
      buffers: [...operands.map((o) => o.tensor.storage), ...outs.map((t) => t.storage)],
      params: mapParams(n, gx, layout, alpha, beta),
      groups: [gx, gy],
      flops: n * exprs.length,
      outputs: outs,
      op: label,
    },
  );
  return outs;
}

function requireFloat(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.dtype !== "f32") {
      throw new Error(
        `${op}: expected an f32 tensor, got ${t.dtype} of shape ${formatShape(t.shape)}`,
      );
    }
  }
}

// ---- unary ----------------------------------------------------------------------------------

function unary(op: UnaryOp, x: Tensor, alpha = 0): Tensor {
  requireFloat(op, x);
  const [y] = map(op, [{ name: "a", tensor: x }], [UNARY[op].fwd], x.shape, { alpha });
  const saves = UNARY[op].saves;
  return record(op, y, [x], saves === "x" ? [x] : saves === "y" ? [y] : [], { alpha });
}

export const relu = (x: Tensor): Tensor => unary("relu", x);
/** Keras LeakyReLU defaults to negative_slope 0.3; PyTorch to 0.01: pass it explicitly. */
export const leakyRelu = (x: Tensor, alpha = 0.3): Tensor => unary("leaky_relu", x, alpha);
export const sigmoid = (x: Tensor): Tensor => unary("sigmoid", x);
export const tanh = (x: Tensor): Tensor => unary("tanh", x);
export const exp = (x: Tensor): Tensor => unary("exp", x);
export const log = (x: Tensor): Tensor => unary("log", x);
export const sqrt = (x: Tensor): Tensor => unary("sqrt", x);
export const abs = (x: Tensor): Tensor => unary("abs", x);
export const neg = (x: Tensor): Tensor => unary("neg", x);
/** Exact (erf) GELU, Keras's default `approximate=False`. */
export const gelu = (x: Tensor): Tensor => unary("gelu", x);

function unaryRule(op: UnaryOp): BackwardRule<UnaryAttrs> {
  return (g, node) => {
    const operands: Operand[] = [{ name: "g", tensor: g }];
    if (node.saved[0]) operands.push({ name: "s", tensor: node.saved[0] });
    return map(`${op}_grad`, operands, [UNARY[op].grad], g.shape, { alpha: node.attrs.alpha });
  };
}

// ---- binary ---------------------------------------------------------------------------------

function binary(op: BinaryOp, a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === "number" && typeof b === "number") {
    throw new Error(`${op}: at least one operand must be a tensor`);
  }
  if (typeof b === "number") {
    requireFloat(op, a as Tensor);
    const x = a as Tensor;
    const [y] = map(op, [{ name: "a", tensor: x }], [withScalar(BINARY[op].fwd, "b")], x.shape, {
      beta: b,
    });
    return record(op, y, [x], [x], { scalar: { value: b, side: "b" } });
  }
  if (typeof a === "number") {
    requireFloat(op, b);
    const [y] = map(op, [{ name: "b", tensor: b }], [withScalar(BINARY[op].fwd, "a")], b.shape, {
      alpha: a,
    });
    return record(op, y, [b], [b], { scalar: { value: a, side: "a" } });
  }
  requireFloat(op, a, b);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const [y] = map(
    op,
    [{ name: "a", tensor: a }, { name: "b", tensor: b }],
    [BINARY[op].fwd],
    shape,
  );
  const needsOperands = op !== "add" && op !== "sub";
  return record(op, y, [a, b], needsOperands ? [a, b] : [], { scalar: null });
}

/** Scalar operands live in the uniform block: `a` → alpha, `b` → beta. */
function withScalar(expr: string, side: "a" | "b"): string {
  return expr.replace(side === "a" ? /\ba\b/g : /\bb\b/g, side === "a" ? "alpha" : "beta");
}

export const add = (a: Tensor | number, b: Tensor | number): Tensor => binary("add", a, b);
export const sub = (a: Tensor | number, b: Tensor | number): Tensor => binary("sub", a, b);
export const mul = (a: Tensor | number, b: Tensor | number): Tensor => binary("mul", a, b);
export const div = (a: Tensor | number, b: Tensor | number): Tensor => binary("div", a, b);
/** Real power: negative bases need integer exponents (NaN otherwise), as in PyTorch. */
export const pow = (a: Tensor | number, b: Tensor | number): Tensor => binary("pow", a, b);
export const maximum = (a: Tensor | number, b: Tensor | number): Tensor => binary("maximum", a, b);
export const minimum = (a: Tensor | number, b: Tensor | number): Tensor => binary("minimum", a, b);

/** sumToShape for a temporary: disposes `t` when a reduced copy replaces it. */
function reduceTemp(t: Tensor | null, shape: Shape, keep?: Tensor): Tensor | null {
  if (!t) return null;
  const r = sumToShape(t, shape);
  if (r !== t && t !== keep) t.dispose();
  return r;
}

/** Sums a broadcast gradient back to `shape` (the inverse of broadcasting). */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let d = 0; d < g.rank; d++) {
    if (d < lead || (shape[d - lead] === 1 && g.shape[d] !== 1)) axes.push(d);
  }
  const reduced = axes.length ? sum(g, axes, true) : g;
  const out = reshape(reduced, shape);
  if (reduced !== g && reduced !== out) reduced.dispose();
  return out;
}

function binaryRule(op: BinaryOp): BackwardRule<BinaryAttrs> {
  return (g, node) => {
    const e = BINARY[op];
    if (node.attrs.scalar) {
      const { value: scalar, side } = node.attrs.scalar;
      const name = side === "a" ? "b" : "a";
      const expr = withScalar(side === "a" ? e.db : e.da, side);
      const [dx] = map(
        `${op}_grad`,
        [{ name: "g", tensor: g }, { name, tensor: node.saved[0] }],
        [
          expr,
        ],
        g.shape,
        side === "a" ? { alpha: scalar } : { beta: scalar },
      );
      return [dx];
    }
    const [a, b] = node.inputs;
    let da: Tensor | null;
    let db: Tensor | null;
    if (op === "add" || op === "sub") {
      da = a.requiresGrad ? g : null;
      db = b.requiresGrad ? (op === "add" ? g : neg(g)) : null;
    } else {
      const exprs = [a.requiresGrad ? e.da : null, b.requiresGrad ? e.db : null];
      const outs = map(
        `${op}_grad`,
        [
          { name: "g", tensor: g },
          { name: "a", tensor: node.saved[0] },
          { name: "b", tensor: node.saved[1] },
        ],
        exprs.filter((x): x is string => x !== null),
        g.shape,
      );
      da = exprs[0] ? outs.shift()! : null;
      db = exprs[1] ? outs.shift()! : null;
    }
    return [reduceTemp(da, a.shape, g), reduceTemp(db, b.shape, g)];
  };
}

// ---- comparisons, where, clamp, fill --------------------------------------------------------

function compare(kind: keyof typeof COMPARE, a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === "number") {
    return map(
      kind,
      [{ name: "a", tensor: a }],
      [`select(0.0, 1.0, ${withScalar(COMPARE[kind], "b")})`],
      a.shape,
      {
        beta: b,
      },
    )[0];
  }
  const shape = broadcastShapes(kind, a.shape, b.shape);
  return map(kind, [{ name: "a", tensor: a }, { name: "b", tensor: b }], [
    `select(0.0, 1.0, ${COMPARE[kind]})`,
  ], shape)[0];
}

/** Comparisons accept any dtype (compared as f32) and return f32 0/1 masks; no gradient. */
export const equal = (a: Tensor, b: Tensor | number): Tensor => compare("equal", a, b);
export const notEqual = (a: Tensor, b: Tensor | number): Tensor => compare("notEqual", a, b);
export const less = (a: Tensor, b: Tensor | number): Tensor => compare("less", a, b);
export const lessEqual = (a: Tensor, b: Tensor | number): Tensor => compare("lessEqual", a, b);
export const greater = (a: Tensor, b: Tensor | number): Tensor => compare("greater", a, b);
export const greaterEqual = (a: Tensor, b: Tensor | number): Tensor =>
  compare("greaterEqual", a, b);

/** Picks `a` where `cond` is non-zero, else `b` (all three broadcast). */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  requireFloat("where", a, b);
  const shape = broadcastShapes("where", cond.shape, a.shape, b.shape);
  const [y] = map(
    "where",
    [
      { name: "c", tensor: cond },
      { name: "a", tensor: a },
      { name: "b", tensor: b },
    ],
    ["select(b, a, c != 0.0)"],
    shape,
  );
  return record("where", y, [cond, a, b], [cond], {});
}

/** Limits values to [low, high]; the gradient passes where low ≤ x ≤ high (as in PyTorch). */
export function clamp(x: Tensor, low = -Infinity, high = Infinity): Tensor {
  requireFloat("clamp", x);
  if (low > high) throw new Error(`clamp: low ${low} is above high ${high}`);
  const [y] = map("clamp", [{ name: "a", tensor: x }], ["clamp(a, alpha, beta)"], x.shape, {
    alpha: low,
    beta: high,
  });
  return record("clamp", y, [x], [x], { low, high });
}

/** A tensor of `shape` filled with `value` (one dispatch, no upload). */
export function fill(shape: Shape, value: number, dtype: DType = "f32"): Tensor {
  const t = Tensor.empty(shape, dtype);
  if (t.size === 0) return t;
  const word = new ArrayBuffer(4);
  if (dtype === "f32") new Float32Array(word)[0] = value;
  else if (dtype === "i32") new Int32Array(word)[0] = value;
  else new Uint32Array(word)[0] = value;
  const [gx, gy] = grid1d(t.size);
  runtime().launch(FILL, {
    buffers: [t.storage],
    params: { n: t.size, gx, bits: new Uint32Array(word)[0] },
    groups: [gx, gy],
  });
  return t;
}

const elementwiseRules: Rules<ElementwiseAttrs> = {
  relu: unaryRule("relu"),
  leaky_relu: unaryRule("leaky_relu"),
  sigmoid: unaryRule("sigmoid"),
  tanh: unaryRule("tanh"),
  exp: unaryRule("exp"),
  log: unaryRule("log"),
  sqrt: unaryRule("sqrt"),
  abs: unaryRule("abs"),
  neg: unaryRule("neg"),
  gelu: unaryRule("gelu"),
  add: binaryRule("add"),
  sub: binaryRule("sub"),
  mul: binaryRule("mul"),
  div: binaryRule("div"),
  pow: binaryRule("pow"),
  maximum: binaryRule("maximum"),
  minimum: binaryRule("minimum"),
  where: (g, node) => {
    const [, a, b] = node.inputs;
    const operands = [{ name: "g", tensor: g }, { name: "c", tensor: node.saved[0] }];
    const exprs = [
      a.requiresGrad ? "select(0.0, g, c != 0.0)" : null,
      b.requiresGrad ? "select(g, 0.0, c != 0.0)" : null,
    ];
    const outs = map("where_grad", operands, exprs.filter((e): e is string => e !== null), g.shape);
    const da = exprs[0] ? outs.shift()! : null;
    const db = exprs[1] ? outs.shift()! : null;
    return [null, reduceTemp(da, a.shape), reduceTemp(db, b.shape)];
  },
  clamp: (g, node) => {
    const [dx] = map(
      "clamp_grad",
      [{ name: "g", tensor: g }, { name: "s", tensor: node.saved[0] }],
      [
        "select(0.0, g, s >= alpha && s <= beta)",
      ],
      g.shape,
      { alpha: node.attrs.low, beta: node.attrs.high },
    );
    return [dx];
  },
};
const record = recorder(elementwiseRules);
