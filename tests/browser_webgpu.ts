// Headless Chromium with WebGPU on (Dawn, here on SwiftShader) for the tests that run the
// engine in a page: a script of this repo bundled for the browser, served in-process.
import * as path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";

const ROOT = path.resolve(import.meta.dirname!, "..");

/** `deno bundle --platform browser` of `entry` (relative to the repo root), as JavaScript text. */
export async function bundleForBrowser(entry: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "denograd-bundle-" });
  try {
    const out = path.join(dir, "bundle.js");
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--platform", "browser", "--quiet", "-o", out, entry],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!result.success) {
      throw new Error(`bundling ${entry} failed: ${new TextDecoder().decode(result.stderr)}`);
    }
    return await Deno.readTextFile(out);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Debian's Chromium, headless, with WebGPU allowed on a software adapter. */
export function launchWebGpuChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--enable-unsafe-webgpu"],
  });
}

/** The page's console errors and uncaught exceptions, collected for the test's assertions. */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(`${e.message}\n${e.stack ?? ""}`));
  return errors;
}

/** Serves one HTML page at / that loads `script` (a bundle) as a module, on a free port. */
export function servePageScript(script: string): Deno.HttpServer<Deno.NetAddr> {
  const html = `<!doctype html><meta charset="utf-8"><title>denograd</title>` +
    `<script type="module" src="/page.js"></script>`;
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const { pathname } = new URL(req.url);
    if (pathname === "/") return new Response(html, { headers: { "content-type": "text/html" } });
    if (pathname === "/favicon.ico") return new Response(null, { status: 204 });
    if (pathname === "/page.js") {
      return new Response(script, { headers: { "content-type": "text/javascript" } });
    }
    return new Response("not found", { status: 404 });
  });
}
