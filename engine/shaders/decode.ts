// Free-running decoder kernels: a GRU cell whose prediction is fed back as the next step's
// input, optionally reading an episodic memory of every past step (causal scaled dot-product
// attention over keys/values, the step's own key appended) through a gated read-out:
//   x_s = [content_{s-1}; flags_s],  h_s = GRU(x_s, h_{s-1})                  (Keras reset_after)
//   memory:  k_s = x_s·W_k + kb_s,  v_s = x_s·W_v + b_v,  q_s = [h_s; x_s]·W_q + b_q
//            p = softmax_j(q_s·k_j · scale) over the visible j ≤ M + s,  c_s = Σ_j p_j v_j
//            g = σ([h_s; c_s]·W_g + b_g),  u = tanh(c_s·W_c + b_c),  ŷ_s = [h_s; g ⊙ u]·W_o + b_o
//   no memory: ŷ_s = h_s·W_o + b_o;        content_s = ŷ_s.
// Every batch row is independent, so ONE dispatch runs all S steps: a workgroup owns `R` rows
// and loops over the steps with barriers between phases (forward), or over the steps in reverse
// (backward). The backward kernel writes each step's pre-activation gradients to planes
// [B·S, n] so that every weight gradient is one matmul over all rows and steps afterwards
// (backward in shaders/decode_backward.ts, building blocks in shaders/decode_wgsl.ts).
//
// On lavapipe every load costs ~12 ns per 8-lane vector, the same for storage, uniform and
// workgroup memory and whether or not the lanes share the address, against ~1 ns for a vec4
// multiply-add: so rows are unrolled into named registers (each weight load serves R rows),
// inputs and weights are read four depths a trip as vec4, and the planes are written as vec4.
import type { KernelSpec } from "../runtime.ts";
import { tunable } from "../tuning.ts";
import { type DecodeDims, forwardShared, savedLayout } from "./decode_layout.ts";
import {
  at4,
  columnProducts,
  common,
  declareShared,
  DECODE_UNIFORMS,
  decodeKey,
  entry,
  inputRow,
  keyBlockDots,
  type PlaneAt,
  planes,
  range4,
  rows,
  storeKeys,
  XYZW,
} from "./decode_wgsl.ts";

/**
 * `rows`: batch rows per workgroup at most (each weight load serves this many rows; fewer where
 * their workgroup memory would not fit). `lanes`: invocations per workgroup, at least (more where
 * the kernels' loops would pass the adapter's loop budget, see decodeLoopIterations in
 * decode_layout.ts: a table whose loops passed llvmpipe's 65,535 iterations once computed
 * garbage, tests/loop_budget.test.ts). On lavapipe one SIMD row of 8 lanes and 8 rows ran the
 * LOP-120 shape's forward + backward in 36.9 ms (fastest of 8 interleaved rounds) against 39.2 at
 * 4 × 8 and 44.9 at 4 × 64, and in another run 40.1 against 41.6 at 8 × 16 and 42.9 at 8 × 32:
 * a workgroup of one SIMD row does not switch between SIMD rows at each barrier. GPUs keep many
 * lanes.
 */
export const DECODE_TUNING = tunable("decode", {
  cpu: { rows: 8, lanes: 8 },
  // Mesa's GLSL compiler took 200 s to build the 8-row kernels at the LOP-120 shape (first
  // forward + backward, shader cache off), 57 s for 4 rows (83 s for the earlier 4 × 64 layout);
  // 4 rows run that shape about 6 % slower on llvmpipe GL (39.3 against 37.0 ms).
  "cpu-gl": { rows: 4, lanes: 8 },
  gpu: { rows: 4, lanes: 64 },
});

/**
 * Saves the input of a linear layer on [h_s; second] (or h_s alone) as plane `name`, a vec4 at a
 * time: `second` is its width in vec4 and the expression of vec4 j − H4 of row r.
 */
function saveAfterH(
  p4: PlaneAt,
  name: string,
  second: [width4: string, at: string] | null,
): string {
  const width = second ? `(H4 + ${second[0]})` : "H4";
  const at = p4(name, "b * S + s", "j");
  return `    for (var i = l; i < R * ${width}; i += WGN) {
      let r = i / ${width};
      let j = i % ${width};
      let b = b0 + r;
      if (b < B) {
        ${
    second
      ? `if (j < H4) { ${at} = hn[r * H4 + j]; } else { ${at} = ${second[1]}; }`
      : `${at} = hn[r * H4 + j];`
  }
      }
    }`;
}

