// Shared by the web UI tests: the islands bundle built once, the UI served in-process on a free
// port, a store written by the real labs, raw HTTP requests (fetch would normalise `../`), and
// headless Chromium (Debian's) through playwright-core.
import * as path from "node:path";
import { type Browser, chromium } from "playwright-core";
import { createUiHandler } from "../web/app.tsx";
import { RunsIndex } from "../web/runs_index.ts";
import { type HttpServer, listenHttp } from "../web/server.ts";
import { openStore } from "../tracking/store.ts";
import { runLab } from "./lab_runner.ts";

const root = path.resolve(import.meta.dirname!, "..");
export const BENCH_DIR = path.join(root, "bench", "results");
/** A page hydrates once its islands bundle has loaded and run: over Playwright's 30 s default once
 * on a 2-core machine busy with the other test files, so the wait is longer. */
export const HYDRATION_MS = 120_000;

/** `deno task web:build`: the bundle the pages load. */
export async function buildIslands(): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "web:build"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`web:build failed: ${new TextDecoder().decode(out.stderr)}`);
}

/** The quickest settings of the labs whose runs the UI shows: TP1, demo, TP2, TP5 (all parts). */
export const QUICK_LABS = [
  ["tp1", "--quick"],
  ["demo", "--quick"],
  ["tp2", "--quick"],
  ["tp5", "--quick"],
];

/** A store in `dir` written by the labs' CLI, as a user would produce it. */
export async function writeLabStore(dir: string): Promise<string> {
  const mlruns = path.join(dir, "mlruns");
  for (const args of QUICK_LABS) {
    const out = await runLab([...args, "--checkpoint-dir", path.join(dir, "checkpoints")], mlruns);
    if (out.code !== 0) {
      throw new Error(`lab ${args.join(" ")} failed:\n${out.stderr.slice(-2000)}`);
    }
  }
  return mlruns;
}

/** The UI on a free port; its runs tables are read on first visit (no warm-up). */
export function serveUi(storeUri: string, benchDir = BENCH_DIR): HttpServer {
  const store = openStore(storeUri);
  return listenHttp(
    { hostname: "127.0.0.1", port: 0, log: () => {} },
    createUiHandler({ store, runs: new RunsIndex(store), benchDir }),
  );
}

export function baseUrl(server: HttpServer): string {
  return `http://127.0.0.1:${server.addr.port}`;
}

/** The status code of a request sent byte for byte as given (no client-side normalising). */
export async function rawStatus(server: HttpServer, method: string, target: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  try {
    const head = `${method} ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(head));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(16 * 1024);
    for (let n; (n = await conn.read(buffer)) !== null;) chunks.push(buffer.slice(0, n));
    const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
  } finally {
    conn.close();
  }
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox"],
  });
}
