// The web UI's server side without a browser: every path outside the store and the assets is a
// 404, nothing but GET/HEAD is answered and the store is left as it was, a 100k-point history
// reaches the page downsampled, `deno task web` serves with its narrow permissions, and the
// time to list 1,000 runs × 20 metrics (printed, not asserted: speed is measured, not tested).
import assert from "node:assert/strict";
import * as path from "node:path";
import { fileUriToPath } from "../tracking/file_uri.ts";
import { listFilesRecursive } from "../tracking/files.ts";
import { openStore, type TrackingStore } from "../tracking/store.ts";
import { downsample } from "../web/metrics_data.ts";
import { baseUrl, rawStatus, serveUi } from "./web_helpers.ts";

const root = path.resolve(import.meta.dirname!, "..");

async function newRun(store: TrackingStore, experiment: string, name: string) {
  const id = await store.getOrCreateExperiment(experiment);
  return await store.createRun(id, { userId: "test", startTime: Date.now(), runName: name });
}

Deno.test("web: paths outside the store or the assets are 404; only GET and HEAD; store untouched", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denograd_web_safety_" });
  const mlruns = path.join(dir, "mlruns");
  const store = openStore(mlruns);
  const run = await newRun(store, "safety", "r");
  await store.logBatch(run.runId, { metrics: [{ key: "loss", value: 1, step: 0, timestamp: 1 }] });
  await store.writeArtifact(run.runId, "notes/a.txt", "inside");
  await Deno.writeTextFile(path.join(dir, "secret.txt"), "outside");
  const artifacts = fileUriToPath(run.artifactUri);
  await Deno.symlink(path.join(dir, "secret.txt"), path.join(artifacts, "link.txt"));
  const before = listFilesRecursive(mlruns);
  const server = serveUi(mlruns);
  try {
    const r = run.runId;
    assert.equal(await rawStatus(server, "GET", `/runs/${r}/artifacts/notes/a.txt`), 200);
    assert.equal(await rawStatus(server, "GET", "/static/style.css"), 200);
    for (
      const target of [
        "/../../etc/passwd",
        "/etc/passwd",
        "/static/../deno.json",
        "/static/..%2f..%2fdeno.json",
        "/static//etc/passwd",
        "/static/%2Fetc%2Fpasswd",
        "/static/",
        `/runs/${r}/artifacts/../meta.yaml`,
        `/runs/${r}/artifacts/..%2fmeta.yaml`,
        `/runs/${r}/artifacts/notes/..%2F..%2Fmeta.yaml`,
        `/runs/${r}/artifacts/%2Fetc%2Fpasswd`,
        `/runs/${r}/artifacts//etc/passwd`,
        `/runs/${r}/artifacts/link.txt`,
        `/runs/${r}/artifacts/notes`,
        "/runs/..%2F..%2Fetc",
        "/experiments/..%2F0",
        "/benchmarks?file=..%2F..%2Fdeno.json",
        "/benchmarks?file=/etc/passwd",
        "/compare?runs=../../etc",
        "/api/runs/nope/metrics",
      ]
    ) {
      assert.equal(await rawStatus(server, "GET", target), 404, target);
    }
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      assert.equal(await rawStatus(server, method, `/runs/${r}`), 405, method);
    }
    for (const page of ["/", `/experiments/${run.experimentId}`, `/runs/${r}`, "/benchmarks"]) {
      assert.equal(await rawStatus(server, "GET", page), 200, page);
    }
  } finally {
    await server.shutdown();
  }
  assert.deepEqual(listFilesRecursive(mlruns), before, "the store is unchanged");
});