export function decodeForwardKernel(d: DecodeDims): KernelSpec<typeof DECODE_UNIFORMS.fields> {
  const mem = d.keyDim > 0;
  const { at: p, vec: p4 } = planes(savedLayout(d).at, "saved");
  const xRow = (k: string) => inputRow(d, k);
  const code = () => `
${
    common(d, [
      "var<storage, read> w: array<vec4f>",
      "var<storage, read> state0: array<f32>", // h0 [B, H], then content0 [B, C]
      "var<storage, read> flags: array<f32>", // [B, S, F]
      "var<storage, read> keys: array<vec4f>", // [B, M, K]
      "var<storage, read> vals: array<vec4f>", // [B, M, K]
      "var<storage, read_write> pred: array<f32>", // [B, S, C]
      "var<storage, read_write> saved: array<vec4f>",
      // Every key and value, [B, M + S, 2, K]: the context's, then each decoded step's.
      "var<storage, read_write> kv: array<vec4f>",
    ])
  }
const F = ${d.flags}u;
${declareShared(forwardShared(d))}

${entry(d)}
  // The step input x = [content; flags] sits in xs zero-padded to I4 vec4 a row.
  for (var i = l; i < R * H; i += WGN) {
    let b = b0 + i / H;
    ${at4("hs", "H4", "i / H", "i % H")} = select(0.0, state0[min(b, B - 1u) * H + i % H], b < B);
  }
  for (var i = l; i < R * C; i += WGN) {
    let b = b0 + i / C;
    ${
    at4("xs", "I4", "i / C", "i % C")
  } = select(0.0, state0[B * H + min(b, B - 1u) * C + i % C], b < B);
  }
${
    mem
      ? `  // The context's keys and values into kv (the first step's scores read them after a barrier).
  for (var i = l; i < R * M * K4; i += WGN) {
    let b = b0 + i / (M * K4);
    let j = (i / K4) % M;
    let c = i % K4;
    if (b < B) {
      kv[key_at(b, j) + c] = keys[(b * M + j) * K4 + c];
      kv[key_at(b, j) + K4 + c] = vals[(b * M + j) * K4 + c];
    }
  }`
      : ""
  }
  for (var s = 0u; s < S; s++) {
    for (var i = l; i < R * F; i += WGN) {
      let b = b0 + i / F;
      ${
    at4("xs", "I4", "i / F", "C + i % F")
  } = select(0.0, flags[(min(b, B - 1u) * S + s) * F + i % F], b < B);
    }
    workgroupBarrier();
    for (var i = l; i < R * I; i += WGN) {
      let b = b0 + i / I;
      if (b < B) { ${p("x", "b * S + s", "i % I")} = ${at4("xs", "I4", "i / I", "i % I")}; }
    }
    for (var i = l; i < R * H4; i += WGN) {
      let b = b0 + i / H4;
      if (b < B) { ${p4("hprev", "b * S + s", "i % H4")} = hs[i]; }
    }
    // GRU cell: units o … o+3 of every row.
    for (var o4 = l; o4 < H4; o4 += WGN) {
      let o = 4u * o4;
${
    rows(
      d,
      (r) =>
        `      var xz${r} = w4(W_gruBias + o); var xr${r} = w4(W_gruBias + H + o); var xn${r} = w4(W_gruBias + 2u * H + o);
      var hz${r} = w4(W_gruBias + 3u * H + o); var hr${r} = w4(W_gruBias + 4u * H + o); var hh${r} = w4(W_gruBias + 5u * H + o);`,
    )
  }
${
    columnProducts(d, "nI4", (r) => `xs[${r}u * I4 + k4]`, [
      ["xz", (k) => `W_kernel + ${xRow(k)} * 3u * H + o`],
      ["xr", (k) => `W_kernel + ${xRow(k)} * 3u * H + H + o`],
      ["xn", (k) => `W_kernel + ${xRow(k)} * 3u * H + 2u * H + o`],
    ])
  }
${
    columnProducts(d, "nH4", (r) => `hs[${r}u * H4 + k4]`, [
      ["hz", (k) => `W_recurrent + ${k} * 3u * H + o`],
      ["hr", (k) => `W_recurrent + ${k} * 3u * H + H + o`],
      ["hh", (k) => `W_recurrent + ${k} * 3u * H + 2u * H + o`],
    ])
  }
${
    rows(d, (r) =>
      `      {
        let z = sigm4(xz${r} + hz${r});
        let rg = sigm4(xr${r} + hr${r});
        let n = tanh4(xn${r} + rg * hh${r});
        let h = z * hs[${r}u * H4 + o4] + (1.0 - z) * n;
        hn[${r}u * H4 + o4] = h;
        let b = b0 + ${r}u;
        if (b < B) {
          ${p4("gates", "b * S + s", "o4")} = z;
          ${p4("gates", "b * S + s", "H4 + o4")} = rg;
          ${p4("gates", "b * S + s", "2u * H4 + o4")} = n;
          ${p4("gates", "b * S + s", "3u * H4 + o4")} = hh${r};
        }
      }`)
  }
    }
    workgroupBarrier();
${mem ? forwardMemory(d, p, p4) : ""}
    // Read-out: ŷ = [h; g ⊙ u]·W_o + b_o (h·W_o + b_o without memory), fed back as content;
    // outputs o … o+3 a lane (W_o's rows are padded to CP columns).
    for (var o4 = l; o4 < C4; o4 += WGN) {
      let o = 4u * o4;
${rows(d, (r) => `      var y${r} = w4(W_outBias + o);`)}
${
    columnProducts(d, "nH4", (r) => `hn[${r}u * H4 + k4]`, [["y", (k) =>
      `W_outWeight + ${k} * CP + o`]])
  }
${
    mem
      ? columnProducts(d, "nH4", (r) => `gs[${r}u * H4 + k4]`, [
        ["y", (k) => `W_outWeight + (H + ${k}) * CP + o`],
      ])
      : ""
  }
${
    rows(d, (r) =>
      `      {
        let b = b0 + ${r}u;
${
        range4.map((e) =>
          `        if (o + ${e}u < C) {
          ${at4("xs", "I4", `${r}u`, `o + ${e}u`)} = y${r}.${XYZW[e]};
          if (b < B) { pred[(b * S + s) * C + o + ${e}u] = y${r}.${XYZW[e]}; }
        }`
        ).join("\n")
      }
      }`)
  }
    }
${saveAfterH(p4, "outIn", mem ? ["H4", "gs[r * H4 + j - H4]"] : null)}
    workgroupBarrier();
    for (var i = l; i < R * H4; i += WGN) { hs[i] = hn[i]; }
  }
}`;
  return {
    name: "decode_fwd",
    key: decodeKey(d),
    bindings: ["read", "read", "read", "read", "read", "write", "write", "write"],
    uniforms: DECODE_UNIFORMS,
    code,
  };
}

