// The shared server plumbing (web/server.ts) on raw sockets: HTTP/1.1 framing (keep-alive,
// pipelining, chunked bodies, Expect: 100-continue, HEAD), and everything a hostile or careless
// client can do — drip the head a byte at a time, stall an upload, vanish mid-body, hold more
// connections than allowed, send garbage — answered with the right status or a close, never a
// crash. Timers here only bound hangs (HANG_MS); assertions count statuses and events.
import assert from "node:assert/strict";
import { Rng } from "../engine/random.ts";
import { BodyError, type HttpServer, listenHttp, type ServerLimits } from "../web/server.ts";

/** Bounds a test that would otherwise hang; no assertion depends on it. */
const HANG_MS = 20_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Echoes what it received: method, path, body length and text (reading the body as JSON does). */
async function echo(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (url.pathname === "/boom") throw new Error("handler exploded");
  if (url.pathname === "/big") return new Response("x".repeat(200_000));
  let text = "";
  try {
    text = request.body ? await request.text() : "";
  } catch (e) {
    const status = e instanceof BodyError ? e.status : 500;
    return Response.json({ error: (e as Error).message }, { status });
  }
  return Response.json({
    method: request.method,
    path: url.pathname + url.search,
    bytes: encoder.encode(text).length,
    text: text.slice(0, 100),
  });
}

function start(limits: Partial<ServerLimits> = {}, log: string[] = []): HttpServer {
  return listenHttp(
    { hostname: "127.0.0.1", port: 0, ...limits, log: (m) => log.push(m) },
    echo,
  );
}

function connect(server: HttpServer): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
}

async function send(conn: Deno.Conn, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}

