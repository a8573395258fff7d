// One client connection of web/server.ts: reads requests off the socket under the server's
// timeouts, hands each to the handler and writes the answer (buffered or chunked).
import {
  BodyError,
  concat,
  encoder,
  type Head,
  headEnd,
  parseHead,
  Refusal,
  Timeout,
  withTimeout,
} from "./http_wire.ts";
import type { ServerLimits, ServerStats } from "./server.ts";

const READ_CHUNK = 16 * 1024;
/** Chunk-size lines and trailers of a chunked body. */
const MAX_CHUNK_LINE = 4096;
/** Bytes of a refused body read and dropped before closing, so the client sees the answer. */
const LINGER_BYTES = 1 << 20;
const LINGER_MS = 1_000;

/** What a connection reads from its server: the limits it runs under, the counters it bumps. */
export interface ConnectionOwner {
  readonly limits: ServerLimits;
  readonly stats: ServerStats;
}

/** One client connection: reads requests, hands them to the handler, writes the answers. */
export class Connection {
  #pending: Uint8Array = new Uint8Array(0);
  /** A read that lost a race against a timer: nothing may read after it. */
  #stale = false;
  #closed = false;
  /** Between requests (safe to close on shutdown). */
  idle = true;

  constructor(
    readonly conn: Deno.TcpConn,
    readonly server: ConnectionOwner,
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
