// GRU / LSTM sequence kernels. Forward: per time step, the recurrent matmul h·U, the gates, the
// nonlinearities and the state update in one pass; backward: dh = dout + dgates_{t+1}·Uᵀ and the
// gate gradients in one pass. A kernel covers a range of steps with a storage barrier after
// each, so it runs either as ONE workgroup looping over the whole sequence (one dispatch per
// sequence) or as one dispatch per step over a grid of tiles. Every per-(batch, time) buffer is
// batch-major [B, T, ·] indexed by the input's time position, so the weight gradients are single
// matmuls over all steps.
//
// Code is generated fully unrolled (named registers, no arrays): CPU adapters (lavapipe) pay
// about 20 vec4 multiply-adds per vec4 load, the same whether the lanes' addresses match or not,
// so each lane owns groups of 4 neighbouring hidden units (vec4 loads along the unit axis,
// H % 4 = 0) for a block of batch rows, and a persistent lane may own several groups so that
// fewer SIMD vectors repeat each row's state loads; other H fall back to one unit per group with
// scalar loads. A persistent lane may copy its recurrent weights into a private array once per
// launch: lavapipe reads that faster than the storage buffer at every step.
import type { KernelSpec } from "../runtime.ts";
import { uniformBlock } from "../uniforms.ts";
import { LINEAR_INDEX, range, WG } from "./common.ts";
import { GATES, type RnnCell, type RnnTile, SAVED } from "./rnn_plan.ts";

/**
 * Forward: steps s0 ≤ s < s1 of one sequence; `chunk` batch rows per workgroup; `stepOrder`: a
 * backwards pass returns its sequence in step order (Keras) rather than input time; `tail`: offset
 * (floats) of the final states in the packed output. Flags are 0 or 1.
 */
const RNN_FORWARD_UNIFORMS = uniformBlock({
  B: "u32",
  T: "u32",
  H: "u32",
  s0: "u32",
  s1: "u32",
  chunk: "u32",
  backwards: "u32",
  stepOrder: "u32",
  hasH0: "u32",
  hasC0: "u32",
  writeSeq: "u32",
  save: "u32",
  tail: "u32",
});

/**
 * Backward: `count` passes for steps start − 1, start − 2, … (`start` is the first step plus one,
 * so the dh0 pass, step −1, stays unsigned); `accumulate`: add to the partial sums of an earlier
 * launch instead of starting them; `inputGrad`: a GRU writes dxp (for dx, or dW by matmul).
 */
const RNN_BACKWARD_UNIFORMS = uniformBlock({
  B: "u32",
  T: "u32",
  H: "u32",
  start: "u32",
  count: "u32",
  chunk: "u32",
  backwards: "u32",
  stepOrder: "u32",
  seqGrad: "u32",
  tail: "u32",
  accumulate: "u32",
  inputGrad: "u32",
});

const PLACE_UNIFORMS = uniformBlock({ total: "u32", offset: "u32", n: "u32", gx: "u32" });

/** Storage declarations in binding order: `x` (the raw input [B·T, I]) is scalar, the rest VT. */
function declareBuffers(names: string[], bindings: ("read" | "write")[], VT: string): string {
  return names.map((n, i) =>
    `@group(0) @binding(${i}) var<storage, ${
      bindings[i] === "read" ? "read" : "read_write"
    }> ${n}: array<${n === "x" ? "f32" : VT}>;`
  ).join("\n");
}

/** Builds the kernel text shared by both directions for one tile. */
class Emitter {
  readonly VT: string;
  readonly W: number;
  readonly R: number;
  readonly Q: number;
  constructor(readonly tile: RnnTile) {
    this.W = tile.width;
    this.VT = tile.width === 4 ? "vec4f" : "f32";
    this.R = tile.rows;
    this.Q = tile.groups;
  }

  /** The kernel key: everything in the tile. */
  get key(): string {
    return `w${this.W}l${this.tile.lanes}r${this.R}q${this.Q}`;
  }

