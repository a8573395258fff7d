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
import { Connection } from "./http_connection.ts";
import {
  closingResponse,
  concat,
  encoder,
  type Head,
  HOP_BY_HOP,
  httpDate,
  Refusal,
  requestUrl,
  responseHead,
  Timeout,
} from "./http_wire.ts";

export { BodyError } from "./http_wire.ts";

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

/** Responses up to this size get a Content-Length; longer streams go out chunked. */
const BUFFERED_RESPONSE = 64 * 1024;
const ACCEPT_BACKOFF_MS = 100;
const WARNING_INTERVAL_MS = 10_000;

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