/** The memory phases of a forward step: key/value/query, scores, softmax, context, gate. */
function forwardMemory(d: DecodeDims, p: PlaneAt, p4: PlaneAt): string {
  const xRow = (k: string) => inputRow(d, k);
  return `
    // The step's key, value and query.
    for (var o4 = l; o4 < K4; o4 += WGN) {
      let o = 4u * o4;
${
    rows(
      d,
      (r) =>
        `      var key${r} = w4(W_keyBias + s * K + o); var val${r} = w4(W_valueBias + o); var qry${r} = w4(W_queryBias + o);`,
    )
  }
${
    columnProducts(d, "nI4", (r) => `xs[${r}u * I4 + k4]`, [
      ["key", (k) => `W_keyWeight + ${xRow(k)} * K + o`],
      ["val", (k) => `W_valueWeight + ${xRow(k)} * K + o`],
      ["qry", (k) => `W_queryWeight + (H + ${xRow(k)}) * K + o`],
    ])
  }
${
    columnProducts(d, "nH4", (r) => `hn[${r}u * H4 + k4]`, [
      ["qry", (k) => `W_queryWeight + ${k} * K + o`],
    ])
  }
${
    rows(d, (r) =>
      `      {
        let b = b0 + ${r}u;
        qs[${r}u * K4 + o4] = qry${r};
        if (b < B) {
          kv[key_at(b, M + s) + o4] = key${r};
          kv[key_at(b, M + s) + K4 + o4] = val${r};
          ${p4("query", "b * S + s", "o4")} = qry${r};
        }
      }`)
  }
    }
    for (var i = l; i < R * (H + I); i += WGN) {
      let r = i / (H + I);
      let j = i % (H + I);
      let b = b0 + r;
      if (b < B) {
        ${p("queryIn", "b * S + s", "j")} = select(${at4("xs", "I4", "r", "max(j, H) - H")}, ${
    at4("hn", "H4", "r", "min(j, H - 1u)")
  }, j < H);
      }
    }
    storageBarrier();
    workgroupBarrier();
    // Scores of the visible keys, four a lane.
${keyBlockDots("qs", "", "sc[r * T4 + jb] = e * scale;")}
    workgroupBarrier();
    for (var r = l; r < R; r += WGN) {
      var mx = vec4f(-3.0e38);
      for (var jb = jb0; jb < jb1; jb++) {
        mx = max(mx, select(vec4f(-3.0e38), sc[r * T4 + jb], visible4(jb, j0, t)));
      }
      let m = max(max(mx.x, mx.y), max(mx.z, mx.w));
      var total = vec4f(0.0);
      for (var jb = jb0; jb < jb1; jb++) {
        total += select(vec4f(0.0), exp(sc[r * T4 + jb] - m), visible4(jb, j0, t));
      }
      stat[2u * r] = m;
      stat[2u * r + 1u] = dot(total, vec4f(1.0));
    }
    workgroupBarrier();
    for (var i = l; i < R * T4; i += WGN) {
      let r = i / T4;
      let jb = i % T4;
      let pj = select(vec4f(0.0), exp(sc[i] - stat[2u * r]) / stat[2u * r + 1u], visible4(jb, j0, t));
      sc[i] = pj;
      let b = b0 + r;
      if (b < B) {
${storeKeys(p, "probs", "pj")}
      }
    }
    workgroupBarrier();
    // The context: four keys' values a trip (weights outside j0 … t are 0, their rows clamped).
    for (var i = l; i < R * K4; i += WGN) {
      let r = i / K4;
      let c = i % K4;
      let b = min(b0 + r, B - 1u);
      var acc = vec4f(0.0);
      for (var jb = jb0; jb < jb1; jb++) {
        let pj = sc[r * T4 + jb];
        acc += ${
    range4.map((e) => `pj.${XYZW[e]} * kv[key_at(b, min(4u * jb + ${e}u, t)) + K4 + c]`).join(
      " +\n          ",
    )
  };
      }
      cs[i] = acc;
      if (b0 + r < B) { ${p4("context", "b * S + s", "c")} = acc; }
    }
    workgroupBarrier();
    // Gate and transformed context: g = σ([h; c]·W_g + b_g), u = tanh(c·W_c + b_c).
    for (var o4 = l; o4 < H4; o4 += WGN) {
      let o = 4u * o4;
${rows(d, (r) => `      var g${r} = w4(W_gateBias + o); var a${r} = w4(W_contextBias + o);`)}
${
    columnProducts(d, "nH4", (r) => `hn[${r}u * H4 + k4]`, [
      ["g", (k) => `W_gateWeight + ${k} * H + o`],
    ])
  }
${
    columnProducts(d, "nK4", (r) => `cs[${r}u * K4 + k4]`, [
      ["g", (k) => `W_gateWeight + (H + ${k}) * H + o`],
      ["a", (k) => `W_contextWeight + ${k} * H + o`],
    ])
  }
${
    rows(d, (r) =>
      `      {
        let g = sigm4(g${r});
        let a = tanh4(a${r});
        gs[${r}u * H4 + o4] = g * a;
        let b = b0 + ${r}u;
        if (b < B) {
          ${p4("gateAct", "b * S + s", "o4")} = g;
          ${p4("gateAct", "b * S + s", "H4 + o4")} = a;
        }
      }`)
  }
    }
${saveAfterH(p4, "gateIn", ["K4", "cs[r * K4 + j - H4]"])}
    workgroupBarrier();`;
}
