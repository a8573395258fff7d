// `deno task serve [--model PATH] [--port 5000] [--host 127.0.0.1] [--max-batch 64]
// [--max-wait-ms 2] [--allow-non-finite] [server limits]`: the predict API of web/predict.ts on
// the shared server plumbing of web/server.ts (connection cap, timeouts, shutdown deadline). The
// model is loaded (and run once on a blank image, which also compiles its kernels) before the
// socket opens; a missing or unusable model file exits with status 1 and says why. Exit 2: bad
// command line.
import { parseArgs } from "node:util";
import { init } from "../engine/tensor.ts";
import { engineOptionsFromEnv } from "../host/env.ts";
import { createHandler, MicroBatcher, Predictor } from "./predict.ts";
import { DEFAULT_LIMITS, type HttpServer, listenHttp, type ServerLimits } from "./server.ts";

export const DEFAULT_MODEL = "models/mnist-model.safetensors";

/** Server limits settable from the command line: flag → ServerLimits field. */
const LIMIT_FLAGS = {
  "max-connections": "maxConnections",
  "idle-timeout-ms": "idleTimeoutMs",
  "header-timeout-ms": "headersTimeoutMs",
  "body-timeout-ms": "bodyTimeoutMs",
  "write-timeout-ms": "writeTimeoutMs",
  "shutdown-timeout-ms": "shutdownTimeoutMs",
} as const satisfies Record<string, keyof ServerLimits>;
type LimitFlag = keyof typeof LIMIT_FLAGS;

const USAGE = `usage: deno task serve [--model PATH] [--port N] [--host ADDR] [--max-batch N]
                        [--max-wait-ms N] [--allow-non-finite] [--max-connections N]
                        [--idle-timeout-ms N] [--header-timeout-ms N] [--body-timeout-ms N]
                        [--write-timeout-ms N] [--shutdown-timeout-ms N]
  --model        a model saved by saveModel (default ${DEFAULT_MODEL},
                 written by \`deno task train tp1\`); the serve task may read models/ only
  --port         TCP port, 0 picks a free one (default 5000)
  --host         address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)
  --max-batch    most requests per forward pass (default 64)
  --max-wait-ms  how long a lone request waits for others to batch with (default 2)
  --allow-non-finite     serve weights that hold NaN or Infinity (debugging; refused otherwise)
  --max-connections      open connections; more get 503 (default ${DEFAULT_LIMITS.maxConnections})
  --idle-timeout-ms      wait for a request to start (default ${DEFAULT_LIMITS.idleTimeoutMs})
  --header-timeout-ms    request line + headers, from their first byte (default ${DEFAULT_LIMITS.headersTimeoutMs})
  --body-timeout-ms      the whole request body (default ${DEFAULT_LIMITS.bodyTimeoutMs})
  --write-timeout-ms     each write of a response (default ${DEFAULT_LIMITS.writeTimeoutMs})
  --shutdown-timeout-ms  after SIGINT/SIGTERM, for requests in flight (default ${DEFAULT_LIMITS.shutdownTimeoutMs})`;

export interface ServeOptions {
  modelPath: string;
  port: number;
  host: string;
  maxBatch: number;
  maxWaitMs: number;
  /** Serve weights holding NaN or Infinity instead of refusing the model (debugging). */
  allowNonFinite?: boolean;
  /** Server limits; absent ones take web/server.ts's defaults. */
  limits?: Partial<ServerLimits>;
}

function integerFlag(flag: string, text: string | undefined, fallback: number, max: number) {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > max) {
    throw new Error(`--${flag} ${text}: expected an integer from 0 to ${max}`);
  }
  return n;
}

