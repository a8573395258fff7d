// Benchmark reporting: the work each kernel declares, the roofline share, the joined rows, the
// comparison table, and one real run of the runner on a tiny bench (figures not asserted).
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  adamWork,
  copyWork,
  denseStepWork,
  elementwiseWork,
  fmaWork,
  matmulWork,
  reduceWork,
  softmaxCrossEntropyWork,
} from "../bench/lib/work.ts";
import {
  type BenchRecord,
  buildRows,
  type Ceilings,
  ceilingsOf,
  compareResults,
  type DenoBenchJson,
  formatComparison,
  formatResults,
  type ResultFile,
  resultFileName,
  type ResultRow,
  roofline,
  splitBenchOutput,
  withRoofline,
} from "../bench/lib/report.ts";
import { testRng } from "./helpers.ts";

/** Runs a naive matmul loop, counting FLOPs and the distinct elements it reads and writes. */
function countNaiveMatmul(batch: number, m: number, n: number, k: number, bias: boolean) {
  let flops = 0;
  const touched = new Set<string>();
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        for (let p = 0; p < k; p++) {
          touched.add(`a${z},${i},${p}`).add(`b${z},${p},${j}`);
          flops += 2;
        }
        if (bias) {
          touched.add(`bias${j}`);
          flops += 1;
        }
        touched.add(`c${z},${i},${j}`);
      }
    }
  }
  return { flops, bytes: 4 * touched.size };
}

Deno.test("bench work: matmul FLOPs and bytes match a naive loop's count", () => {
  const { rng } = testRng();
  for (let trial = 0; trial < 4; trial++) {
    const [batch, m, n, k] = [1 + rng.int(3), 1 + rng.int(5), 1 + rng.int(5), 1 + rng.int(5)];
    const bias = trial % 2 === 1;
    assert.deepEqual(
      matmulWork(m, n, k, { bias, batch }),
      countNaiveMatmul(batch, m, n, k, bias),
      `batch ${batch}, ${m}×${n}×${k}, bias ${bias}`,
    );
  }
});

Deno.test("bench work: elementwise, reductions, losses, Adam, ceilings and train steps", () => {
  const { rng } = testRng();
  const [rows, cols] = [2 + rng.int(50), 2 + rng.int(50)];
  // A row-broadcast add reads the matrix and the row once, writes the matrix, one add per output.
  assert.deepEqual(elementwiseWork(rows * cols, rows * cols + cols, 1), {
    flops: rows * cols,
    bytes: 4 * (2 * rows * cols + cols),
  });
  assert.equal(elementwiseWork(rows, rows).flops, undefined, "transcendentals declare no FLOPs");
  assert.deepEqual(reduceWork(rows * cols, rows), {
    flops: rows * cols,
    bytes: 4 * (rows * cols + rows),
  });
  // Logits read twice and their gradient written once; labels read twice.
  assert.equal(softmaxCrossEntropyWork(rows, cols).bytes, 4 * (3 * rows * cols + 2 * rows));
  assert.equal(adamWork(rows).bytes, 4 * 7 * rows, "w, g, m, v read; w, m, v written");
  assert.equal(copyWork(rows).bytes, 2 * rows);
  assert.deepEqual(fmaWork(rows, cols, 8), { flops: rows * cols * 8 * 4 * 2, bytes: 4 * rows });
  // MLP 784-512-10: layer 1 forward + dW (its input needs no gradient), layer 2 forward + dW + dX.
  const layer1 = 2 * 128 * 784 * 512, layer2 = 2 * 128 * 512 * 10;
  assert.equal(denseStepWork(128, [784, 512, 10]).flops, 2 * layer1 + 3 * layer2);
  assert.equal(denseStepWork(128, [784, 512, 10], true).flops, 3 * layer1 + 3 * layer2);
});

Deno.test("roofline: share of min(compute, intensity × bandwidth)", () => {
  const ceilings: Ceilings = { gbps: 100, gflops: 1000 };
  // Intensity 1 FLOP/byte: bound at 100 GFLOP/s by bandwidth; 50 GFLOP/s is half of it.
  const memory = roofline({ flops: 1e6, bytes: 1e6 }, 1e6 / 50e6, ceilings);
  assert.equal(memory.bound, "memory");
  assert.ok(Math.abs(memory.gflops! - 50) < 1e-9 && Math.abs(memory.percent! - 50) < 1e-9);
  // Intensity 1000: bound by compute.
  const compute = roofline({ flops: 1e9, bytes: 1e6 }, 2, ceilings);
  assert.equal(compute.bound, "compute");
  assert.ok(Math.abs(compute.percent! - 50) < 1e-9);

  const { rng } = testRng();
  for (let i = 0; i < 20; i++) {
    const work = { flops: rng.uniform(1, 1e9), bytes: rng.uniform(1, 1e9) };
    const ms = rng.uniform(0.01, 100);
    const bound = Math.min(ceilings.gflops, (work.flops / work.bytes) * ceilings.gbps);
    const expected = (100 * (work.flops / (ms * 1e6))) / bound;
    const got = roofline(work, ms, ceilings).percent!;
    assert.ok(Math.abs(got - expected) < 1e-9 * expected, `${got} vs ${expected}`);
  }

  // Work on one side only is measured against that side's ceiling.
  assert.ok(Math.abs(roofline({ bytes: 5e6 }, 1, ceilings).percent! - 5) < 1e-9);
  assert.equal(roofline({ bytes: 5e6 }, 1, ceilings).gflops, undefined);
  assert.ok(Math.abs(roofline({ flops: 5e8 }, 1, ceilings).percent! - 50) < 1e-9);
  assert.deepEqual(roofline({}, 1, ceilings), {});
  assert.deepEqual(roofline({ bytes: 5e6 }, 1, null), { gbps: 5 });
});

