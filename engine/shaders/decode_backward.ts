// The fused decoder's backward kernel (equations and layout in shaders/decode.ts): the steps in
// reverse, each step's pre-activation gradients written to planes for the weight-gradient
// matmuls after it, and dh, dx carried to the step before.
import type { KernelSpec } from "../runtime.ts";
import { backwardShared, type DecodeDims, gradLayout, savedLayout } from "./decode_layout.ts";
import {
  at4,
  common,
  declareShared,
  DECODE_UNIFORMS,
  decodeKey,
  entry,
  inputRow,
  keyBlockDots,
  loadKeys,
  type PlaneAt,
  planes,
  range4,
  rowAccumulators,
  rowProducts,
  rows,
  rowSums,
  storeKeys,
  XYZW,
} from "./decode_wgsl.ts";

export function decodeBackwardKernel(d: DecodeDims): KernelSpec<typeof DECODE_UNIFORMS.fields> {
  const mem = d.keyDim > 0;
  const { at: p, vec: p4 } = planes(savedLayout(d).at, "saved");
  const { at: g, vec: g4 } = planes(gradLayout(d).at, "grads");
  const xRow = (k: string) => inputRow(d, k);
  const code = () => `
${
    common(d, [
      "var<storage, read> w: array<vec4f>",
      "var<storage, read> dpred: array<f32>", // [B, S, C]
      "var<storage, read> saved: array<vec4f>",
      "var<storage, read> kv: array<vec4f>", // [B, M + S, 2, K], as the forward left it
      "var<storage, read_write> grads: array<vec4f>",
      "var<storage, read_write> dstate: array<f32>", // dh0 [B, H], then dcontent0 [B, C]
    ])
  }
${declareShared(backwardShared(d))}

${entry(d)}
  for (var step = 0u; step < S; step++) {
    let s = S - 1u - step;
    // dŷ_s: the loss gradient plus what step s + 1 sent back through its input content.
    for (var i = l; i < R * C; i += WGN) {
      let b = b0 + i / C;
      var dy = dxc[i];
      if (b < B) {
        dy += dpred[(b * S + s) * C + i % C];
        ${g("dOut", "b * S + s", "i % C")} = dy;
      }
      ${at4("dos", "C4", "i / C", "i % C")} = dy;
    }
    workgroupBarrier();
    // Through W_o, four of its rows a lane: dh_s += dŷ·W_oᵀ[:H]; the gated half feeds the gate
    // and context gradients.
    for (var i4 = l; i4 < ${mem ? "2u * H4" : "H4"}; i4 += WGN) {
      let i = 4u * i4;
${rowAccumulators(d)}
${
    rowProducts(d, "nC4", [[
      (e) => `W_outWeight + (i + ${e}u) * CP + 4u * c4`,
      (r) => `dos[${r}u * C4 + c4]`,
    ]])
  }
${
    rows(d, (r) =>
      `      {
        let a = ${rowSums(r)};
        if (i4 < H4) {
          dhn[${r}u * H4 + i4] = dh[${r}u * H4 + i4] + a;
        }${
        mem
          ? ` else {
          let b = min(b0 + ${r}u, B - 1u);
          let gt = ${p4("gateAct", "b * S + s", "i4 - H4")};
          let ct = ${p4("gateAct", "b * S + s", "i4")};
          let dg = a * ct * gt * (1.0 - gt);
          let dc = a * gt * (1.0 - ct * ct);
          dgp[${r}u * H4 + i4 - H4] = dg;
          dup[${r}u * H4 + i4 - H4] = dc;
          if (b0 + ${r}u < B) {
            ${g4("dGate", "b * S + s", "i4 - H4")} = dg;
            ${g4("dContext", "b * S + s", "i4 - H4")} = dc;
          }
        }`
          : ""
      }
      }`)
  }
    }
    workgroupBarrier();
${mem ? backwardMemory(d, p, g, p4, g4) : ""}
    // GRU cell: pre-activation gradients of the input and recurrent projections, units o … o+3.
    for (var o4 = l; o4 < H4; o4 += WGN) {
${
    rows(d, (r) =>
      `      {
        let b = min(b0 + ${r}u, B - 1u);
        let d = dhn[${r}u * H4 + o4];
        let z = ${p4("gates", "b * S + s", "o4")};
        let rg = ${p4("gates", "b * S + s", "H4 + o4")};
        let n = ${p4("gates", "b * S + s", "2u * H4 + o4")};
        let hh = ${p4("gates", "b * S + s", "3u * H4 + o4")};
        let hp = ${p4("hprev", "b * S + s", "o4")};
        let dn = d * (1.0 - z) * (1.0 - n * n);
        let dz = d * (hp - n) * z * (1.0 - z);
        let dr = dn * hh * rg * (1.0 - rg);
        let q = ${r}u * 3u * H4 + o4;
        dgx[q] = dz;
        dgx[q + H4] = dr;
        dgx[q + 2u * H4] = dn;
        dgh[q] = dz;
        dgh[q + H4] = dr;
        dgh[q + 2u * H4] = dn * rg;
        dh[${r}u * H4 + o4] = d * z;
        if (b0 + ${r}u < B) {
          ${g4("dKernel", "b * S + s", "o4")} = dz;
          ${g4("dKernel", "b * S + s", "H4 + o4")} = dr;
          ${g4("dKernel", "b * S + s", "2u * H4 + o4")} = dn;
          ${g4("dRecurrent", "b * S + s", "o4")} = dz;
          ${g4("dRecurrent", "b * S + s", "H4 + o4")} = dr;
          ${g4("dRecurrent", "b * S + s", "2u * H4 + o4")} = dn * rg;
        }
      }`)
  }
    }
    workgroupBarrier();
    // dh_{s-1} = dh·z + dĝ_h·Uᵀ; dx_s += dĝ_x·W_xᵀ: four rows of U or W_x a lane.
    for (var i4 = l; i4 < H4 + I4; i4 += WGN) {
${rowAccumulators(d)}
      if (i4 < H4) {
        let i = 4u * i4;
${
    rowProducts(d, "n3H4", [[
      (e) => `W_recurrent + (i + ${e}u) * 3u * H + 4u * c4`,
      (r) => `dgh[${r}u * 3u * H4 + c4]`,
    ]])
  }
${rows(d, (r) => `        dh[${r}u * H4 + i4] += ${rowSums(r)};`)}
      } else {
        let k = 4u * (i4 - H4);
${
    rowProducts(d, "n3H4", [[
      (e) => `W_kernel + ${xRow(`k + ${e}u`)} * 3u * H + 4u * c4`,
      (r) => `dgx[${r}u * 3u * H4 + c4]`,
    ]])
  }
${
    rows(d, (r) =>
      `        { let v = ${rowSums(r)}; ${
        range4.map((e) =>
          `if (k + ${e}u < I) { dxs[${r}u * I + k + ${e}u] ${mem ? "+=" : "="} v.${XYZW[e]}; }`
        ).join(" ")
      } }`)
  }
      }
    }
    workgroupBarrier();
    for (var i = l; i < R * C; i += WGN) { dxc[i] = dxs[(i / C) * I + i % C]; }
    workgroupBarrier();
  }
  for (var i = l; i < R * (H + C); i += WGN) {
    let r = i / (H + C);
    let j = i % (H + C);
    let b = b0 + r;
    if (b < B) {
      if (j < H) { dstate[b * H + j] = ${
    at4("dh", "H4", "r", "j")
  }; } else { dstate[B * H + b * C + j - H] = dxc[r * C + j - H]; }
    }
  }
}`;
  return {
    name: "decode_bwd",
    key: decodeKey(d),
    bindings: ["read", "read", "read", "read", "write", "write"],
    uniforms: DECODE_UNIFORMS,
    code,
  };
}