/** Parses the command line; throws an Error with the problem (the caller adds the usage). */
export function parseServeArgs(argv: string[]): ServeOptions & { help: boolean } {
  const limitOptions = Object.fromEntries(
    Object.keys(LIMIT_FLAGS).map((flag) => [flag, { type: "string" as const }]),
  ) as Record<LimitFlag, { type: "string" }>;
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: "string", default: DEFAULT_MODEL },
      port: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      "max-batch": { type: "string" },
      "max-wait-ms": { type: "string" },
      "allow-non-finite": { type: "boolean", default: false },
      ...limitOptions,
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (positionals.length > 0) throw new Error(`unexpected argument '${positionals[0]}'`);
  const maxBatch = integerFlag("max-batch", values["max-batch"], 64, 4096);
  if (maxBatch < 1) throw new Error("--max-batch 0: expected at least 1");
  const limits: Partial<ServerLimits> = {};
  for (const [flag, field] of Object.entries(LIMIT_FLAGS) as [LimitFlag, keyof ServerLimits][]) {
    const text = values[flag];
    if (text === undefined) continue;
    const n = integerFlag(flag, text, 0, 86_400_000);
    if (n < 1) throw new Error(`--${flag} 0: expected at least 1`);
    limits[field] = n;
  }
  return {
    modelPath: values.model,
    port: integerFlag("port", values.port, 5000, 65535),
    host: values.host,
    maxBatch,
    maxWaitMs: integerFlag("max-wait-ms", values["max-wait-ms"], 2, 1000),
    allowNonFinite: values["allow-non-finite"],
    limits,
    help: values.help,
  };
}

export interface RunningServer {
  server: HttpServer;
  /** The bound port (useful with port 0). */
  port: number;
  predictor: Predictor;
  batcher: MicroBatcher;
}

/** Loads the model, then listens. Throws an Error saying what is wrong with the model file. */
export async function startServer(
  options: ServeOptions,
  { quiet = false } = {},
): Promise<RunningServer> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(options.modelPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new Error(
        `no permission to read the model file '${options.modelPath}': the serve task may read ` +
          `models/ only; put the model there, or run \`deno run --allow-read=PATH ` +
          `--allow-net=HOST web/serve.ts --model PATH\``,
      );
    }
    const reason = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new Error(
      `cannot read the model file '${options.modelPath}' (${reason}); train it with ` +
        `\`deno task train tp1\` (writes ${DEFAULT_MODEL}) or pass --model PATH`,
    );
  }
  const rt = await init(engineOptionsFromEnv());
  let predictor: Predictor;
  try {
    predictor = Predictor.load(bytes, options.modelPath, {
      allowNonFinite: options.allowNonFinite,
    });
  } catch (e) {
    const message = (e as Error).message;
    if (!/ non-finite value/.test(message)) throw e;
    throw new Error(`${message}\nTo serve it anyway (debugging), pass --allow-non-finite.`);
  }
  const batcher = new MicroBatcher(
    (pixels, rows) => predictor.predict(pixels, rows),
    predictor.info.input_shape[0],
    predictor.classes,
    { maxBatch: options.maxBatch, maxWaitMs: options.maxWaitMs },
  );
  const { vendor, architecture, device, description } = rt.ctx.report;
  const handler = createHandler(predictor, batcher, {
    health: { adapter: { vendor, architecture, device, description } },
  });
  let server: HttpServer;
  try {
    server = listenHttp({
      hostname: options.host,
      port: options.port,
      ...options.limits,
      onListen: ({ hostname, port }) => {
        if (quiet) return;
        console.log(
          `serving ${options.modelPath} (${predictor.info.params} params) on ` +
            `http://${hostname}:${port} — POST /predict, GET /health`,
        );
      },
    }, handler);
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new Error(
        `no permission to listen on ${options.host}:${options.port}: the serve task may listen ` +
          `on 127.0.0.1 and 0.0.0.0; for another address run \`deno run --allow-net=HOST ` +
          `--allow-read=models web/serve.ts --host HOST\``,
      );
    }
    throw new Error(`cannot listen on ${options.host}:${options.port}: ${(e as Error).message}`);
  }
  return { server, port: server.addr.port, predictor, batcher };
}

export async function main(argv: string[]): Promise<number> {
  let options;
  try {
    options = parseServeArgs(argv);
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  let running: RunningServer;
  try {
    running = await startServer(options);
  } catch (e) {
    console.error(`serve: ${(e as Error).message}`);
    return 1;
  }
  // As PID 1 in a container no default signal action applies: stop on our own. Requests in
  // flight get the shutdown deadline; a second signal exits at once.
  let signalled = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      if (signalled) Deno.exit(128 + (signal === "SIGINT" ? 2 : 15));
      signalled = true;
      running.server.shutdown();
    });
  }
  await running.server.finished;
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