  /** Index into an array of VT from an index in floats (a multiple of the width). */
  at(floatIndex: string): string {
    return this.W === 4 ? `(${floatIndex}) / 4u` : floatIndex;
  }

  math(): string {
    const VT = this.VT;
    return /* wgsl */ `
fn sigm(x: ${VT}) -> ${VT} {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= ${VT}(0.0));
}
fn tanh_s(x: ${VT}) -> ${VT} { return tanh(clamp(x, ${VT}(-15.0), ${VT}(15.0))); }`;
  }

  threadSetup(gates: number): string {
    const W = this.W;
    return /* wgsl */ `
  let H = u.H;
  let GH = ${gates}u * H;
  // Unit group q: units j_q … j_q + W − 1. Out-of-range groups compute on clamped indices and
  // skip their writes.
${
      range(this.Q).map((q) => `
  let j${q} = ((wid.x * ${this.Q}u + ${q}u) * ${this.tile.lanes}u + lid.x) * ${W}u;
  let liveUnit${q} = j${q} < H;
  let jv${q} = min(j${q}, H - ${W}u);`).join("")
    }
  let rowStart = wid.y * u.chunk;
  let rowEnd = min(u.B, rowStart + u.chunk);
  let back = u.backwards != 0u;`;
  }

  /** Row indices of the block starting at b0 (clamped; `b0 + r < B` tells the live rows). */
  rows(): string {
    return range(this.R).map((r) => `let b${r} = min(b0 + ${r}u, u.B - 1u);`).join("\n");
  }

  /** Names unit group q's indices as the epilogues use them: j, jv, liveUnit. */
  unitGroup(q: number): string {
    return `let j = j${q};\n  let jv = jv${q};\n  let liveUnit = liveUnit${q};`;
  }

  /** `var name_r: VT; name_r = VT(0)` for every row (assigned: see the note on naga). */
  zeroed(names: string[]): string {
    const out: string[] = [];
    for (const n of names) {
      out.push(`var ${n}: ${this.VT};`);
      out.push(`${n} = ${this.VT}(0.0);`);
    }
    return out.join("\n");
  }
}

/**
 * Forward over steps s0 ≤ s < s1. Lane (units j … j+W−1, batch rows b0 … b0+R−1) computes the G
 * recurrent pre-activations of its units (h_prev read from global memory: it is tiny and cached),
 * then the gates and the new state, and stores what backward needs.
 *
 * GRU (reset_after): z = σ(x_z + h·U_z + b_rz), r = σ(x_r + h·U_r + b_rr),
 *   ĥ = tanh(x_h + r ⊙ (h·U_h + b_rh)), h' = z ⊙ h + (1 − z) ⊙ ĥ  (x_* include the input bias).
 * LSTM: i, f, o = σ(·), g = tanh(·) of x_* + h·U_*; c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c').
 * x_* is read from the matmul's xp = x·W + b_in, or with `fusedInputs` = I > 0 computed here from
 * x [B·T, I] and the lane's columns of W and b_in, held in registers for the whole launch.
 *
 * Variables are assigned rather than initialised where they must restart at every step: naga
 * hoists function variables to the entry block and zero-initialises them only once.
 */
