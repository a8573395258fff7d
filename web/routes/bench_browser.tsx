// `/benchmarks/browser?filter=&region-ms=&iterations=`: bench/'s kernel benchmarks on this
// browser's GPU, with a results file to download in bench/results/'s schema.
import { Island } from "../island.tsx";
import { NotFound, type Route } from "../route.ts";

function bounded(url: URL, name: string, fallback: number, max: number): number {
  const value = Number(url.searchParams.get(name) ?? fallback);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new NotFound(`${name}: expected an integer in [1, ${max}]`);
  }
  return value;
}

export const route: Route = {
  pattern: "/benchmarks/browser",
  handle({ url }) {
    return Promise.resolve({
      title: "Benchmark this GPU",
      body: (
        <section>
          <p class="crumbs">
            <a href="/benchmarks">benchmarks</a> /
          </p>
          <h1>Benchmark this GPU in the browser</h1>
          <p>
            Runs the kernel benchmarks of <code>bench/</code>{" "}
            on this page's WebGPU adapter and downloads the results; put the file in{" "}
            <code>bench/results/</code> to see it on the benchmarks page, or compare it with{" "}
            <code>deno task bench:compare a.json b.json</code>.
          </p>
          <Island
            name="BenchRunner"
            props={{
              filter: url.searchParams.get("filter") ?? "",
              regionMs: bounded(url, "region-ms", 200, 10_000),
              iterations: bounded(url, "iterations", 10, 1000),
            }}
          />
        </section>
      ),
    });
  },
};