const stats = (avgNs: number) => ({
  n: 10,
  min: avgNs * 0.9,
  max: avgNs * 1.2,
  avg: avgNs,
  p75: avgNs * 1.1,
  p99: avgNs * 1.2,
});

function fakeRun(): { json: DenoBenchJson; records: BenchRecord[] } {
  const origin = "file:///repo/bench/x.bench.ts";
  const bench = (name: string, result: DenoBenchJson["benches"][0]["results"][0]) => ({
    origin,
    group: null,
    name,
    results: [result],
  });
  return {
    json: {
      runtime: "Deno",
      cpu: "test cpu",
      benches: [
        bench("matmul 4×4×4", { ok: stats(2e6) }),
        bench("ceiling copy a", { ok: stats(8e6) }),
        bench("ceiling copy b", { ok: stats(4e6) }),
        bench("ceiling fma", { ok: stats(1e6) }),
        bench("lstm step", { ok: stats(3e6) }),
        bench("broken", { failed: "boom" }),
      ],
    },
    records: [
      {
        type: "work",
        name: "ceiling copy a",
        kernel: "ceiling copy",
        shape: "",
        reps: 1,
        bytes: 8e6,
        ceiling: "bandwidth",
      },
      {
        type: "work",
        name: "ceiling copy b",
        kernel: "ceiling copy",
        shape: "",
        reps: 2,
        bytes: 8e6,
        ceiling: "bandwidth",
      },
      {
        type: "work",
        name: "ceiling fma",
        kernel: "ceiling fma",
        shape: "",
        reps: 1,
        flops: 1e8,
        ceiling: "compute",
      },
      {
        type: "work",
        name: "matmul 4×4×4",
        kernel: "matmul",
        variant: "transB",
        shape: "4×4×4",
        reps: 4,
        flops: 1e7,
        bytes: 1e5,
      },
    ],
  };
}

Deno.test("bench rows: per-op times, declared work, ceilings, undeclared and failed benches", () => {
  const { json, records } = fakeRun();
  const rows = buildRows(json, records);
  const byName = new Map(rows.map((r) => [r.name, r]));
  // 2 ms per region over 4 ops.
  const matmul = byName.get("matmul 4×4×4")!;
  assert.equal(matmul.ms!.avg, 0.5);
  assert.equal(matmul.kernel, "matmul transB");
  assert.equal(matmul.file, "x.bench.ts");
  assert.ok(matmul.declared);
  const lstm = byName.get("lstm step")!;
  assert.equal(lstm.declared, false);
  assert.equal(lstm.ms!.avg, 3);
  assert.equal(lstm.flops, undefined);
  assert.match(byName.get("broken")!.error!, /boom/);
  assert.deepEqual(rows.map((r) => r.name), [
    "ceiling copy a",
    "ceiling copy b",
    "ceiling fma",
    "matmul 4×4×4",
    "lstm step",
    "broken",
  ]);

  // Copy b moves 8 MB in 2 ms per op (4 GB/s) and beats copy a (1 GB/s); FMA 100 GFLOP/s.
  const ceilings = ceilingsOf(rows)!;
  assert.deepEqual(ceilings, { gbps: 4, gflops: 100 });
  const reported = new Map(withRoofline(rows, ceilings).map((r) => [r.name, r]));
  // 1e7 FLOPs in 0.5 ms = 20 GFLOP/s of a 100 GFLOP/s compute bound (intensity 100 ≥ 25).
  assert.ok(Math.abs(reported.get("matmul 4×4×4")!.percent! - 20) < 1e-9);
  assert.equal(reported.get("ceiling copy b")!.percent, 100);
  assert.equal(reported.get("lstm step")!.percent, undefined);
  assert.equal(ceilingsOf(rows.filter((r) => r.ceiling !== "compute")), null);

  const table = formatResults([...reported.values()]);
  assert.match(table, /\| kernel +\| shape +\| +ms \| GFLOP\/s \| +GB\/s \| +% of roofline \|/);
  assert.match(table, /matmul transB +\| 4×4×4 +\| +0\.500 \| +20\.0 \|/);
  assert.match(table, /broken .*failed/);
});

Deno.test("bench output: the JSON report follows the benches' own console output", () => {
  const doc = { version: 1, runtime: "Deno", cpu: "c", benches: [] };
  const { json, logs } = splitBenchOutput(
    `step encode: { not json }\nmore\n${JSON.stringify(doc, null, 2)}\n`,
  );
  assert.deepEqual(json, doc);
  assert.equal(logs, "step encode: { not json }\nmore");
  assert.throws(() => splitBenchOutput("no report"), /no JSON report/);
});