export function rnnForwardKernel(
  cell: RnnCell,
  tile: RnnTile,
  fusedInputs: number,
  held: number,
): KernelSpec<typeof RNN_FORWARD_UNIFORMS.fields> {
  const G = GATES[cell];
  const S = SAVED[cell];
  const lstm = cell === "lstm";
  const I = fusedInputs;
  const e = new Emitter(tile);
  const { VT, W, R, Q } = e;
  const at = (i: string) => e.at(i);
  const blocks = range(R).flatMap((r) => range(Q).map((q) => [r, q]));
  const acc = blocks.flatMap(([r, q]) => range(G).map((g) => `a${r}_${q}_${g}`));

  const recurrence = (src: string, base: (r: number) => string, fromCopy = false): string => {
    const lines: string[] = [];
    if (W === 4) {
      lines.push("for (var k = 0u; k < H; k += 4u) {");
      for (const r of range(R)) lines.push(`let hk${r} = ${src}[(${base(r)} + k) / 4u];`);
      // Per unit group, every weight fragment of the four depths first, then row by row: each
      // accumulator is read and written once per four k (the block does not fit in registers).
      for (const q of range(Q)) {
        for (const kk of range(4)) {
          for (const g of range(G)) {
            lines.push(
              fromCopy
                ? `let w${q}_${g}_${kk} = wl[((k + ${kk}u) * ${Q}u + ${q}u) * ${G}u + ${g}u];`
                : `let w${q}_${g}_${kk} = rk[((k + ${kk}u) * GH + ${g}u * H + jv${q}) / 4u];`,
            );
          }
        }
        for (const r of range(R)) {
          for (const g of range(G)) {
            for (const kk of range(4)) {
              lines.push(`a${r}_${q}_${g} += hk${r}.${"xyzw"[kk]} * w${q}_${g}_${kk};`);
            }
          }
        }
      }
    } else {
      lines.push("for (var k = 0u; k < H; k++) {");
      for (const r of range(R)) lines.push(`let hk${r} = ${src}[${base(r)} + k];`);
      for (const q of range(Q)) {
        for (const g of range(G)) lines.push(`let w${q}_${g} = rk[k * GH + ${g}u * H + jv${q}];`);
        for (const r of range(R)) {
          for (const g of range(G)) lines.push(`a${r}_${q}_${g} += hk${r} * w${q}_${g};`);
        }
      }
    }
    lines.push("}");
    return lines.join("\n");
  };

  // With `held` = H: a private copy of the lane's weight fragments (index (k · Q + q) · G + g),
  // filled once per launch; the recurrence over h_{s−1} reads it instead of the storage buffer.
  const heldWeights = held
    ? `  var wl: array<vec4f, ${held * Q * G}>;
  for (var k = 0u; k < H; k++) {
${
      range(Q).flatMap((q) =>
        range(G).map((g) =>
          `    wl[(k * ${Q}u + ${q}u) * ${G}u + ${g}u] = rk[(k * GH + ${g}u * H + jv${q}) / 4u];`
        )
      ).join("\n")
    }
  }`
    : "";
  // An LSTM's h0 and c0 come in one buffer [2, B, H] (a binding fewer).
  const h0 = lstm ? "state0" : "h0";
  /** Gate g's input term x_g of the epilogue's row for unit group q. */
  const xin = (q: number, g: number): string =>
    I
      ? `(${[`ib${q}_${g}`, ...range(I).map((i) => `xv${i} * iw${q}_${i}_${g}`)].join(" + ")})`
      : `xp[${at(`xo + ${g}u * H`)}]`;
  const epilogue = (r: number, q: number): string => {
    const a = (g: number) => `a${r}_${q}_${g}`;
    const head = /* wgsl */ `
{
  ${e.unitGroup(q)}
  let b = b${r};
  let live = liveUnit && b0 + ${r}u < u.B;
  let bt = b * u.T + t;
  var hp: ${VT};
  hp = ${VT}(0.0);
  if (!first) { hp = hprev[${at("bt * H + jv")}]; } else if (u.hasH0 != 0u) { hp = ${h0}[${
      at("b * H + jv")
    }]; }
  ${
      I
        ? range(I).map((i) => `let xv${i} = x[bt * ${I}u + ${i}u];`).join(" ")
        : "let xo = bt * GH + jv;"
    }`;
    const seq = `if (u.writeSeq != 0u) { out[${at("(b * u.T + outPos) * H + j")}] = h; }`;
    if (lstm) {
      return head + /* wgsl */ `
  var cp: ${VT};
  cp = ${VT}(0.0);
  if (!first) { cp = cprev[${at("bt * H + jv")}]; } else if (u.hasC0 != 0u) { cp = ${h0}[${
        at("u.B * H + b * H + jv")
      }]; }
  let ig = sigm(${xin(q, 0)} + ${a(0)});
  let fg = sigm(${xin(q, 1)} + ${a(1)});
  let gg = tanh_s(${xin(q, 2)} + ${a(2)});
  let og = sigm(${xin(q, 3)} + ${a(3)});
  let c = fg * cp + ig * gg;
  let tc = tanh_s(c);
  let h = og * tc;
  if (live) {
    if (u.save != 0u) {
      let ao = bt * ${S}u * H + j;
      acts[${at("ao")}] = ig;
      acts[${at("ao + H")}] = fg;
      acts[${at("ao + 2u * H")}] = gg;
      acts[${at("ao + 3u * H")}] = og;
      acts[${at("ao + 4u * H")}] = tc;
      if (first) { hprev[${at("bt * H + j")}] = hp; cprev[${at("bt * H + j")}] = cp; }
    }
    if (!last) {
      hprev[${at("(b * u.T + tNext) * H + j")}] = h;
      cprev[${at("(b * u.T + tNext) * H + j")}] = c;
    } else {
      out[${at("u.tail + b * H + j")}] = h;
      out[${at("u.tail + u.B * H + b * H + j")}] = c;
    }
    ${seq}
  }
}`;
    }
    return head + /* wgsl */ `
  let hz = ${a(0)} + rb${q}_0;
  let hr = ${a(1)} + rb${q}_1;
  let hh = ${a(2)} + rb${q}_2;
  let z = sigm(${xin(q, 0)} + hz);
  let rg = sigm(${xin(q, 1)} + hr);
  let n = tanh_s(${xin(q, 2)} + rg * hh);
  let h = z * hp + (1.0 - z) * n;
  if (live) {
    if (u.save != 0u) {
      let ao = bt * ${S}u * H + j;
      acts[${at("ao")}] = z;
      acts[${at("ao + H")}] = rg;
      acts[${at("ao + 2u * H")}] = n;
      acts[${at("ao + 3u * H")}] = hh;
      if (first) { hprev[${at("bt * H + j")}] = hp; }
    }
    if (!last) {
      hprev[${at("(b * u.T + tNext) * H + j")}] = h;
    } else {
      out[${at("u.tail + b * H + j")}] = h;
    }
    ${seq}
  }
}`;
  };

  // Loaded once per launch rather than once per row and step (the compiler cannot keep them: the
  // same buffers are written in between): the GRU's recurrent bias, and with fused inputs the
  // lane's columns of W and of the input bias (GRU bias row 0, LSTM bias).
  const hoisted = range(Q).flatMap((q) => [
    ...(lstm
      ? []
      : range(G).map((g) => `let rb${q}_${g} = bias[${at(`GH + ${g}u * H + jv${q}`)}];`)),
    ...(I ? range(G).map((g) => `let ib${q}_${g} = bias[${at(`${g}u * H + jv${q}`)}];`) : []),
    ...range(I).flatMap((i) =>
      range(G).map((g) => `let iw${q}_${i}_${g} = wk[${at(`${i}u * GH + ${g}u * H + jv${q}`)}];`)
    ),
  ]).map((line) => `  ${line}`).join("\n");
  const names = [
    ...(I ? ["x", "wk"] : ["xp"]),
    "rk",
    ...(lstm && !I ? [] : ["bias"]),
    h0,
    "hprev",
    ...(lstm ? ["cprev"] : []),
    "acts",
    "out",
  ];
  const bindings = names.map((n) =>
    ["hprev", "cprev", "acts", "out"].includes(n) ? "write" : "read"
  );
  return {
    name: `${cell}_forward`,
    key: `${e.key}i${I}h${held}`,
    bindings,
    uniforms: RNN_FORWARD_UNIFORMS,
    code: () => /* wgsl */ `
${RNN_FORWARD_UNIFORMS.struct()}
${declareBuffers(names, bindings, VT)}
@group(0) @binding(${names.length}) var<uniform> u: U;
${e.math()}

@compute @workgroup_size(${tile.lanes})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${e.threadSetup(G)}
${hoisted}
${heldWeights}
  for (var s = u.s0; s < u.s1; s++) {
    let t = select(s, u.T - 1u - s, back);
    let first = s == 0u;
    let last = s + 1u == u.T;
    let tNext = select(s + 1u, u.T - 2u - s, back); // unused on the last step
    let outPos = select(t, s, back && u.stepOrder != 0u);
    for (var b0 = rowStart; b0 < rowEnd; b0 += ${R}u) {
${e.rows()}
${e.zeroed(acc)}
      if (!first) {
${recurrence("hprev", (r) => `(b${r} * u.T + t) * H`, held > 0)}
      } else if (u.hasH0 != 0u) {
${recurrence(h0, (r) => `b${r} * H`)}
      }
${blocks.map(([r, q]) => epilogue(r, q)).join("\n")}
    }
    storageBarrier();
  }
}`,
  };
}

