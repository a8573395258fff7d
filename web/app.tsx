// The web UI's request handler: GET/HEAD only; each path goes to the first route of the
// manifest (web/routes.ts) whose pattern matches, `/static/…` to the assets folder, anything
// else to a 404. Pages are Preact trees rendered to HTML inside the layout.
import * as path from "node:path";
import { renderToString } from "preact-render-to-string";
import { pathInside, READ_LIMITS, readFileBounded, RefusedPathError } from "../tracking/files.ts";
import { Layout } from "./layout.tsx";
import { NotFound, type Page, type Route, safeSegments, type UiContext } from "./route.ts";
import { ROUTES } from "./routes.ts";
import type { Handler } from "./server.ts";

export const STATIC_DIR = path.join(import.meta.dirname!, "static");

/** What web/static holds: the stylesheet and the islands bundle. */
const CONTENT_TYPES: Record<string, string> = {
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
};

function html(page: Page, status = 200): Response {
  const body = "<!DOCTYPE html>" +
    renderToString(<Layout title={page.title}>{page.body}</Layout>);
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      // Nothing loads from elsewhere and no inline script runs (island props are JSON data);
      // Vega compiles its expressions with new Function, hence 'unsafe-eval'.
      "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-eval'; " +
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:",
      "x-content-type-options": "nosniff",
    },
  });
}

function errorPage(status: 404 | 500, message: string): Response {
  const title = status === 404 ? "Not found" : "Server error";
  return html({
    title,
    body: (
      <section>
        <h1>{title}</h1>
        <p>{message}</p>
      </section>
    ),
  }, status);
}

async function staticAsset(staticDir: string, encodedPath: string): Promise<Response> {
  const segments = safeSegments(encodedPath);
  const file = segments && await pathInside(staticDir, segments);
  const bytes = file && await readFileBounded(file, READ_LIMITS.artifact);
  if (!bytes) throw new NotFound("no such asset");
  const type = CONTENT_TYPES[path.extname(file).toLowerCase()] ?? "application/octet-stream";
  return new Response(bytes as Uint8Array<ArrayBuffer>, {
    headers: { "content-type": type, "x-content-type-options": "nosniff" },
  });
}

export function createUiHandler(ui: UiContext, staticDir = STATIC_DIR): Handler {
  const routes = ROUTES.map((route: Route) => ({
    route,
    pattern: new URLPattern({ pathname: route.pattern }),
  }));
  const staticPattern = new URLPattern({ pathname: "/static/*" });
  return async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("read-only: GET and HEAD only\n", {
        status: 405,
        headers: { allow: "GET, HEAD" },
      });
    }
    const url = new URL(request.url);
    try {
      const asset = staticPattern.exec({ pathname: url.pathname });
      if (asset) return await staticAsset(staticDir, asset.pathname.groups[0] ?? "");
      for (const { route, pattern } of routes) {
        const match = pattern.exec({ pathname: url.pathname });
        if (!match) continue;
        const answer = await route.handle({ url, params: match.pathname.groups, ui });
        return answer instanceof Response ? answer : html(answer);
      }
      throw new NotFound(`nothing at ${url.pathname}`);
    } catch (error) {
      // A link or special file inside the store or the assets is refused like a missing one.
      if (
        error instanceof NotFound || error instanceof Deno.errors.NotFound ||
        error instanceof RefusedPathError
      ) {
        return errorPage(404, error instanceof NotFound ? error.message : "not found");
      }
      console.error(`web: GET ${url.pathname} failed:`, error);
      return errorPage(500, "The page could not be built; the server log says why.");
    }
  };
}