/** Everything the server sends until it closes the connection (bounded by HANG_MS). */
async function readToClose(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const timer = setTimeout(() => conn.close(), HANG_MS);
  try {
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
  return chunks.map((c) => decoder.decode(c)).join("");
}

/** Status codes of every response in a byte stream of pipelined responses. */
function statuses(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

function request(method: string, path: string, body = "", extra = ""): string {
  return `${method} ${path} HTTP/1.1\r\nhost: test\r\ncontent-length: ${
    encoder.encode(body).length
  }\r\n${extra}\r\n${body}`;
}

Deno.test("server: keep-alive, pipelining, chunked bodies, Expect: 100-continue, HEAD, big answers", async () => {
  const server = start();
  try {
    // Three pipelined requests on one connection, the last one closing it.
    const conn = await connect(server);
    await send(
      conn,
      request("POST", "/a?x=1", '{"k": 1}') + request("GET", "/b") +
        request("POST", "/c", "é", "connection: close\r\n"),
    );
    const text = await readToClose(conn);
    assert.deepEqual(statuses(text), [200, 200, 200]);
    assert.match(text, /"path":"\/a\?x=1","bytes":8/);
    assert.match(text, /"method":"GET","path":"\/b","bytes":0/);
    assert.match(text, /"bytes":2,"text":"é"/);
    assert.match(text, /connection: close/);

    // Chunked upload (what fetch sends for a stream body), with an extension and a trailer.
    const chunked = await connect(server);
    await send(
      chunked,
      "POST /up HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n" +
        "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\ntrailer: x\r\n\r\n",
    );
    assert.match(await readToClose(chunked), /200 OK[\s\S]*"bytes":11,"text":"hello world"/);

    // Expect: 100-continue gets its interim answer before the body is sent.
    const expecting = await connect(server);
    await send(
      expecting,
      "POST /e HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\nexpect: 100-continue\r\n" +
        "connection: close\r\n\r\n",
    );
    const buf = new Uint8Array(100);
    const n = await expecting.read(buf);
    assert.match(decoder.decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 100 Continue\r\n\r\n/);
    await send(expecting, "{}");
    assert.deepEqual(statuses(await readToClose(expecting)), [200]);

    // fetch: HEAD has no body; a 200 KB answer streams out chunked and arrives whole.
    const base = `http://127.0.0.1:${server.addr.port}`;
    const head = await fetch(`${base}/h`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    const big = await fetch(`${base}/big`);
    assert.equal((await big.text()).length, 200_000);
    const posted = await fetch(`${base}/p`, { method: "POST", body: "x".repeat(100_000) });
    assert.equal((await posted.json()).bytes, 100_000);
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: malformed heads get their 4xx/5xx and a close; a crashing handler a 500", async () => {
  const log: string[] = [];
  const server = start({ maxHeaderBytes: 1024 }, log);
  const cases: [string, number][] = [
    ["GARBAGE\r\n\r\n", 400],
    ["GET / HTTP/2.0\r\n\r\n", 505],
    ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505],
    ["GET / HTTP/1.1\r\nbad header\r\n\r\n", 400],
    ["GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400],
    [`GET / HTTP/1.1\r\nx: ${"a".repeat(2000)}\r\n\r\n`, 431],
    ["POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab", 400],
    ["POST / HTTP/1.1\r\ncontent-length: -1\r\n\r\n", 400],
    ["POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n", 400],
    ["POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n", 501],
    ["POST / HTTP/1.1\r\ncontent-length: 2\r\nexpect: magic\r\n\r\n{}", 417],
    ["GET * HTTP/1.1\r\n\r\n", 400],
    ["POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", 400],
    ["GET /boom HTTP/1.1\r\nconnection: close\r\n\r\n", 500],
  ];
  try {
    for (const [raw, status] of cases) {
      const conn = await connect(server);
      await send(conn, raw);
      const text = await readToClose(conn);
      assert.deepEqual(statuses(text), [status], JSON.stringify(raw));
      assert.match(text, /\r\n\r\n\{"error":"/, JSON.stringify(raw));
    }
    assert.ok(log.some((l) => /GET \/boom failed: handler exploded/.test(l)), log.join("\n"));
    // Still serving.
    const ok = await fetch(`http://127.0.0.1:${server.addr.port}/after`);
    assert.equal((await ok.json()).path, "/after");
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: a slow-drip head, an idle socket and a stalled upload are cut after their timeouts", async () => {
  const server = start({ headersTimeoutMs: 300, idleTimeoutMs: 300, bodyTimeoutMs: 300 });
  try {
    // One byte of the head every 50 ms, forever: 408 once the head's 300 ms are spent.
    const drip = await connect(server);
    const line = "GET /slow HTTP/1.1\r\nx-padding: " + "a".repeat(10_000);
    await send(drip, line[0]); // at once: the head's clock starts, not the idle one
    let stop = false;
    const dripping = (async () => {
      for (let i = 1; i < line.length && !stop; i++) {
        await new Promise((r) => setTimeout(r, 50));
        await send(drip, line[i]).catch(() => stop = true);
      }
    })();
    const dripped = await readToClose(drip);
    stop = true;
    await dripping;
    assert.deepEqual(statuses(dripped), [408]);
    assert.match(dripped, /did not arrive within 300 ms/);

    // Connected, silent: closed without an answer.
    const idle = await connect(server);
    assert.equal(await readToClose(idle), "");

    // Head complete, 10 of 1,000 body bytes, then nothing: the body read fails with 408.
    const stalled = await connect(server);
    await send(stalled, "POST /upload HTTP/1.1\r\ncontent-length: 1000\r\n\r\n0123456789");
    const answer = await readToClose(stalled);
    assert.deepEqual(statuses(answer), [408]);
    assert.match(answer, /the request body did not arrive within 300 ms/);
    assert.match(answer, /connection: close/);

    assert.deepEqual(server.stats.timeouts, { idle: 1, headers: 1, body: 1, write: 0 });
    assert.equal(server.stats.open, 0);
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: a client that vanishes mid-body is a quiet 400, counted, never logged", async () => {
  const log: string[] = [];
  const seen: unknown[] = [];
  const server = listenHttp(
    { hostname: "127.0.0.1", port: 0, log: (m) => log.push(m) },
    async (r) => {
      try {
        await r.arrayBuffer();
      } catch (e) {
        seen.push(e);
        return new Response(null, { status: (e as BodyError).status });
      }
      return new Response("ok");
    },
  );
  try {
    for (let i = 0; i < 5; i++) {
      const conn = await connect(server);
      await send(conn, "POST / HTTP/1.1\r\ncontent-length: 5000\r\n\r\n" + "x".repeat(100));
      conn.close();
    }
    // The handler saw every abort; wait for the last one (bounded).
    const until = Date.now() + HANG_MS;
    while (seen.length < 5 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(seen.length, 5);
    for (const e of seen) {
      assert.ok(e instanceof BodyError && e.status === 400, String(e));
      assert.match((e as Error).message, /closed the connection before the body was complete/);
    }
    assert.equal(server.stats.aborted, 5);
    assert.deepEqual(log, []);
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: past maxConnections new connections get 503; freed slots serve again", async () => {
  const server = start({ maxConnections: 4, idleTimeoutMs: 60_000 });
  const held: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const conn = await connect(server);
      // A partial head: each of these connections is open and in a request.
      await send(conn, "GET /held HTTP/1.1\r\n");
      held.push(conn);
    }
    const until = Date.now() + HANG_MS;
    while (server.stats.open < 4 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    const extra = await connect(server);
    await send(extra, "GET / HTTP/1.1\r\n\r\n");
    const shed = await readToClose(extra);
    assert.deepEqual(statuses(shed), [503]);
    assert.match(shed, /retry-after: 1/);
    assert.equal(server.stats.shed, 1);
    // Finishing the held requests frees their slots.
    for (const conn of held) {
      await send(conn, "connection: close\r\n\r\n");
      assert.deepEqual(statuses(await readToClose(conn)), [200]);
    }
    const after = await fetch(`http://127.0.0.1:${server.addr.port}/after`);
    assert.equal(after.status, 200);
    await after.body?.cancel();
  } finally {
    for (const conn of held) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    await server.shutdown();
  }
});

Deno.test("server: shutdown closes idle connections now and stalled ones at the deadline", async () => {
  let reading!: () => void;
  const handlerReads = new Promise<void>((resolve) => reading = resolve);
  const outcome: string[] = [];
  const server = listenHttp({
    hostname: "127.0.0.1",
    port: 0,
    shutdownTimeoutMs: 300,
    idleTimeoutMs: 60_000,
    bodyTimeoutMs: 60_000,
  }, async (r) => {
    reading();
    try {
      await r.arrayBuffer();
      outcome.push("read");
    } catch (e) {
      outcome.push((e as Error).message);
    }
    return new Response("late");
  });
  const idle = await connect(server);
  const stalled = await connect(server);
  await send(stalled, "POST /upload HTTP/1.1\r\ncontent-length: 1000\r\n\r\n0123");
  await handlerReads;
  const until = Date.now() + HANG_MS;
  while (server.stats.open < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  assert.equal(server.stats.open, 2);
  // The stalled body's handler is waiting: shutdown must not wait for it past the deadline.
  await server.shutdown();
  assert.equal(server.stats.open, 0);
  assert.equal(await readToClose(idle), "");
  assert.equal(await readToClose(stalled), "");
  assert.deepEqual(outcome, [
    "the client closed the connection before the body was complete",
  ]);
  await assert.rejects(connect(server));
});

Deno.test("server: 400 seeded garbage and mutated requests: every connection ends, serving goes on", async () => {
  const server = start({ headersTimeoutMs: 500, idleTimeoutMs: 500, bodyTimeoutMs: 500 });
  const rng = new Rng(99);
  const pick = <T>(items: readonly T[]): T => items[rng.int(items.length)];
  const valid = request("POST", "/ok", '{"image": [1, 2, 3]}', "connection: close\r\n");
  try {
    for (let round = 0; round < 8; round++) {
      await Promise.all(Array.from({ length: 50 }, async () => {
        let bytes: Uint8Array;
        const kind = rng.int(5);
        if (kind === 0) {
          bytes = new Uint8Array(rng.int(300));
          for (let i = 0; i < bytes.length; i++) bytes[i] = rng.int(256);
        } else if (kind === 1) bytes = encoder.encode(valid.slice(0, rng.int(valid.length)));
        else if (kind === 2) {
          const at = rng.int(valid.length);
          bytes = encoder.encode(
            valid.slice(0, at) + pick(["\r\n", "\n", ":", " ", "\0", "\r\n\r\n", "chunked"]) +
              valid.slice(at),
          );
        } else if (kind === 3) {
          bytes = encoder.encode(valid.replace(
            /content-length: \d+/,
            pick([
              "content-length: 99999999999",
              "content-length: 1e3",
              "transfer-encoding: chunked",
              "content-length: 5, 6",
            ]),
          ));
        } else bytes = encoder.encode(valid);
        const conn = await connect(server);
        await send(conn, bytes).catch(() => {});
        const text = await readToClose(conn);
        for (const status of statuses(text)) assert.ok(status !== 500, text);
      }));
    }
    const after = await fetch(`http://127.0.0.1:${server.addr.port}/after`);
    assert.equal((await after.json()).path, "/after");
  } finally {
    await server.shutdown();
  }
});
