// GRU / LSTM sequence kernels. Forward: per time step, the recurrent matmul h·U, the gates, the
// nonlinearities and the state update in one pass; backward (rnn_backward.ts): dh = dout +
// dgates_{t+1}·Uᵀ and the gate gradients in one pass. A kernel covers a range of steps with a
// storage barrier after each, so it runs either as ONE workgroup looping over the whole sequence
// (one dispatch per sequence) or as one dispatch per step over a grid of tiles. Every
// per-(batch, time) buffer is batch-major [B, T, ·] indexed by the input's time position, so the
// weight gradients are single matmuls over all steps.
//
// Code is generated unrolled over rows and unit groups (named registers): CPU adapters
// (lavapipe) pay about 20 vec4 multiply-adds per vec4 load, the same whether the lanes' addresses
// match or not, so each lane owns groups of 4 neighbouring hidden units (vec4 loads along the
// unit axis, H % 4 = 0) for a block of batch rows, and a persistent lane may own several groups
// so that fewer SIMD vectors repeat each row's state loads; other H fall back to one unit per
// group with scalar loads. A persistent lane may copy its recurrent weights into a private array
// once per launch: lavapipe reads that faster than the storage buffer at every step.
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

const PLACE_UNIFORMS = uniformBlock({ total: "u32", offset: "u32", n: "u32", gx: "u32" });

/** Storage declarations in binding order: `x` (the raw input [B·T, I]) is scalar, the rest VT. */
function declareBuffers(names: string[], bindings: ("read" | "write")[], VT: string): string {
  return names.map((n, i) =>
    `@group(0) @binding(${i}) var<storage, ${
      bindings[i] === "read" ? "read" : "read_write"
    }> ${n}: array<${n === "x" ? "f32" : VT}>;`
  ).join("\n");
}

/**
 * Builds the kernel text shared by both directions for one cell and tile: G gates, S saved
 * activations, I inputs projected in the kernel (0: none), `held` H when each lane copies its
 * recurrent weights into a private array (else 0), `blocks` the (row, unit group) pairs.
 */
export class Emitter {
  readonly VT: string;
  readonly W: number;
  readonly R: number;
  readonly Q: number;
  readonly G: number;
  readonly S: number;
  readonly lstm: boolean;
  readonly blocks: number[][];
  constructor(
    cell: RnnCell,
    readonly tile: RnnTile,
    readonly I: number,
    readonly held: number,
  ) {
    this.W = tile.width;
    this.VT = tile.width === 4 ? "vec4f" : "f32";
    this.R = tile.rows;
    this.Q = tile.groups;
    this.G = GATES[cell];
    this.S = SAVED[cell];
    this.lstm = cell === "lstm";
    this.blocks = range(this.R).flatMap((r) => range(this.Q).map((q) => [r, q]));
  }

  /** The kernel key: the tile, the fused inputs and the held weights. */
  get key(): string {
    return `w${this.W}l${this.tile.lanes}r${this.R}q${this.Q}i${this.I}h${this.held}`;
  }

  /** Index into an array of VT from an index in floats (a multiple of the width). */
  at(floatIndex: string): string {
    return this.W === 4 ? `(${floatIndex}) / 4u` : floatIndex;
  }

  private math(): string {
    const VT = this.VT;
    return /* wgsl */ `
fn sigm(x: ${VT}) -> ${VT} {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= ${VT}(0.0));
}
fn tanh_s(x: ${VT}) -> ${VT} { return tanh(clamp(x, ${VT}(-15.0), ${VT}(15.0))); }`;
  }

  /**
   * The kernel up to its first statement: uniforms and storage in binding order (and the gate
   * nonlinearities when `math`), then the entry point and each lane's units and rows.
   */
  entry(
    uniforms: { struct(): string },
    names: string[],
    bindings: ("read" | "write")[],
    math = false,
  ): string {
    return /* wgsl */ `
${uniforms.struct()}
${declareBuffers(names, bindings, this.VT)}
@group(0) @binding(${names.length}) var<uniform> u: U;${math ? `\n${this.math()}` : ""}

@compute @workgroup_size(${this.tile.lanes})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
${this.threadSetup()}`;
  }

  private threadSetup(): string {
    const W = this.W;
    return /* wgsl */ `
  let H = u.H;
  let GH = ${this.G}u * H;
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
  const e = new Emitter(cell, tile, fusedInputs, held);
  const { VT, W, R, Q, G, S, lstm, I, blocks } = e;
  const at = (i: string) => e.at(i);
  const acc = blocks.flatMap(([r, q]) => range(G).map((g) => `a${r}_${q}_${g}`));

  const recurrence = (src: string, base: (r: number) => string): string => {
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
              held
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
  // filled once per launch; both recurrences (over h_{s−1} and h0) read it, not the storage buffer.
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
    key: e.key,
    bindings,
    uniforms: RNN_FORWARD_UNIFORMS,
    code: () =>
      `${e.entry(RNN_FORWARD_UNIFORMS, names, bindings, true)}
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
${recurrence("hprev", (r) => `(b${r} * u.T + t) * H`)}
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
