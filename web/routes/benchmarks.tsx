// `/benchmarks?file=<name>&a=<name>&b=<name>`: a roofline plot per adapter (its newest result
// file of `deno task bench`), one file as a table, and two files side by side with the ratios
// `deno task bench:compare` prints (the same compareResults).
import { compareResults, describeRun, fmt, type ResultFile } from "../../bench/lib/report.ts";
import {
  latestPerAdapter,
  listResultFiles,
  readResultFile,
  rooflineSpec,
} from "../bench_results.ts";
import { BenchTable } from "../bench_table.tsx";
import { Island } from "../island.tsx";
import { NotFound, type Route } from "../route.ts";

function FilePicker(props: { name: string; files: string[]; value: string }) {
  return (
    <select name={props.name}>
      {props.files.map((f) => <option key={f} value={f} selected={f === props.value}>{f}</option>)}
    </select>
  );
}

function Comparison({ a, b }: { a: ResultFile; b: ResultFile }) {
  const pct = (p?: number) => (p === undefined ? "" : `${fmt(p)}%`);
  return (
    <>
      <p>
        A: {describeRun(a)}
        <br />B: {describeRun(b)}
      </p>
      <div class="table-scroll">
        <table class="bench-compare">
          <thead>
            <tr>
              <th>kernel</th>
              <th>shape</th>
              <th class="number">A ms</th>
              <th class="number">B ms</th>
              <th class="number">B speed-up</th>
              <th class="number">A % roofline</th>
              <th class="number">B % roofline</th>
            </tr>
          </thead>
          <tbody>
            {compareResults(a, b).map((r) => (
              <tr key={r.name}>
                <td>{r.kernel}</td>
                <td class="mono">{r.shape}</td>
                <td class="number">{r.aMs === undefined ? "-" : fmt(r.aMs)}</td>
                <td class="number">{r.bMs === undefined ? "-" : fmt(r.bMs)}</td>
                <td class="number">{r.speedup === undefined ? "" : `${fmt(r.speedup)}×`}</td>
                <td class="number">{pct(r.aPercent)}</td>
                <td class="number">{pct(r.bPercent)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="hint">B speed-up: A's time ÷ B's time per op (above 1, B is faster).</p>
    </>
  );
}

export const route: Route = {
  pattern: "/benchmarks",
  async handle({ url, ui }) {
    const files = await listResultFiles(ui.benchDir);
    const pick = async (key: string, fallback: string | undefined) => {
      const name = url.searchParams.get(key) ?? fallback;
      if (name === undefined) return null;
      const result = await readResultFile(ui.benchDir, name);
      if (!result) throw new NotFound(`no result file '${name}'`);
      return { name, result };
    };
    const shown = await pick("file", files.at(-1));
    const a = await pick("a", files.at(0));
    const b = await pick("b", files.at(1) ?? files.at(0));
    const rooflines = await Promise.all(
      latestPerAdapter(files).map(async (name) => {
        const result = (await readResultFile(ui.benchDir, name))!;
        return { name, result, spec: rooflineSpec(result) };
      }),
    );
    return {
      title: "Benchmarks",
      body: (
        <section>
          <h1>Benchmarks</h1>
          {!shown
            ? <p class="empty">No result files in {ui.benchDir}: run `deno task bench`.</p>
            : (
              <>
                <h2>Roofline per adapter</h2>
                <div class="chart-grid">
                  {rooflines.map(({ name, result, spec }) => (
                    <div class="chart roofline" key={name}>
                      <h3>{result.adapter.description || name}, {result.adapter.backend}</h3>
                      <p class="hint">{name}</p>
                      {spec
                        ? <Island name="VegaChart" props={{ spec, label: `roofline ${name}` }} />
                        : <p class="empty">No kernel declared both its FLOPs and its bytes.</p>}
                    </div>
                  ))}
                </div>
                <h2>Results</h2>
                <form method="get" class="controls">
                  <label>
                    result file <FilePicker name="file" files={files} value={shown.name} />
                  </label>
                  <button type="submit">show</button>
                </form>
                <p>{describeRun(shown.result)}</p>
                <BenchTable rows={shown.result.results} />
                <h2>Two result files side by side</h2>
                <form method="get" class="controls">
                  <input type="hidden" name="file" value={shown.name} />
                  <label>
                    A <FilePicker name="a" files={files} value={a!.name} />
                  </label>
                  <label>
                    B <FilePicker name="b" files={files} value={b!.name} />
                  </label>
                  <button type="submit">compare</button>
                </form>
                <Comparison a={a!.result} b={b!.result} />
              </>
            )}
        </section>
      ),
    };
  },
};
