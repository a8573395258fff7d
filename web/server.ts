// HTTP/1.1 server plumbing shared by the predict API (web/serve.ts) and the web UI: a fetch-style
// handler (Request → Response) behind an accept loop of our own, so that no client can knock the
// process over. Deno.serve could not: it exits when accept() runs out of file descriptors, and it
// keeps header-only, slow-drip and stalled-upload connections open forever.
// - At most `maxConnections` connections: the next ones get a 503 and are closed.
// - accept() failing (EMFILE/ENFILE: out of descriptors) backs off and retries; never fatal.
// - Timeouts: `idleTimeoutMs` for the first byte of a request (new or kept-alive connection),
//   `headersTimeoutMs` for the whole head from its first byte (408), `bodyTimeoutMs` for the
//   whole body (the handler's body read fails with BodyError 408), `writeTimeoutMs` per write.
// - A client that closes mid-body makes the body read fail with BodyError 400: no 500, no log.
// - shutdown() stops accepting, lets requests in flight finish for `shutdownTimeoutMs`, then
//   closes every connection.

/** Limits of one server; every one has a default (DEFAULT_LIMITS). */
export interface ServerLimits {
  maxConnections: number;
  /** Wait for the first byte of a request, on a new or a kept-alive connection. */
  idleTimeoutMs: number;
  /** The request line and headers, from their first byte. */
  headersTimeoutMs: number;
  /** The whole request body, from the end of the headers. */
  bodyTimeoutMs: number;
  /** Each write of the response (a client that does not read is cut). */
  writeTimeoutMs: number;
  /** After shutdown(): how long requests in flight may take before their connections close. */
  shutdownTimeoutMs: number;
  /** Request line plus headers. */
  maxHeaderBytes: number;
}

export const DEFAULT_LIMITS: Readonly<ServerLimits> = {
  maxConnections: 512,
  idleTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  writeTimeoutMs: 30_000,
  shutdownTimeoutMs: 5_000,
  maxHeaderBytes: 16 * 1024,
};

/** Counters of what the server did, for tests and /health. */
export interface ServerStats {
  accepted: number;
  /** Connections open now. */
  open: number;
  /** Connections refused with 503 because `maxConnections` were open. */
  shed: number;
  /** accept() failures (out of file descriptors…) survived. */
  acceptErrors: number;
  requests: number;
  /** Requests refused before the handler: malformed, too large, unsupported. */
  rejected: number;
  /** Bodies whose client closed the connection before sending all of them. */
  aborted: number;
  timeouts: { idle: number; headers: number; body: number; write: number };
}

/** Why a request body could not be read; `status` is the answer it deserves (400 or 408). */
export class BodyError extends Error {
  constructor(readonly status: 400 | 408, message: string) {
    super(message);
    this.name = "BodyError";
  }
}

export type Handler = (
  request: Request,
  info: { remoteAddr: Deno.NetAddr },
) => Response | Promise<Response>;

export interface HttpServerOptions extends Partial<ServerLimits> {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  onListen?: (addr: Deno.NetAddr) => void;
  /** Operational warnings (accept failures, handler crashes), rate-limited; default console.error. */
  log?: (message: string) => void;
}

export interface HttpServer {
  readonly addr: Deno.NetAddr;
  readonly limits: Readonly<ServerLimits>;
  readonly stats: Readonly<ServerStats>;
  /** Resolves once the listener is closed and every connection is gone. */
  readonly finished: Promise<void>;
  /** Stops accepting; requests in flight get `shutdownTimeoutMs`, then everything closes. */
  shutdown(): Promise<void>;
}

