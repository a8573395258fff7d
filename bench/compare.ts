// `deno task bench:compare a.json b.json`: per-kernel time ratios between two result files of
// `deno task bench` (two adapters, or two commits on one adapter).
import { compareResults, describeRun, formatComparison, type ResultFile } from "./lib/report.ts";

if (Deno.args.length !== 2) {
  console.error("usage: deno task bench:compare <a.json> <b.json>");
  Deno.exit(2);
}
const [a, b] = await Promise.all(
  Deno.args.map(async (path) => JSON.parse(await Deno.readTextFile(path)) as ResultFile),
);
console.log(`A: ${describeRun(a)}\nB: ${describeRun(b)}\n`);
console.log(formatComparison(compareResults(a, b)));
console.log("\nB speed-up: A's time ÷ B's time per op (above 1, B is faster).");
