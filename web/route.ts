// What a page or API route is: a URL pattern and a handler that answers with a page (rendered
// into the layout) or a Response. Routes see the tracking store read-only: the type has no
// method that writes, so no route can change the store.
import type { VNode } from "preact";
import type { TrackingStore } from "../tracking/store.ts";
import type { RunsIndex } from "./runs_index.ts";

export type ReadOnlyStore = Pick<
  TrackingStore,
  | "listExperiments"
  | "getExperiment"
  | "getRun"
  | "searchRuns"
  | "getMetricHistory"
  | "listArtifacts"
  | "readArtifact"
>;

export interface UiContext {
  store: ReadOnlyStore;
  /** The runs tables' rows, served from memory (web/runs_index.ts). */
  runs: RunsIndex;
  /** Folder of `deno task bench` result files (bench/results). */
  benchDir: string;
}

export interface RouteRequest {
  url: URL;
  /** The pattern's named groups, still percent-encoded. */
  params: Record<string, string | undefined>;
  ui: UiContext;
}

export interface Page {
  title: string;
  body: VNode;
}

export interface Route {
  /** A URLPattern pathname, e.g. `/runs/:runId`. */
  pattern: string;
  handle(request: RouteRequest): Promise<Page | Response>;
}

/** Thrown by a route for anything it cannot find; answered with 404. */
export class NotFound extends Error {
  override name = "NotFound";
}

/**
 * A URL path's segments, percent-decoded, or null when one could leave its folder: empty
 * (`//`), `.` or `..`, or holding a slash, backslash or NUL once decoded.
 */
export function safeSegments(encodedPath: string): string[] | null {
  const segments: string[] = [];
  for (const raw of encodedPath.split("/")) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return null;
    }
    if (segment === "" || segment === "." || segment === ".." || /[/\\\0]/.test(segment)) {
      return null;
    }
    segments.push(segment);
  }
  return segments;
}

/** A route parameter decoded, or NotFound if it is missing or malformed. */
export function param(request: RouteRequest, name: string): string {
  const segments = safeSegments(request.params[name] ?? "");
  if (segments?.length !== 1) throw new NotFound(`bad ${name}`);
  return segments[0];
}

export function json(value: unknown): Response {
  return new Response(JSON.stringify(value), {
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}

/**
 * The store's answer, or NotFound when it rejects: the tracking interface reports an unknown id
 * by rejecting, and its messages name server paths that a page should not show.
 */
export async function found<T>(answer: Promise<T>, what: string): Promise<T> {
  try {
    return await answer;
  } catch {
    throw new NotFound(`no such ${what}`);
  }
}