/** The memory phases of a backward step: gate and context, attention, key/value/query. */
function backwardMemory(d: DecodeDims, p: PlaneAt, g: PlaneAt, p4: PlaneAt, g4: PlaneAt): string {
  const xRow = (k: string) => inputRow(d, k);
  return `
    // Through the gate and the context transform, four rows of W_g (and W_c) a lane: dh_s, dc_s.
    for (var i4 = l; i4 < H4 + K4; i4 += WGN) {
      let i = 4u * i4;
${rowAccumulators(d)}
${
    rowProducts(d, "nH4", [[
      (e) => `W_gateWeight + (i + ${e}u) * H + 4u * c4`,
      (r) => `dgp[${r}u * H4 + c4]`,
    ]])
  }
      if (i4 < H4) {
${rows(d, (r) => `        dhn[${r}u * H4 + i4] += ${rowSums(r)};`)}
      } else {
        let c = i - H;
${
    rowProducts(d, "nH4", [[
      (e) => `W_contextWeight + (c + ${e}u) * H + 4u * c4`,
      (r) => `dup[${r}u * H4 + c4]`,
    ]])
  }
${rows(d, (r) => `        dcs[${r}u * K4 + i4 - H4] = ${rowSums(r)};`)}
      }
    }
    workgroupBarrier();
    // Attention: dp_j = dc·v_j, ds_j = p_j (dp_j − Σ p·dp), four keys a lane or trip as in the
    // forward (weights outside j0 … t are 0).
${keyBlockDots("dcs", " + K4", "ds[r * T4 + jb] = e;")}
    workgroupBarrier();
    for (var r = l; r < R; r += WGN) {
      let b = min(b0 + r, B - 1u);
      var total = vec4f(0.0);
      for (var jb = jb0; jb < jb1; jb++) {
        let pj = ${loadKeys(p, "probs", "b * S + s")};
        total += select(vec4f(0.0), pj * ds[r * T4 + jb], visible4(jb, j0, t));
      }
      stat[r] = dot(total, vec4f(1.0));
    }
    workgroupBarrier();
    // Scaled score gradients and dc are saved: the context keys' and values' gradients are
    // batched matmuls after the kernel; the decoded steps' own ones are summed here.
    for (var i = l; i < R * T4; i += WGN) {
      let r = i / T4;
      let jb = i % T4;
      let b = b0 + r;
      let pj = ${loadKeys(p, "probs", "min(b, B - 1u) * S + s")};
      let e = select(vec4f(0.0), pj * (ds[i] - stat[r]) * scale, visible4(jb, j0, t));
      ds[i] = e;
      if (b < B) {
${storeKeys(g, "dScore", "e")}
      }
    }
    for (var i = l; i < R * K4; i += WGN) {
      let b = b0 + i / K4;
      if (b < B) { ${g4("dRead", "b * S + s", "i % K4")} = dcs[i]; }
    }
    storageBarrier();
    workgroupBarrier();
    // dq = Σ ds_j k_j; the step's own key and value: dk_s = Σ_{s' ≥ s} ds_{s', t} q_{s'},
    // dv_s = Σ_{s' ≥ s} p_{s', t} dc_{s'} (later queries are done: the loop runs backwards).
    for (var i = l; i < R * K4; i += WGN) {
      let r = i / K4;
      let c = i % K4;
      let b = b0 + r;
      var dq = vec4f(0.0);
      var dk = vec4f(0.0);
      var dv = vec4f(0.0);
      if (b < B) {
        for (var jb = jb0; jb < jb1; jb++) {
          let e = ds[r * T4 + jb];
          dq += ${
    range4.map((e) => `e.${XYZW[e]} * kv[key_at(b, min(4u * jb + ${e}u, t)) + c]`).join(
      " +\n            ",
    )
  };
        }
        for (var s2 = s; s2 < S; s2++) {
          dk += ${g("dScore", "b * S + s2", "t")} * ${p4("query", "b * S + s2", "c")};
          dv += ${p("probs", "b * S + s2", "t")} * ${g4("dRead", "b * S + s2", "c")};
        }
        ${g4("dQuery", "b * S + s", "c")} = dq;
        ${g4("dKey", "b * S + s", "c")} = dk;
        ${g4("dValue", "b * S + s", "c")} = dv;
      }
      dqs[i] = dq;
      dks[i] = dk;
      dvs[i] = dv;
    }
    storageBarrier();
    workgroupBarrier();
    // Through W_q (h and x), and the step's own key and value projections (x): four rows a lane.
    for (var i4 = l; i4 < H4 + I4; i4 += WGN) {
${rowAccumulators(d)}
      if (i4 < H4) {
        let i = 4u * i4;
${
    rowProducts(d, "nK4", [[
      (e) => `W_queryWeight + (i + ${e}u) * K + 4u * c4`,
      (r) => `dqs[${r}u * K4 + c4]`,
    ]])
  }
${rows(d, (r) => `        dhn[${r}u * H4 + i4] += ${rowSums(r)};`)}
      } else {
        let k = 4u * (i4 - H4);
${
    rowProducts(d, "nK4", [
      [(e) => `W_queryWeight + (H + ${xRow(`k + ${e}u`)}) * K + 4u * c4`, (r) =>
        `dqs[${r}u * K4 + c4]`],
      [(e) =>
        `W_keyWeight + ${xRow(`k + ${e}u`)} * K + 4u * c4`, (r) => `dks[${r}u * K4 + c4]`],
      [(e) => `W_valueWeight + ${xRow(`k + ${e}u`)} * K + 4u * c4`, (r) => `dvs[${r}u * K4 + c4]`],
    ])
  }
${
    rows(d, (r) =>
      `        { let v = ${rowSums(r)}; ${
        range4.map((e) =>
          `if (k + ${e}u < I) { dxs[${r}u * I + k + ${e}u] = v.${XYZW[e]}; }`
        )
          .join(" ")
      } }`)
  }
      }
    }
    workgroupBarrier();`;
}
