// `deno task bench [--filter NAME] [--out DIR] [files…]`: runs `deno bench --json` on the bench
// files (the ceiling benches always run), joins the figures with the work each bench declared,
// prints a table with each kernel's share of the adapter's roofline and writes
// `<out>/<adapter>-<backend>-<date>.json`.
import { parseArgs } from "node:util";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import {
  BENCH_ENV,
  type BenchRecord,
  buildRows,
  ceilingsOf,
  describeRun,
  formatResults,
  type ResultFile,
  resultFileName,
  splitBenchOutput,
  withRoofline,
} from "./lib/report.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    /** Runs the benches whose name contains this text (and the ceilings). */
    filter: { type: "string" },
    out: { type: "string", default: "bench/results" },
    "region-ms": { type: "string", default: "200" },
    iterations: { type: "string", default: "10" },
  },
  allowPositionals: true,
});

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = dirname(benchDir);
const ceilingFile = join(benchDir, "ceiling.bench.ts");
const files = positionals.length ? [...new Set([ceilingFile, ...positionals])] : [benchDir];
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
const filter = values.filter ? ["--filter", `/^ceiling |${escapeRegExp(values.filter)}/`] : [];

/** One `deno bench --json` child: its report, the records its benches appended, how it ended. */
async function runDenoBench(benchFiles: string[], args: string[], env: Record<string, string>) {
  const recordsPath = await Deno.makeTempFile({ prefix: "denograd-bench-", suffix: ".jsonl" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["bench", "-A", "--json", ...args, ...benchFiles],
    cwd: root,
    env: {
      [BENCH_ENV.records]: recordsPath,
      [BENCH_ENV.regionMs]: values["region-ms"],
      [BENCH_ENV.iterations]: values.iterations,
      ...env,
    },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const records: BenchRecord[] = [];
  const readRecords = (final: boolean) => {
    const lines = Deno.readTextFileSync(recordsPath).split("\n");
    // A line without its newline may still be being written.
    const complete = final ? lines.filter(Boolean) : lines.slice(0, -1);
    for (const line of complete.slice(records.length)) {
      const record: BenchRecord = JSON.parse(line);
      records.push(record);
      if (record.type === "work") {
        console.error(`bench: ${record.name} (${record.reps} ops per region)`);
      }
    }
  };
  // `deno bench --json` prints nothing until the end: show each case as it declares its work.
  const progress = setInterval(() => readRecords(false), 500);
  const { code, signal, stdout } = await child.output();
  clearInterval(progress);
  readRecords(true);
  await Deno.remove(recordsPath);
  return { ...splitBenchOutput(new TextDecoder().decode(stdout)), records, code, signal };
}

const loadBefore = Deno.loadavg();
const main = await runDenoBench(files, filter, {});
// The ceilings again, after the kernels: on a machine whose speed drifts, one reading at the
// start can be low, which inflates every share. The file takes the better reading of each.
const after = await runDenoBench([ceilingFile], [], { [BENCH_ENV.ceilingPass]: "after" });
const loadAfter = Deno.loadavg();
const { json, records } = main;
const logs = [main.logs, after.logs].filter(Boolean).join("\n");
const { code, signal } = main.code !== 0 ? main : after;
if (logs) console.log(`Output of the benches:\n${logs}\n`);

const adapter = records.find((r) => r.type === "adapter");
if (!adapter) {
  throw new Error("bench: no bench reported its adapter (did bench/lib/kernel.ts load?)");
}

const rows = [...buildRows(json, records), ...buildRows(after.json, after.records)];
const ceilings = ceilingsOf(rows);
const result: ResultFile = {
  schema: 1,
  date: new Date().toISOString(),
  adapter: { ...adapter.report, backend: adapter.backend },
  deno: Deno.version,
  host: {
    os: Deno.build.os,
    arch: Deno.build.arch,
    cpu: json.cpu,
    cores: navigator.hardwareConcurrency,
    loadavg: { before: loadBefore, after: loadAfter },
  },
  settings: {
    filter: values.filter ?? null,
    regionMs: Number(values["region-ms"]),
    iterations: Number(values.iterations),
  },
  ceilings,
  results: withRoofline(rows, ceilings),
};

await Deno.mkdir(values.out, { recursive: true });
const path = join(values.out, resultFileName(result.adapter, result.adapter.backend, result.date));
await Deno.writeTextFile(path, JSON.stringify(result, null, 2) + "\n");
console.log(`${describeRun(result)}\n`);
console.log(formatResults(result.results));
console.log(
  `\nms: mean over the timed regions ÷ ops per region (device sync inside every region).`,
);
console.log(`Wrote ${relative(Deno.cwd(), path)}`);
// Mesa's drivers occasionally abort in their own teardown after `deno bench` has printed its whole
// report (glibc: "malloc_consolidate(): unaligned fastbin chunk detected"): every result above was
// parsed from that report, so they stand, and the crash is reported rather than hidden. A crash
// before the report leaves no JSON to parse and fails above; a failed bench fails here.
if (code !== 0 && signal !== null) {
  console.error(`bench: deno bench was killed by ${signal} after reporting every result`);
}
if ((code !== 0 && signal === null) || result.results.some((r) => r.error)) Deno.exit(1);
