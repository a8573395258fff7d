// GRU / LSTM backward-through-time kernel (the forward and the shared emitter: rnn.ts).
import type { KernelSpec } from "../runtime.ts";
import { uniformBlock } from "../uniforms.ts";
import { range } from "./common.ts";
import { Emitter } from "./rnn.ts";
import type { RnnCell, RnnTile } from "./rnn_plan.ts";

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
  const e = new Emitter(cell, tile, fusedInputs, held);
  const { VT, W, R, Q, G, S, lstm, I, blocks } = e;
  const at = (i: string) => e.at(i);
  const recurrentGrad = lstm ? "dg" : "dhp";

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
    key: e.key,
    bindings,
    uniforms: RNN_BACKWARD_UNIFORMS,
    code: () =>
      `${e.entry(RNN_BACKWARD_UNIFORMS, names, bindings)}
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