Deno.test("web: a 100k-point history is downsampled for the chart, keeping its extremes", async () => {
  const values = Array.from(
    { length: 100_000 },
    (_, i) => Math.sin(i / 500) + (i === 77_777 ? 9 : 0),
  );
  const points = values.map((value, step) => ({ value, step, timestamp: 1_000 + step }));
  const series = downsample(points);
  assert.ok(series.value.length <= 1000 && series.value.length > 900, `${series.value.length}`);
  assert.equal(series.total, 100_000);
  assert.equal(series.step[0], 0);
  assert.equal(series.step.at(-1), 99_999);
  assert.equal(Math.max(...series.value), Math.max(...values), "the spike survives");
  assert.equal(Math.min(...series.value), Math.min(...values));
  assert.deepEqual(series.step, [...series.step].sort((a, b) => a - b), "in step order");

  const dir = await Deno.makeTempDir({ prefix: "denograd_web_long_" });
  const store = openStore(dir);
  const run = await newRun(store, "long", "long");
  for (let i = 0; i < points.length; i += 1000) {
    await store.logBatch(run.runId, {
      metrics: points.slice(i, i + 1000).map((p) => ({ key: "loss", ...p })),
    });
  }
  const server = serveUi(dir);
  try {
    const api = await (await fetch(`${baseUrl(server)}/api/runs/${run.runId}/metrics`)).json();
    assert.equal(api.series.loss.total, 100_000);
    assert.ok(api.series.loss.value.length <= 1000);
    const page = await (await fetch(`${baseUrl(server)}/runs/${run.runId}`)).text();
    assert.ok(page.length < 200_000, `the run page is ${page.length} bytes`);
  } finally {
    await server.shutdown();
  }
});

/** The address the web task prints once it listens. */
async function listeningUrl(stdout: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stdout.getReader();
  const decoder = new TextDecoder();
  let out = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`web task exited: ${out}`);
    out += decoder.decode(value, { stream: true });
    const url = /denograd web UI on (http:\/\/\S+?)\/\n/.exec(out)?.[1];
    if (url) {
      reader.releaseLock();
      return url;
    }
  }
}

Deno.test("web: deno task web serves with the task's narrow permissions", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denograd_web_task_" });
  const store = openStore(dir);
  const run = await newRun(store, "task", "task-run");
  await store.logBatch(run.runId, { metrics: [{ key: "loss", value: 1, step: 0, timestamp: 1 }] });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "web", "--store", dir, "--port", "0"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    const url = await listeningUrl(child.stdout);
    for (const page of ["/", `/experiments/${run.experimentId}`, `/runs/${run.runId}`]) {
      const response = await fetch(url + page);
      const text = await response.text();
      assert.equal(response.status, 200, page);
      assert.ok(text.includes("task-run") || page === "/", page);
    }
    assert.match(url, /^http:\/\/127\.0\.0\.1:/, "binds 127.0.0.1 by default");
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await child.stderr.cancel();
  }
});

Deno.test("web: listing 1,000 runs × 20 metrics (timing printed)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denograd_web_1000_" });
  const store = openStore(dir);
  const experimentId = await store.getOrCreateExperiment("thousand");
  // Written 16 runs at a time: one after another takes minutes on a loaded 2-core machine.
  const writeRun = async (r: number) => {
    const run = await store.createRun(experimentId, {
      userId: "test",
      startTime: r,
      runName: `run-${r}`,
    });
    await store.logBatch(run.runId, {
      params: [{ key: "lr", value: String(r / 1000) }, { key: "seed", value: String(r % 7) }],
      metrics: Array.from({ length: 20 }, (_, k) =>
        Array.from({ length: 10 }, (_, step) => ({
          key: `metric_${k}`,
          value: Math.random(),
          step,
          timestamp: r + step,
        }))).flat(),
    });
    await store.setTerminated(run.runId, "FINISHED", r + 10);
  };
  for (let r = 0; r < 1000; r += 16) {
    await Promise.all(Array.from({ length: Math.min(16, 1000 - r) }, (_, i) => writeRun(r + i)));
  }
  const server = serveUi(dir);
  try {
    const url = `${baseUrl(server)}/experiments/${experimentId}`;
    const times: number[] = [];
    let html = "";
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      html = await (await fetch(url)).text();
      times.push(performance.now() - t0);
    }
    assert.equal(html.match(/<tr data-run=/g)?.length, 1000);
    const [cold, ...warm] = times.map(Math.round);
    console.log(
      `runs table of 1,000 runs × 20 metrics (10 points each), ${
        Math.round(html.length / 1024)
      } KiB of HTML: first visit ${cold} ms (reads the store), then ${
        warm.join(" and ")
      } ms (rows from memory, rendered and sent)`,
    );
  } finally {
    await server.shutdown();
  }
});
