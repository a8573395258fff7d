// TP5 Part 3: the LOP-120 generator (spec §3.4), the metrics (§3.6), the TAP / H-TAP models
// (§3.5: parameter counts, causality of the memory, free-running horizon, attention rows), the
// criteria table, and `labs/main.ts tp5 --part 3 --quick` end to end in a subprocess.
import assert from "node:assert/strict";
import * as path from "node:path";
import { runLab } from "./lab_runner.ts";
import { noGrad } from "../engine/autograd.ts";
import { Rng } from "../engine/random.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { concat, narrow, stack } from "../engine/ops/shape.ts";
import {
  APPEARANCE,
  CHANNELS,
  codebook,
  CONTENT,
  CONTEXT,
  FRAMES,
  generateLop120,
  HORIZON,
  LOP120_SIZES,
  nearestPrototype,
  STEP_INPUT,
} from "../labs/data/lop120.ts";
import {
  type AttentionMetrics,
  evaluateLop,
  type LopMetrics,
  reentryAttention,
} from "../labs/tp5/lop_metrics.ts";
import type { TapResult } from "../labs/tp5/lop_train.ts";
import { part3Checks, part3Config, type Part3Results } from "../labs/tp5/part3.ts";
import { summaryText } from "../labs/tp5.ts";
import { type MemoryKind, TapModel, WEIGHT_ROWS_FROM } from "../models/htap.ts";
import { FileStore } from "../tracking/file_store.ts";
import { setup } from "./helpers.ts";

Deno.test("LOP-120: timeline, gap ≥ 80, lure, flags, step arrays (spec §3.4)", () => {
  const d = generateLop120({ n: 300, seed: 7 });
  assert.equal(d.frames.length, 300 * FRAMES * CHANNELS);
  assert.deepEqual(generateLop120({ n: 300, seed: 7 }).frames, d.frames);
  assert.notDeepEqual(
    generateLop120({ n: 5, seed: 8 }).frames,
    generateLop120({ n: 5, seed: 7 }).frames,
  );
  const book = codebook();
  const at = (i: number, t: number, c: number) => d.frames[(i * FRAMES + t) * CHANNELS + c];
  let lures = 0;
  for (let i = 0; i < d.n; i++) {
    const s = d.sighting[i];
    assert.ok(s.length >= 4 && s.length <= 8 && s.start >= 0 && s.start + s.length <= 20);
    assert.ok(CONTEXT - (s.start + s.length) >= 80, "out of view for at least 80 frames");
    const l = d.lure[i];
    if (l) {
      lures++;
      assert.ok(l.start >= s.start + s.length + 5 && l.start + l.length <= CONTEXT - 6);
    }
    for (let t = 0; t < FRAMES; t++) {
      const target = (t >= s.start && t < s.start + s.length) || t >= CONTEXT;
      const lure = l !== null && t >= l.start && t < l.start + l.length;
      assert.equal(at(i, t, 14), target || lure ? 1 : 0);
      assert.equal(at(i, t, 15), target ? 1 : lure ? -1 : 0);
      if (!target && !lure) {
        for (let c = 0; c < APPEARANCE; c++) assert.equal(at(i, t, c), 0);
      }
    }
    // The target's appearance is its prototype plus small jitter, the same at re-entry.
    const seen = Array.from({ length: APPEARANCE }, (_, c) => at(i, s.start, c));
    assert.equal(nearestPrototype(book, seen), d.target[i]);
    const back = Array.from({ length: APPEARANCE }, (_, c) => at(i, CONTEXT + 5, c));
    assert.ok(seen.reduce((e, v, c) => e + (v - back[c]) ** 2, 0) / APPEARANCE < 0.05);
    if (l) {
      const lureSeen = Array.from({ length: APPEARANCE }, (_, c) => at(i, l.start, c));
      assert.notEqual(nearestPrototype(book, lureSeen), d.target[i]);
    }
  }
  assert.ok(lures > 250, `a lure fits in most sequences (${lures} of 300)`);
  // Step inputs: content_t, flags_t, flags_{t+1}; targets: content_{t+1}.
  for (const [i, t] of [[0, 0], [3, 57], [299, 99]]) {
    const x = d.contextInput.subarray(
      (i * CONTEXT + t) * STEP_INPUT,
      (i * CONTEXT + t + 1) * STEP_INPUT,
    );
    for (let c = 0; c < CONTENT; c++) assert.equal(x[c], at(i, t, c));
    assert.deepEqual([...x.subarray(CONTENT)], [
      at(i, t, 14),
      at(i, t, 15),
      at(i, t + 1, 14),
      at(i, t + 1, 15),
    ]);
    for (let c = 0; c < CONTENT; c++) {
      assert.equal(d.targets[(i * (FRAMES - 1) + t) * CONTENT + c], at(i, t + 1, c));
    }
  }
  assert.deepEqual([...d.horizonFlags.subarray(0, 4)], [1, 1, 1, 1]);
});