const encoder = new TextEncoder();
const READ_CHUNK = 16 * 1024;
const MAX_HEADERS = 100;
/** Chunk-size lines and trailers of a chunked body. */
const MAX_CHUNK_LINE = 4096;
/** Bytes of a refused body read and dropped before closing, so the client sees the answer. */
const LINGER_BYTES = 1 << 20;
const LINGER_MS = 1_000;
/** Responses up to this size get a Content-Length; longer streams go out chunked. */
const BUFFERED_RESPONSE = 64 * 1024;
const ACCEPT_BACKOFF_MS = 100;
const WARNING_INTERVAL_MS = 10_000;

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
class Refusal extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

class Timeout extends Error {
  constructor(readonly phase: keyof ServerStats["timeouts"]) {
    super(`${phase} timeout`);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function errorBody(message: string): Uint8Array {
  return encoder.encode(JSON.stringify({ error: message }));
}

let dateCache = { second: -1, text: "" };
function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateCache.second) {
    dateCache = { second, text: new Date(second * 1000).toUTCString() };
  }
  return dateCache.text;
}

/** A complete response head; `fields` are already validated lower-case names and values. */
function responseHead(status: number, statusText: string, fields: [string, string][]): Uint8Array {
  let head = `HTTP/1.1 ${status} ${statusText || REASONS[status] || "Unknown"}\r\n`;
  for (const [name, value] of fields) head += `${name}: ${value}\r\n`;
  return encoder.encode(head + "\r\n");
}