function resultFile(description: string, rows: ResultRow[]): ResultFile {
  return {
    schema: 1,
    date: "2026-01-02T03:04:05.000Z",
    adapter: {
      vendor: "v",
      architecture: "",
      device: "",
      description,
      isFallbackAdapter: false,
      features: [],
      limits: {},
      loopBudget: 65535,
      backend: "vulkan",
    },
    deno: { deno: "2.9.6", v8: "", typescript: "" },
    host: {
      os: "linux",
      arch: "x86_64",
      cpu: "",
      cores: 2,
      loadavg: { before: [0, 0, 0], after: [0, 0, 0] },
    },
    settings: { filter: null, regionMs: 200, iterations: 10 },
    ceilings: null,
    results: rows,
  };
}

Deno.test("bench compare: per-kernel speed-ups, kernels missing on either side listed", () => {
  const row = (name: string, ms: number, percent?: number): ResultRow => ({
    name,
    kernel: name,
    shape: "",
    file: "x.bench.ts",
    reps: 1,
    n: 1,
    declared: true,
    ms: { avg: ms, min: ms, p75: ms, max: ms },
    percent,
  });
  const a = resultFile("llvmpipe (LLVM 15.0.6, 256 bits)", [row("add", 10, 40), row("old", 1)]);
  const b = resultFile("NVIDIA H100 80GB HBM3", [row("add", 0.5, 80), row("new", 2)]);
  const rows = compareResults(a, b);
  assert.deepEqual(rows.map((r) => [r.name, r.speedup]), [["add", 20], ["old", undefined], [
    "new",
    undefined,
  ]]);
  assert.equal(rows[0].bPercent, 80);
  assert.match(
    formatComparison(rows),
    /\| add +\| +\| +10\.0 \| +0\.500 \| +20\.0× \| +40\.0% \| +80\.0% \|/,
  );

  assert.equal(resultFileName(a.adapter, "vulkan", a.date), "llvmpipe-vulkan-2026-01-02.json");
  assert.equal(
    resultFileName(b.adapter, "default", b.date),
    "nvidia-h100-80gb-hbm3-default-2026-01-02.json",
  );
  assert.equal(
    resultFileName(
      { ...a.adapter, description: "", vendor: "nvidia", architecture: "hopper" },
      "gl",
      a.date,
    ),
    "nvidia-hopper-gl-2026-01-02.json",
  );
});

Deno.test("deno task bench: a filtered run writes the result file with every field", async () => {
  const out = await Deno.makeTempDir({ prefix: "denograd-bench-test-" });
  try {
    const root = new URL("..", import.meta.url).pathname;
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "bench/run.ts",
        "--filter",
        "add [1024] + [1024]",
        "--out",
        out,
        "--region-ms",
        "10",
        "--iterations",
        "2",
        "bench/elementwise.bench.ts",
      ],
      cwd: root,
    }).output();
    const text = new TextDecoder().decode(stdout);
    assert.equal(code, 0, `${text}\n${new TextDecoder().decode(stderr)}`);
    const files = [...Deno.readDirSync(out)].map((e) => e.name);
    assert.equal(files.length, 1);
    assert.match(files[0], /^[a-z0-9-]+-[a-z0-9]+-\d{4}-\d\d-\d\d\.json$/);
    const result: ResultFile = JSON.parse(await Deno.readTextFile(join(out, files[0])));

    assert.equal(result.schema, 1);
    for (const key of ["vendor", "architecture", "device", "description", "backend"] as const) {
      assert.equal(typeof result.adapter[key], "string", key);
    }
    assert.equal(result.adapter.backend, Deno.env.get("DENO_WEBGPU_BACKEND") || "default");
    assert.ok(Array.isArray(result.adapter.features));
    assert.ok(result.adapter.limits.maxStorageBufferBindingSize > 0);
    assert.equal(result.deno.deno, Deno.version.deno);
    assert.equal(result.host.loadavg.before.length, 3);
    assert.equal(result.settings.filter, "add [1024] + [1024]");
    assert.ok(result.ceilings!.gbps > 0 && result.ceilings!.gflops > 0);

    // The filter keeps the ceilings and the one add; nothing else from the file.
    const names = result.results.map((r) => r.name);
    assert.deepEqual(names.filter((n) => !n.startsWith("ceiling ")), ["add [1024] + [1024]"]);
    assert.ok(names.some((n) => n.startsWith("ceiling copy")));
    assert.ok(names.some((n) => n.startsWith("ceiling fma")));
    const add = result.results.find((r) => r.kernel === "add")!;
    assert.equal(add.shape, "[1024] + [1024]");
    assert.deepEqual([add.flops, add.bytes], [1024, 4 * 3 * 1024]);
    assert.ok(add.reps >= 1 && add.n >= 1 && add.ms!.avg > 0);
    assert.ok(add.gbps! > 0 && add.percent! > 0 && add.bound === "memory");
    assert.match(text, /\| add +\| \[1024\] \+ \[1024\] \|/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