Deno.test("LOP-120: fixed gap and no lure (gap sweep)", () => {
  for (const gap of [10, 20, 40, 80]) {
    const d = generateLop120({ n: 50, seed: 3, gap, lure: false });
    for (let i = 0; i < d.n; i++) {
      assert.equal(CONTEXT - (d.sighting[i].start + d.sighting[i].length), gap);
      assert.equal(d.lure[i], null);
    }
  }
  assert.throws(() => generateLop120({ n: 5, seed: 1, gap: 95 }), /gap 95, expected/);
  assert.throws(() => generateLop120({ n: 0, seed: 1 }), /n 0, expected/);
});

Deno.test("LOP-120 metrics: perfect, zero and wrong-identity predictions", () => {
  const d = generateLop120({ n: 40, seed: 11 });
  const perfect = evaluateLop(d, d.targets.slice());
  for (const [k, v] of Object.entries(perfect.metrics)) {
    assert.equal(v, k === "id_acc" ? 1 : 0, k);
  }
  // Predicting zeros: appearance error = mean square of the true horizon appearance.
  const zero = evaluateLop(d, new Float32Array(d.targets.length));
  let sq = 0;
  for (let i = 0; i < d.n; i++) {
    for (let t = CONTEXT; t < FRAMES; t++) {
      for (let c = 0; c < APPEARANCE; c++) sq += d.frames[(i * FRAMES + t) * CHANNELS + c] ** 2;
    }
  }
  assert.ok(Math.abs(zero.metrics.mse_app_h - sq / (d.n * HORIZON * APPEARANCE)) < 1e-9);
  assert.equal(zero.horizonApp.length, HORIZON);
  // The lure's appearance in the horizon: identity wrong wherever the lure exists.
  const lured = d.targets.slice();
  const book = codebook();
  for (let i = 0; i < d.n; i++) {
    const other = (d.target[i] + 1) % 16;
    for (let f = CONTEXT; f < FRAMES; f++) {
      for (let c = 0; c < APPEARANCE; c++) {
        lured[(i * (FRAMES - 1) + f - 1) * CONTENT + c] = book[other * APPEARANCE + c];
      }
    }
  }
  assert.equal(evaluateLop(d, lured).metrics.id_acc, 0);
  // Attention: all mass on the sighting frames → key mass 1, lure 0; uniform → L/100.
  const onKey = new Float32Array(d.n * CONTEXT),
    uniform = new Float32Array(d.n * CONTEXT).fill(0.01);
  for (let i = 0; i < d.n; i++) {
    const s = d.sighting[i];
    for (let t = s.start; t < s.start + s.length; t++) onKey[i * CONTEXT + t] = 1 / s.length;
  }
  const focused = reentryAttention(d, onKey);
  assert.ok(Math.abs(focused.attn_key_mass - 1) < 1e-6 && focused.attn_lure_mass === 0);
  const flat = reentryAttention(d, uniform);
  assert.ok(Math.abs(flat.attn_entropy_norm - 1) < 1e-6);
  const meanLength = d.sighting.reduce((a, s) => a + s.length, 0) / d.n;
  assert.ok(Math.abs(flat.attn_key_mass - meanLength / 100) < 1e-6);
  assert.throws(() => evaluateLop(d, new Float32Array(5)), /5 predictions, expected/);
});

function model(memory: MemoryKind, units = 64, seed = 1) {
  return new TapModel({ sizes: LOP120_SIZES, units, memory, rng: new Rng(seed) });
}

Deno.test("TAP / H-TAP: parameter counts of spec §3.5", async () => {
  await setup();
  const count = (m: TapModel) => m.parameters().reduce((n, p) => n + p.size, 0);
  assert.equal(count(model("none")), 17_038);
  assert.equal(count(model("none", 128)), 58_638);
  assert.equal(count(model("full")), 33_966);
  assert.equal(count(model("fifo")), 33_966);
  // The bounded ablation has no query projection: −2 656 for W_q, +33 for w and b.
  assert.equal(count(model("bounded")), 31_343);
});

