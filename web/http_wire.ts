// HTTP/1.1 on the wire for web/server.ts: request heads parsed and checked, request targets
// resolved, response heads and canned error answers written, and the limits and timers they use.
import type { ServerStats } from "./server.ts";

export const encoder = new TextEncoder();
const MAX_HEADERS = 100;

const REASONS: Record<number, string> = {
  100: "Continue",
  200: "OK",
  201: "Created",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  417: "Expectation Failed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/(\d)\.(\d)$/;
// Field values: visible ASCII, obs-text, spaces and tabs (no other control characters).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A request the server answers itself (the handler never sees it). */
export class Refusal extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class Timeout extends Error {
  constructor(readonly phase: keyof ServerStats["timeouts"]) {
    super(`${phase} timeout`);
  }
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export function errorBody(message: string): Uint8Array {
  return encoder.encode(JSON.stringify({ error: message }));
}

export let dateCache = { second: -1, text: "" };
export function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateCache.second) {
    dateCache = { second, text: new Date(second * 1000).toUTCString() };
  }
  return dateCache.text;
}

/** A complete response head; `fields` are already validated lower-case names and values. */
export function responseHead(
  status: number,
  statusText: string,
  fields: [string, string][],
): Uint8Array {
  let head = `HTTP/1.1 ${status} ${statusText || REASONS[status] || "Unknown"}\r\n`;
  for (const [name, value] of fields) head += `${name}: ${value}\r\n`;
  return encoder.encode(head + "\r\n");
}

/** A canned JSON error response that closes the connection. */
export function closingResponse(status: number, message: string, extra: [string, string][] = []) {
  const body = errorBody(message);
  return concat(
    responseHead(status, "", [
      ["content-type", "application/json; charset=utf-8"],
      ["content-length", String(body.length)],
      ["date", httpDate()],
      ["connection", "close"],
      ...extra,
    ]),
    body,
  );
}

/** Runs `promise` against a timer: rejects with Timeout(phase) if the timer wins. */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  phase: Timeout["phase"],
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout(phase)), Math.max(0, ms));
  });
  // The loser must not surface as an unhandled rejection.
  promise.catch(() => {});
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface Head {
  method: string;
  target: string;
  minor: number;
  headers: Headers;
}

/** Index just past the blank line that ends a request head, or -1. */
export function headEnd(bytes: Uint8Array): number {
  for (let i = bytes.indexOf(0x0a); i >= 0; i = bytes.indexOf(0x0a, i + 1)) {
    if (bytes[i + 1] === 0x0a) return i + 2;
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

export function parseHead(bytes: Uint8Array): Head {
  // latin1: every byte is one character, so obs-text survives and nothing fails to decode.
  const lines = new TextDecoder("latin1").decode(bytes).split("\n").map((l) =>
    l.replace(/\r$/, "")
  );
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const request = REQUEST_LINE.exec(lines[0] ?? "");
  if (!request) {
    throw new Refusal(400, `malformed request line '${(lines[0] ?? "").slice(0, 80)}'`);
  }
  const [, method, target, major, minor] = request;
  if (major !== "1" || (minor !== "0" && minor !== "1")) {
    throw new Refusal(505, `HTTP/${major}.${minor} is not supported; use HTTP/1.1`);
  }
  if (lines.length - 1 > MAX_HEADERS) {
    throw new Refusal(431, `more than ${MAX_HEADERS} header fields`);
  }
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) {
      throw new Refusal(400, `malformed header line '${line.slice(0, 80)}'`);
    }
    headers.append(name, value);
  }
  return { method, target, minor: Number(minor), headers };
}

export function requestUrl(head: Head, local: Deno.NetAddr): URL {
  const base = `http://${
    local.hostname.includes(":") ? `[${local.hostname}]` : local.hostname
  }:${local.port}`;
  if (head.target.startsWith("/")) {
    // The Host header names the origin when it is a plain host[:port]; anything else is ignored.
    // Concatenated, not resolved: a target such as `//other.host/x` stays a path.
    const host = head.headers.get("host");
    const origin =
      host !== null && /^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host)
        ? `http://${host}`
        : base;
    try {
      return new URL(origin + head.target);
    } catch {
      throw new Refusal(400, `malformed request target '${head.target.slice(0, 80)}'`);
    }
  }
  if (/^https?:\/\//i.test(head.target)) {
    try {
      const url = new URL(head.target);
      return new URL(url.pathname + url.search, base);
    } catch { /* refused below */ }
  }
  throw new Refusal(400, `unsupported request target '${head.target.slice(0, 80)}'`);
}

/** Response framing the handler may not choose: the server sets these. */
export const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
  "date",
]);

/** Why a request body could not be read; `status` is the answer it deserves (400 or 408). */
export class BodyError extends Error {
  constructor(readonly status: 400 | 408, message: string) {
    super(message);
    this.name = "BodyError";
  }
}