/** A canned JSON error response that closes the connection. */
function closingResponse(status: number, message: string, extra: [string, string][] = []) {
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
function withTimeout<T>(
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

interface Head {
  method: string;
  target: string;
  minor: number;
  headers: Headers;
}

/** One client connection: reads requests, hands them to the handler, writes the answers. */
class Connection {
  #pending: Uint8Array = new Uint8Array(0);
  /** A read that lost a race against a timer: nothing may read after it. */
  #stale = false;
  #closed = false;
  /** Between requests (safe to close on shutdown). */
  idle = true;

  constructor(
    readonly conn: Deno.TcpConn,
    readonly server: Server,
  ) {}

  get limits(): ServerLimits {
    return this.server.limits;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* already gone */ }
  }

  /** More bytes into #pending; false at end of stream. Throws Timeout when `ms` runs out. */
  async #fill(ms: number, phase: Timeout["phase"]): Promise<boolean> {
    if (this.#stale || this.#closed) return false;
    const chunk = new Uint8Array(READ_CHUNK);
    let n: number | null;
    try {
      n = await withTimeout(this.conn.read(chunk), ms, phase);
    } catch (error) {
      if (error instanceof Timeout) {
        this.#stale = true;
        throw error;
      }
      return false; // reset, or closed under us: the same as the end of the stream
    }
    if (n === null) return false;
    this.#pending = concat(this.#pending, chunk.subarray(0, n));
    return true;
  }

  #take(n: number): Uint8Array {
    const out = this.#pending.subarray(0, n);
    this.#pending = this.#pending.subarray(n);
    return out;
  }

  async write(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      at += await withTimeout(
        this.conn.write(bytes.subarray(at)),
        this.limits.writeTimeoutMs,
        "write",
      );
    }
  }

  /** Writes a last answer (best effort), then closes, letting the client read it first. */
  async refuse(response: Uint8Array): Promise<void> {
    try {
      await this.write(response);
      await this.linger();
    } catch { /* the client is gone */ }
    this.close();
  }

  /**
   * Half-closes, then drops what the client still sends for a moment: closing a socket with
   * unread input resets it, and the client could lose the answer it was just sent.
   */
  async linger(): Promise<void> {
    if (this.#closed || this.#stale) return;
    try {
      await this.conn.closeWrite();
    } catch {
      return;
    }
    const deadline = Date.now() + LINGER_MS;
    let dropped = 0;
    while (dropped < LINGER_BYTES && Date.now() < deadline) {
      this.#pending = new Uint8Array(0);
      try {
        if (!(await this.#fill(deadline - Date.now(), "idle"))) return;
      } catch {
        return;
      }
      dropped += this.#pending.length;
    }
  }

  /** The request line and headers; null when the client closed or idled out between requests. */
  async readHead(): Promise<Head | null> {
    const { idleTimeoutMs, headersTimeoutMs, maxHeaderBytes } = this.limits;
    // Empty lines before a request line are ignored (RFC 9112 §2.2).
    const skipBlank = () => {
      let i = 0;
      while (this.#pending[i] === 0x0d || this.#pending[i] === 0x0a) i++;
      this.#take(i);
    };
    skipBlank();
    while (this.#pending.length === 0) {
      try {
        if (!(await this.#fill(idleTimeoutMs, "idle"))) return null;
      } catch (error) {
        if (error instanceof Timeout) this.server.stats.timeouts.idle++;
        return null;
      }
      skipBlank();
    }
    this.idle = false;
    const deadline = Date.now() + headersTimeoutMs;
    let end: number;
    while ((end = headEnd(this.#pending)) < 0) {
      if (this.#pending.length > maxHeaderBytes) {
        throw new Refusal(431, `the request head is over ${maxHeaderBytes} bytes`);
      }
      try {
        if (!(await this.#fill(deadline - Date.now(), "headers"))) return null;
      } catch (error) {
        if (!(error instanceof Timeout)) throw error;
        this.server.stats.timeouts.headers++;
        throw new Refusal(408, `the request head did not arrive within ${headersTimeoutMs} ms`);
      }
    }
    if (end > maxHeaderBytes) {
      throw new Refusal(431, `the request head is over ${maxHeaderBytes} bytes`);
    }
    return parseHead(this.#take(end));
  }

  /** The request body as a stream (null when it has none) and whether it was read to the end. */
  body(head: Head): { stream: ReadableStream<Uint8Array> | null; done: () => boolean } {
    const te = head.headers.get("transfer-encoding");
    const cl = head.headers.get("content-length");
    let remaining = 0;
    let chunked = false;
    if (te !== null) {
      if (cl !== null) {
        throw new Refusal(400, "both Transfer-Encoding and Content-Length are set");
      }
      if (te.trim().toLowerCase() !== "chunked") {
        throw new Refusal(501, `Transfer-Encoding '${te}' is not supported (only chunked)`);
      }
      chunked = true;
    } else if (cl !== null) {
      // Repeated headers arrive joined by ", "; all copies must agree.
      const values = new Set(cl.split(",").map((v) => v.trim()));
      const [value] = values;
      if (values.size !== 1 || !/^\d{1,15}$/.test(value)) {
        throw new Refusal(400, `invalid Content-Length '${cl}'`);
      }
      remaining = Number(value);
    }
    if (!chunked && remaining === 0) return { stream: null, done: () => true };

    const expect = head.headers.get("expect");
    if (expect !== null && expect.toLowerCase() !== "100-continue") {
      throw new Refusal(417, `Expect '${expect}' is not supported`);
    }
    let continued = expect === null || head.minor === 0;
    let finished = false;
    let started = 0;
    const deadline = () => started + this.limits.bodyTimeoutMs - Date.now();
    const need = async (): Promise<void> => {
      if (!continued) {
        continued = true;
        if (this.#pending.length === 0) {
          await this.write(encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
        }
      }
      let more: boolean;
      try {
        more = await this.#fill(deadline(), "body");
      } catch (error) {
        if (!(error instanceof Timeout)) throw error;
        this.server.stats.timeouts.body++;
        throw new BodyError(
          408,
          `the request body did not arrive within ${this.limits.bodyTimeoutMs} ms`,
        );
      }
      if (!more) {
        this.server.stats.aborted++;
        throw new BodyError(400, "the client closed the connection before the body was complete");
      }
    };
    const line = async (): Promise<string> => {
      let lf: number;
      while ((lf = this.#pending.indexOf(0x0a)) < 0) {
        if (this.#pending.length > MAX_CHUNK_LINE) {
          throw new BodyError(400, "malformed chunked body (line too long)");
        }
        await need();
      }
      const bytes = this.#take(lf + 1);
      return new TextDecoder("latin1").decode(bytes).replace(/\r?\n$/, "");
    };
    let trailerBytes = 0;
    const next = async (): Promise<Uint8Array | null> => {
      if (!chunked) {
        if (remaining === 0) return null;
        if (this.#pending.length === 0) await need();
        const out = this.#take(Math.min(remaining, this.#pending.length));
        remaining -= out.length;
        return out;
      }
      if (remaining === 0) {
        const size = /^([0-9a-fA-F]{1,12})(?:[ \t]*;.*)?$/.exec(await line());
        if (!size) throw new BodyError(400, "malformed chunked body (bad chunk size)");
        remaining = parseInt(size[1], 16);
        if (remaining === 0) {
          for (let trailer = await line(); trailer !== ""; trailer = await line()) {
            trailerBytes += trailer.length;
            if (trailerBytes > this.limits.maxHeaderBytes) {
              throw new BodyError(400, "the chunked body's trailers are too large");
            }
          }
          return null;
        }
      }
      if (this.#pending.length === 0) await need();
      const out = this.#take(Math.min(remaining, this.#pending.length));
      remaining -= out.length;
      if (remaining === 0) {
        while (this.#pending.length < 2) await need();
        if (this.#pending[0] === 0x0a) this.#take(1);
        else if (this.#pending[0] === 0x0d && this.#pending[1] === 0x0a) this.#take(2);
        else throw new BodyError(400, "malformed chunked body (no CRLF after a chunk)");
      }
      return out;
    };
    const stream = new ReadableStream<Uint8Array>({
      start: () => {
        started = Date.now();
      },
      pull: async (controller) => {
        try {
          let chunk: Uint8Array | null;
          do chunk = await next(); while (chunk !== null && chunk.length === 0);
          if (chunk === null) {
            finished = true;
            controller.close();
          } else controller.enqueue(chunk.slice());
        } catch (error) {
          controller.error(
            error instanceof BodyError ? error : new BodyError(
              400,
              `the request body could not be read: ${(error as Error).message}`,
            ),
          );
        }
      },
    }, { highWaterMark: 0 });
    return { stream, done: () => finished };
  }
}

/** Index just past the blank line that ends a request head, or -1. */
function headEnd(bytes: Uint8Array): number {
  for (let i = bytes.indexOf(0x0a); i >= 0; i = bytes.indexOf(0x0a, i + 1)) {
    if (bytes[i + 1] === 0x0a) return i + 2;
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

function parseHead(bytes: Uint8Array): Head {
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

function requestUrl(head: Head, local: Deno.NetAddr): URL {
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
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
  "date",
]);

class Server implements HttpServer {
  readonly addr: Deno.NetAddr;
  readonly limits: ServerLimits;
  readonly stats: ServerStats = {
    accepted: 0,
    open: 0,
    shed: 0,
    acceptErrors: 0,
    requests: 0,
    rejected: 0,
    aborted: 0,
    timeouts: { idle: 0, headers: 0, body: 0, write: 0 },
  };
  readonly finished: Promise<void>;
  readonly #listener: Deno.TcpListener;
  readonly #handler: Handler;
  readonly #log: (message: string) => void;
  readonly #connections = new Set<Connection>();
  #closing = false;
  #lastWarning = new Map<string, number>();
  /** Wakes the accept loop's back-off when a connection closes. */
  #freed: (() => void) | null = null;
  #allClosed: (() => void) | null = null;

  constructor(options: HttpServerOptions, handler: Handler) {
    const { hostname, port, onListen, log, ...limits } = options;
    this.limits = { ...DEFAULT_LIMITS };
    for (const [key, value] of Object.entries(limits) as [keyof ServerLimits, number][]) {
      if (value === undefined) continue;
      if (!(key in DEFAULT_LIMITS) || !Number.isInteger(value) || value < 1) {
        throw new Error(`listenHttp: ${key} ${value}, expected an integer ≥ 1`);
      }
      this.limits[key] = value;
    }
    this.#handler = handler;
    this.#log = log ?? ((message) => console.error(message));
    this.#listener = Deno.listen({ hostname, port, transport: "tcp" });
    this.addr = this.#listener.addr;
    onListen?.(this.addr);
    this.finished = this.#acceptLoop();
  }

  #warn(kind: string, message: string): void {
    const now = Date.now();
    if (now - (this.#lastWarning.get(kind) ?? -Infinity) < WARNING_INTERVAL_MS) return;
    this.#lastWarning.set(kind, now);
    this.#log(message);
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#closing) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closing) break;
        // Out of descriptors (or any other accept failure): the pending connection waits in the
        // kernel's backlog; retry once a connection closes or after a short pause.
        this.stats.acceptErrors++;
        this.#warn(
          "accept",
          `server: accept failed (${(error as Error).message}); ${this.stats.open} connections ` +
            "open, retrying",
        );
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ACCEPT_BACKOFF_MS);
          this.#freed = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.#freed = null;
        continue;
      }
      this.stats.accepted++;
      if (this.#closing) {
        conn.close();
        break;
      }
      const connection = new Connection(conn, this);
      if (this.#connections.size >= this.limits.maxConnections) {
        this.stats.shed++;
        this.#warn("shed", `server: ${this.#connections.size} connections open; shedding new ones`);
        connection.refuse(
          closingResponse(503, "the server is at its connection limit; retry shortly", [
            ["retry-after", "1"],
          ]),
        );
        continue;
      }
      this.#track(connection);
      this.#serve(connection).catch(() => {}).finally(() => this.#untrack(connection));
    }
    if (this.#connections.size > 0) {
      await new Promise<void>((resolve) => this.#allClosed = resolve);
    }
  }

  #track(connection: Connection): void {
    this.#connections.add(connection);
    this.stats.open = this.#connections.size;
  }

  #untrack(connection: Connection): void {
    connection.close();
    this.#connections.delete(connection);
    this.stats.open = this.#connections.size;
    this.#freed?.();
    if (this.#connections.size === 0) this.#allClosed?.();
  }

  async #serve(connection: Connection): Promise<void> {
    try {
      connection.conn.setNoDelay(true);
    } catch { /* not a TCP socket any more */ }
    for (;;) {
      let keepAlive: boolean;
      try {
        const head = await connection.readHead();
        if (head === null) return;
        keepAlive = await this.#exchange(connection, head);
      } catch (error) {
        if (error instanceof Refusal) {
          this.stats.rejected++;
          await connection.refuse(closingResponse(error.status, error.message));
        } else if (error instanceof Timeout) {
          this.stats.timeouts[error.phase]++;
        }
        return;
      }
      connection.idle = true;
      if (!keepAlive || this.#closing) {
        await connection.linger();
        return;
      }
    }
  }

  /** One request and its response; resolves with whether the connection can take another. */
  async #exchange(connection: Connection, head: Head): Promise<boolean> {
    this.stats.requests++;
    const url = requestUrl(head, this.addr);
    const body = connection.body(head);
    const noBody = head.method === "GET" || head.method === "HEAD";
    let request: Request;
    try {
      request = new Request(url, {
        method: head.method,
        headers: head.headers,
        body: noBody ? null : body.stream,
      });
    } catch (error) {
      throw new Refusal(400, `malformed request: ${(error as Error).message}`);
    }
    let response: Response;
    try {
      response = await this.#handler(request, { remoteAddr: connection.conn.remoteAddr });
      if (!(response instanceof Response)) throw new Error("the handler did not return a Response");
    } catch (error) {
      this.#warn(
        "handler",
        `server: ${head.method} ${url.pathname} failed: ${(error as Error).message}`,
      );
      response = new Response(
        JSON.stringify({ error: `internal error: ${(error as Error).message}` }),
        {
          status: 500,
          headers: { "content-type": "application/json; charset=utf-8" },
        },
      );
    }
    const connectionHeader = head.headers.get("connection")?.toLowerCase() ?? "";
    const keepAlive = !this.#closing && body.done() &&
      (head.minor === 1
        ? !/\bclose\b/.test(connectionHeader)
        : /\bkeep-alive\b/.test(connectionHeader));
    await this.#writeResponse(connection, head, response, keepAlive);
    return keepAlive;
  }

  async #writeResponse(
    connection: Connection,
    head: Head,
    response: Response,
    keepAlive: boolean,
  ): Promise<void> {
    const fields: [string, string][] = [];
    for (const [name, value] of response.headers) {
      if (!HOP_BY_HOP.has(name)) fields.push([name, value]);
    }
    fields.push(["date", httpDate()]);
    if (!keepAlive) fields.push(["connection", "close"]);
    else if (head.minor === 0) fields.push(["connection", "keep-alive"]);
    const status = response.status;
    const bodiless = head.method === "HEAD" || status === 204 || status === 304 || status < 200;
    if (bodiless || response.body === null) {
      await response.body?.cancel().catch(() => {});
      if (!bodiless || head.method === "HEAD") {
        const declared = response.headers.get("content-length");
        if (head.method !== "HEAD") fields.push(["content-length", "0"]);
        else if (declared !== null) fields.push(["content-length", declared]);
      }
      await connection.write(responseHead(status, response.statusText, fields));
      return;
    }
    // Buffer a first stretch: most answers are small and get a Content-Length.
    const reader = response.body.getReader();
    const buffered: Uint8Array[] = [];
    let size = 0;
    let ended = false;
    try {
      while (size <= BUFFERED_RESPONSE) {
        const { done, value } = await reader.read();
        if (done) {
          ended = true;
          break;
        }
        buffered.push(value);
        size += value.length;
      }
      if (ended) {
        fields.push(["content-length", String(size)]);
        const out = new Uint8Array(size);
        let at = 0;
        for (const chunk of buffered) {
          out.set(chunk, at);
          at += chunk.length;
        }
        await connection.write(concat(responseHead(status, response.statusText, fields), out));
        return;
      }
      // A long stream: chunked on HTTP/1.1, delimited by the close on HTTP/1.0.
      const chunked = head.minor === 1;
      if (chunked) fields.push(["transfer-encoding", "chunked"]);
      else if (keepAlive) {
        fields.splice(fields.findIndex(([n]) => n === "connection"), 1, ["connection", "close"]);
      }
      await connection.write(responseHead(status, response.statusText, fields));
      const send = (chunk: Uint8Array) =>
        connection.write(
          chunked
            ? concat(
              concat(encoder.encode(`${chunk.length.toString(16)}\r\n`), chunk),
              encoder.encode("\r\n"),
            )
            : chunk,
        );
      for (const chunk of buffered) await send(chunk);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (value.length > 0) await send(value);
      }
      if (chunked) await connection.write(encoder.encode("0\r\n\r\n"));
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  async shutdown(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      try {
        this.#listener.close();
      } catch { /* already closed */ }
      this.#freed?.();
      // Connections between requests go now; the others once their request is answered.
      for (const connection of this.#connections) if (connection.idle) connection.close();
      const timer = setTimeout(() => {
        for (const connection of this.#connections) connection.close();
      }, this.limits.shutdownTimeoutMs);
      this.finished.finally(() => clearTimeout(timer));
    }
    await this.finished;
  }
}

/** Listens on `hostname:port` and answers every request with `handler`. */
export function listenHttp(options: HttpServerOptions, handler: Handler): HttpServer {
  return new Server(options, handler);
}