Deno.test("H-TAP: causal memory, free-running horizon, attention rows sum to 1", async () => {
  await setup();
  const B = 3;
  const d = generateLop120({ n: B, seed: 5 });
  for (const kind of ["full", "fifo", "bounded", "none"] as const) {
    const m = model(kind, 16, 2);
    const run = (context: Float32Array) =>
      noGrad(() =>
        tidy(() => {
          const r = m.rollout(
            Tensor.from(context, [B, CONTEXT, STEP_INPUT]),
            Tensor.from(d.horizonFlags, [B, HORIZON - 1, 4]),
            { weights: true },
          );
          return [r.predictions, r.contextWeights, ...(r.horizonWeights ?? [])].filter((t) =>
            t
          ) as Tensor[];
        })
      );
    const [pred, ctxW, ...stepW] = run(d.contextInput);
    const p = await pred.data() as Float32Array;
    assert.equal(pred.shape.join(), [B, FRAMES - 1, CONTENT].join());
    assert.ok(p.every(Number.isFinite));
    // Changing the input at step 60 leaves every earlier prediction unchanged (causal memory)
    // and changes later ones.
    const changed = d.contextInput.slice();
    for (let i = 0; i < B; i++) changed[(i * CONTEXT + 60) * STEP_INPUT] += 3;
    const [pred2, ...rest] = run(changed);
    const q = await pred2.data() as Float32Array;
    for (let i = 0; i < B; i++) {
      for (let f = 0; f < FRAMES - 1; f++) {
        const o = (i * (FRAMES - 1) + f) * CONTENT;
        const same = p.subarray(o, o + CONTENT).every((v, c) => v === q[o + c]);
        if (f < 60) assert.ok(same, `${kind}: prediction of frame ${f + 1} saw step 60`);
        if (f === 60) assert.ok(!same, `${kind}: step 60 did not reach its own prediction`);
      }
    }
    if (kind !== "none") {
      const w = await ctxW.data() as Float32Array;
      assert.equal(ctxW.shape.join(), [B, CONTEXT - WEIGHT_ROWS_FROM, CONTEXT].join());
      for (let r = 0; r < B * (CONTEXT - WEIGHT_ROWS_FROM); r++) {
        const row = w.subarray(r * CONTEXT, (r + 1) * CONTEXT);
        assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
        const t = WEIGHT_ROWS_FROM + (r % (CONTEXT - WEIGHT_ROWS_FROM));
        row.forEach((a, j) => {
          if (j > t) assert.equal(a, 0, "attention to a future frame");
          if (kind === "fifo" && j <= t - 10) assert.equal(a, 0, "FIFO-10 read past its window");
        });
      }
      assert.equal(stepW.length, HORIZON - 1);
      const last = await stepW.at(-1)!.data() as Float32Array;
      assert.equal(stepW.at(-1)!.shape.join(), [B, FRAMES - 1].join());
      for (let i = 0; i < B; i++) {
        const row = last.subarray(i * (FRAMES - 1), (i + 1) * (FRAMES - 1));
        assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
      }
    }
    for (const t of [pred, ctxW, ...stepW, pred2, ...rest]) t?.dispose();
    for (const t of m.parameters()) t.dispose();
  }
});

Deno.test("TAP: the horizon is generated from the model's own predictions", async () => {
  await setup();
  const B = 2;
  const d = generateLop120({ n: B, seed: 6 });
  const m = model("none", 16, 3);
  const [rolled, manual] = noGrad(() =>
    tidy(() => {
      const context = Tensor.from(d.contextInput, [B, CONTEXT, STEP_INPUT]);
      const flags = Tensor.from(d.horizonFlags, [B, HORIZON - 1, 4]);
      const predictions = m.rollout(context, flags).predictions;
      // By hand: frame 100 from the context's last state, fed back as content of step 100.
      const { h } = m.gru.run(context);
      const frame100 = m.out.forward(h);
      const x100 = concat([frame100, narrow(flags, 1, 0, 1).reshape([B, 4])], 1);
      const frame101 = m.out.forward(m.gru.step(x100, { h }).h);
      return [narrow(predictions, 1, CONTEXT - 1, 2), stack([frame100, frame101], 1)];
    })
  );
  const [a, b] = [await rolled.data(), await manual.data()];
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) < 1e-5, `element ${i}: ${v} vs ${b[i]}`));
  for (const t of [rolled, manual, ...m.parameters()]) t.dispose();
});