/**
 * Backward through time, steps start, start − 1, … (`count` of them; step −1 is the dh0 pass):
 * dh = [carry or dh_T] + dseq_s + dĝ_{s+1}·Uᵀ for the lane's units and rows, then the gate
 * gradients of step s. GRU writes dxp (input-side pre-activation gradients, bias row 0) and dhp
 * (recurrent side: the h gate scaled by r); its carry holds dh ⊙ z. LSTM writes one dgates
 * buffer; its cell carry holds dc ⊙ f. The dh0 pass only forms dh0 = carry + dĝ_0·Uᵀ into the
 * h carry. Every lane also sums its units' gate gradients over its rows and steps into one row
 * of `parts` per workgroup row: the bias gradient, and with `fusedInputs` = I > 0 the input
 * kernel's gradient xᵀ·dxp after it, so neither needs a pass over the [B·T, G·H] gradients.
 */
export function rnnBackwardKernel(
  cell: RnnCell,
  tile: RnnTile,
  fusedInputs: number,
  held: number,
): KernelSpec<typeof RNN_BACKWARD_UNIFORMS.fields> {
  const G = GATES[cell];
  const S = SAVED[cell];
  const lstm = cell === "lstm";
  const I = fusedInputs;
  const e = new Emitter(tile);
  const { VT, W, R, Q } = e;
  const at = (i: string) => e.at(i);
  const recurrentGrad = lstm ? "dg" : "dhp";
  const blocks = range(R).flatMap((r) => range(Q).map((q) => [r, q]));

  const recurrence = (): string => {
    const lines: string[] = [];
    const rowBase = (r: number) => `(b${r} * u.T + tRec) * GH`;
    if (W === 4) {
      lines.push("for (var k = 0u; k < GH; k += 4u) {");
      for (const r of range(R)) {
        lines.push(`let g${r} = ${recurrentGrad}[(${rowBase(r)} + k) / 4u];`);
      }
      for (const q of range(Q)) {
        const w = range(4).map((c) => `w${q}_${c}`);
        range(4).forEach((c) =>
          lines.push(
            held
              ? `let ${w[c]} = wl[(k / 4u * ${Q}u + ${q}u) * 4u + ${c}u];`
              : `let ${w[c]} = rk[((jv${q} + ${c}u) * GH + k) / 4u];`,
          )
        );
        for (const r of range(R)) {
          const dots = w.map((wc) => `dot(g${r}, ${wc})`).join(", ");
          lines.push(`d${r}_${q} += vec4f(${dots});`);
        }
      }
    } else {
      lines.push("for (var k = 0u; k < GH; k++) {");
      for (const r of range(R)) lines.push(`let g${r} = ${recurrentGrad}[${rowBase(r)} + k];`);
      for (const q of range(Q)) {
        lines.push(`let w${q} = rk[jv${q} * GH + k];`);
        for (const r of range(R)) lines.push(`d${r}_${q} += g${r} * w${q};`);
      }
    }
    lines.push("}");
    return lines.join("\n");
  };

  const epilogue = (r: number, q: number): string => {
    const carryIn = lstm
      ? `if (first) { d += dout[${at("u.tail + b * H + jv")}]; }`
      : `if (first) { d += dout[${at("u.tail + b * H + jv")}]; } else { d += carryH[${
        at("b * H + jv")
      }]; }`;
    // The partial sums: bias terms (the input side, then a GRU's recurrent n term), x ⊗ input side.
    const sums = (inputSide: string[], extra: string[]) =>
      [
        ...[...inputSide, ...extra].map((v, k) => `bs${q}_${k} += ${v};`),
        ...range(I).map((i) => `let xv${i} = x[bt * ${I}u + ${i}u];`),
        ...range(I).flatMap((i) => inputSide.map((v, g) => `bw${q}_${i}_${g} += xv${i} * ${v};`)),
      ].join("\n      ");
    const gatesPart = lstm
      ? /* wgsl */ `
    let ig = acts[${at("ao")}];
    let fg = acts[${at("ao + H")}];
    let gg = acts[${at("ao + 2u * H")}];
    let og = acts[${at("ao + 3u * H")}];
    let tc = acts[${at("ao + 4u * H")}];
    var dc: ${VT};
    dc = d * og * (1.0 - tc * tc);
    if (first) { dc += dout[${at("u.tail + u.B * H + b * H + jv")}]; } else { dc += carryC[${
        at("b * H + jv")
      }]; }
    if (live) {
      let di = dc * gg * ig * (1.0 - ig);
      let df = dc * cprev[${at("bt * H + jv")}] * fg * (1.0 - fg);
      let dgg = dc * ig * (1.0 - gg * gg);
      let dog = d * tc * og * (1.0 - og);
      dg[${at("go")}] = di;
      dg[${at("go + H")}] = df;
      dg[${at("go + 2u * H")}] = dgg;
      dg[${at("go + 3u * H")}] = dog;
      carryC[${at("b * H + j")}] = dc * fg;
      ${sums(["di", "df", "dgg", "dog"], [])}
    }`
      : /* wgsl */ `
    let z = acts[${at("ao")}];
    let rg = acts[${at("ao + H")}];
    let n = acts[${at("ao + 2u * H")}];
    let hh = acts[${at("ao + 3u * H")}];
    let dn = d * (1.0 - z) * (1.0 - n * n);
    let dz = d * (hprev[${at("bt * H + jv")}] - n) * z * (1.0 - z);
    let dr = dn * hh * rg * (1.0 - rg);
    let dnr = dn * rg;
    if (live) {
      if (u.inputGrad != 0u) {
        dxp[${at("go")}] = dz;
        dxp[${at("go + H")}] = dr;
        dxp[${at("go + 2u * H")}] = dn;
      }
      dhp[${at("go")}] = dz;
      dhp[${at("go + H")}] = dr;
      dhp[${at("go + 2u * H")}] = dnr;
      carryH[${at("b * H + j")}] = d * z;
      ${sums(["dz", "dr", "dn"], ["dnr"])}
    }`;
    return /* wgsl */ `
{
  ${e.unitGroup(q)}
  let b = b${r};
  let live = liveUnit && b0 + ${r}u < u.B;
  let bt = b * u.T + t;
  var d: ${VT};
  d = d${r}_${q};
  ${carryIn}
  if (!gates) {
    if (live) { carryH[${at("b * H + j")}] = d; }
  } else {
    if (u.seqGrad != 0u) { d += dout[${at("(b * u.T + outPos) * H + jv")}]; }
    let ao = bt * ${S}u * H + jv;
    let go = bt * GH + j;${gatesPart}
  }
}`;
  };

  // The row of partial sums: LSTM bias [G·H], GRU bias rows [dz, dr, dn | dz, dr, dn ⊙ r], then
  // with fused inputs the kernel gradient [I, G·H].
  const biasWidth = lstm ? "GH" : "2u * GH";
  // With `held` = H: a private copy of the lane's rows of U (index (k/4 · Q + q) · 4 + c: unit
  // jv_q + c, depths k … k + 3), filled once per launch.
  const heldWeights = held
    ? `  var wl: array<vec4f, ${held * G * Q}>;
  for (var k = 0u; k < GH; k += 4u) {
${
      range(Q).flatMap((q) =>
        range(4).map((c) =>
          `    wl[(k / 4u * ${Q}u + ${q}u) * 4u + ${c}u] = rk[((jv${q} + ${c}u) * GH + k) / 4u];`
        )
      ).join("\n")
    }
  }`
    : "";
  const partWrites = range(Q).map((q) => {
    const put = (offset: string, sum: string) => {
      const i = at(`partBase + ${offset} + j${q}`);
      return `if (u.accumulate != 0u) { parts[${i}] += ${sum}; } else { parts[${i}] = ${sum}; }`;
    };
    const bs = (k: number) => `bs${q}_${k}`;
    const puts = range(G).map((g) => put(`${g}u * H`, bs(g)));
    if (!lstm) puts.push(put("GH", bs(0)), put("GH + H", bs(1)), put("GH + 2u * H", bs(3)));
    for (const i of range(I)) {
      for (const g of range(G)) {
        puts.push(put(`${biasWidth} + ${i}u * GH + ${g}u * H`, `bw${q}_${i}_${g}`));
      }
    }
    return `if (liveUnit${q}) {\n    ${puts.join("\n    ")}\n  }`;
  }).join("\n  ");
  const sumNames = range(Q).flatMap((q) => [
    ...range(4).map((k) => `bs${q}_${k}`),
    ...range(I).flatMap((i) => range(G).map((g) => `bw${q}_${i}_${g}`)),
  ]);

  const names = [
    ...["dout", "rk", "acts", lstm ? "cprev" : "hprev"],
    ...(lstm ? ["dg", "carryH", "carryC"] : ["dxp", "dhp", "carryH"]),
    "parts",
    ...(I ? ["x"] : []),
  ];
  const bindings = names.map((n, i) => i < 4 || n === "x" ? "read" : "write");
  return {
    name: `${cell}_backward`,
    key: `${e.key}i${I}h${held}`,
    bindings,
    uniforms: RNN_BACKWARD_UNIFORMS,
    code: () => /* wgsl */ `
${RNN_BACKWARD_UNIFORMS.struct()}
${declareBuffers(names, bindings, VT)}
@group(0) @binding(${names.length}) var<uniform> u: U;

@compute @workgroup_size(${tile.lanes})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${e.threadSetup(G)}
${e.zeroed(sumNames)}
${heldWeights}
  for (var i = 0u; i < u.count; i++) {
    // s + 1 (unsigned: the dh0 pass has s = −1).
    let s1 = u.start - i;
    let gates = s1 > 0u;
    let s = max(s1, 1u) - 1u;
    let t = select(s, u.T - 1u - s, back);
    let first = s1 == u.T;
    let tRec = select(s1, u.T - 1u - s1, back); // step s + 1, unused on the first pass
    let outPos = select(t, s, back && u.stepOrder != 0u);
    for (var b0 = rowStart; b0 < rowEnd; b0 += ${R}u) {
${e.rows()}
${e.zeroed(blocks.map(([r, q]) => `d${r}_${q}`))}
      if (!first) {
${recurrence()}
      }
${blocks.map(([r, q]) => epilogue(r, q)).join("\n")}
    }
    storageBarrier();
  }
  let partBase = wid.y * ${(lstm ? 1 : 2) + I}u * GH;
  ${partWrites}
}`,
  };
}

/** Places a gradient slice into a zero gradient of the packed output: out[offset + i] = g[i]. */
export const rnnPlaceKernel: KernelSpec<typeof PLACE_UNIFORMS.fields> = {
  name: "rnn_place",
  key: "",
  bindings: ["read", "write"],
  uniforms: PLACE_UNIFORMS,
  code: () => /* wgsl */ `
${PLACE_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
${LINEAR_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx);
  if (i >= u.total) { return; }
  let k = i - u.offset;
  out[i] = select(0.0, g[min(k, u.n - 1u)], i >= u.offset && k < u.n);
}`,
};