/** A trained-model result with the given test metrics (the rest neutral). */
function fakeResult(
  label: string,
  m: Partial<LopMetrics>,
  attention?: Partial<AttentionMetrics>,
): TapResult {
  const metrics: LopMetrics = {
    mse_app_h: 1,
    mse_app_k1: 1,
    id_acc: 0.07,
    mse_bg_h: 0.2,
    mse_bg_k1: 0.1,
    mse_bg_k20: 0.3,
    mse_bg_tf: 0.003,
    mae_h: 0.5,
    ...m,
  };
  const span = {
    attn_key_mass: 0.99,
    attn_lure_mass: 0.003,
    attn_entropy_norm: 0.33,
    attn_effective_span: 4,
    attn_span_count: 5,
    attn_mean_position: 10,
    attn_mean_lag: 89,
    attn_max_weight: 0.36,
    ...attention,
  };
  return {
    spec: { name: label, label, memory: "none", units: 64, seed: 0, epochs: 10 },
    params: 1,
    epochs: [],
    test: { metrics, horizonApp: [], horizonBg: [], attention: attention ? span : undefined },
    samples: { predictions: [] },
    trainSeconds: 100,
  };
}

Deno.test("Part 3 criteria: calibration-like results pass, each kind of miss fails its row", () => {
  const htap = (m: Partial<LopMetrics> = {}, a: Partial<AttentionMetrics> = {}) =>
    fakeResult("H-TAP", { mse_app_h: 0.004, mse_app_k1: 0.006, id_acc: 1, ...m }, a);
  const gru = () => fakeResult("GRU-64", { mse_app_h: 1.16 });
  const results = (over: Partial<Part3Results> = {}): Part3Results => ({
    config: part3Config({ quick: false }),
    seeds: 3,
    gru: [gru(), gru(), gru()],
    htap: [htap(), htap(), htap()],
    gru128: fakeResult("GRU-128", { mse_app_h: 1.17 }),
    fifo: fakeResult("FIFO-10", { mse_app_h: 1.16 }, { attn_key_mass: 0 }),
    bounded: fakeResult("bounded", { mse_app_h: 0.042, id_acc: 1 }, {
      attn_entropy_norm: 0.93,
      attn_max_weight: 0.052,
    }),
    gap: [10, 20, 40, 80].map((gap) => ({
      gap,
      gru: fakeResult("GRU-64", { id_acc: gap === 10 ? 1 : 0.07 }),
      htap: htap(),
    })),
    test: generateLop120({ n: 1, seed: 1 }),
    ...over,
  });
  const verdicts = (r: Part3Results) =>
    part3Checks(r).filter((c) => !c.informational).map((c) => c.pass);
  assert.deepEqual(verdicts(results()), [true, true, true, true, true, true, true]);
  // One seed over 0.02 fails consistency; a slow first re-entry frame fails criterion 3.
  assert.equal(verdicts(results({ htap: [htap(), htap({ mse_app_h: 0.03 }), htap()] }))[0], false);
  assert.equal(verdicts(results({ htap: [htap({ mse_app_k1: 0.07 }), htap(), htap()] }))[2], false);
  // Better local dynamics would not count: a 30 % background gap fails the control.
  assert.equal(
    verdicts(results({ htap: [1, 2, 3].map(() => htap({ mse_bg_h: 0.27 })) }))[3],
    false,
  );
  // Flat attention (seed 000's 0.01 bars) fails focus.
  const flat = { attn_key_mass: 0.06, attn_entropy_norm: 1, attn_max_weight: 0.01 };
  assert.equal(verdicts(results({ htap: [htap({}, flat), htap(), htap()] }))[4], false);
  // A GRU that learned gap 20 fails the sweep.
  const sweep = results().gap.map((g) =>
    g.gap === 20 ? { ...g, gru: fakeResult("GRU-64", { id_acc: 0.9 }) } : g
  );
  assert.equal(verdicts(results({ gap: sweep }))[6], false);
  const budget = part3Checks(results()).at(-1)!;
  assert.ok(budget.informational && budget.name.startsWith("8 budget"));
  // The per-model budget is for the 10-epoch protocol: a 40-epoch gap-sweep GRU is not "slowest".
  const longGap = results().gap.map((g) => ({ ...g, gru: { ...g.gru, trainSeconds: 900 } }));
  const slow = { ...fakeResult("GRU-128", { mse_app_h: 1.17 }), trainSeconds: 450 };
  const row = part3Checks(results({ gap: longGap, gru128: slow })).at(-1)!;
  assert.match(row.value, /^GRU-128 7:30/);
  assert.equal(row.pass, false);
});

Deno.test("tp5 summary: PASS/FAIL table and failure list", () => {
  const text = summaryText([{
    part: 3,
    title: "t",
    runIds: ["abc"],
    seconds: 61,
    checks: [
      { name: "ok check", value: "1", reference: "1", criterion: "≤ 2", pass: true },
      { name: "bad check", value: "3", reference: "1", criterion: "≤ 2", pass: false },
      {
        name: "gpu budget",
        value: "9",
        reference: "5",
        criterion: "≤ 5",
        pass: false,
        informational: true,
      },
    ],
  }], 61);
  assert.match(text, /ok check\s+1\s+1\s+≤ 2\s+PASS/);
  assert.match(text, /bad check\s+3\s+1\s+≤ 2\s+FAIL/);
  assert.match(text, /gpu budget\s+9\s+5\s+≤ 5\s+INFO/);
  assert.match(text, /1 check\(s\) FAILED: bad check\n/);
  assert.match(text, /1:01 in all/);
});

Deno.test("tp5 --part 3 --quick: every model's run, the summary run's figures and report", async () => {
  const tmp = await Deno.makeTempDir();
  const mlruns = path.join(tmp, "mlruns");
  // Part 3 checkpoints every model: into the test's folder, not the repository's checkpoints/.
  const ckpt = ["--checkpoint-dir", path.join(tmp, "checkpoints")];
  const out = await runLab(["tp5", "--part", "3", "--quick", ...ckpt], mlruns);
  const stdout = out.stdout;
  assert.equal(out.code, 0, out.stderr + stdout);
  assert.match(stdout, /all 4 checks passed/);
  const store = new FileStore(mlruns);
  const experiment = await store.getExperimentByName("TP5_Part3_HTAP");
  assert.ok(experiment);
  const runs = await store.searchRuns({ experimentIds: [experiment.experimentId] });
  const names = runs.map((r) => r.info.runName).sort();
  assert.deepEqual(names, [
    "Bounded_seed0",
    "FIFO10_seed0",
    "GRU128_seed0",
    "GRU64_seed0",
    "Gap10_GRU64",
    "Gap10_HTAP",
    "HTAP_seed0",
    "LOP120_summary",
  ]);
  for (const run of runs) {
    assert.equal(run.info.status, "FINISHED", run.info.runName);
    assert.deepEqual(run.warnings, []);
  }
  const htap = runs.find((r) => r.info.runName === "HTAP_seed0")!;
  assert.equal(htap.params.memory, "full");
  assert.equal(htap.params.batch_size, "64");
  for (
    const key of ["mse_app_h", "id_acc", "mse_bg_tf", "attn_key_mass", "attn_entropy_norm", "loss"]
  ) {
    assert.ok(Number.isFinite(htap.metrics[key]?.at(-1)?.value), key);
  }
  assert.equal(htap.metrics.test_mse_app_by_step.length, HORIZON);
  assert.ok(
    (await store.readArtifact(htap.info.runId, "model/weights.safetensors")).length > 33_966 * 4,
  );
  const summary = runs.find((r) => r.info.runName === "LOP120_summary")!;
  for (
    const fig of [
      "attention_reentry",
      "attention_heatmap",
      "rollout",
      "horizon_error",
      "summary",
      "gap_sweep",
      "training_curves",
    ]
  ) {
    const png = await store.readArtifact(summary.info.runId, `p3_${fig}.png`);
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], fig);
    const raw = JSON.parse(
      new TextDecoder().decode(await store.readArtifact(summary.info.runId, `p3_${fig}.json`)),
    );
    assert.ok(raw && typeof raw === "object", fig);
  }
  const reentry = JSON.parse(
    new TextDecoder().decode(
      await store.readArtifact(summary.info.runId, "p3_attention_reentry.json"),
    ),
  );
  for (const row of reentry.htap as number[][]) {
    assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  }
  const report = new TextDecoder().decode(
    await store.readArtifact(summary.info.runId, "report.md"),
  );
  for (
    const section of [
      "## Abstract",
      "## 3. Method",
      "## 4. Results",
      "## 7. Limitations",
      "## References",
    ]
  ) {
    assert.ok(report.includes(section), section);
  }
  assert.match(report, /QUICK MODE/);
  assert.match(report, /2102\.05095/);
  assert.match(report, /!\[P3-a attention at re-entry\]\(p3_attention_reentry\.png\)/);
  const checks = JSON.parse(
    new TextDecoder().decode(await store.readArtifact(summary.info.runId, "checks.json")),
  );
  assert.equal(checks.length, 4);
  await Deno.remove(tmp, { recursive: true });
});
