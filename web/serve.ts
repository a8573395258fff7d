// `deno task serve [--model PATH] [--port 5000] [--host 127.0.0.1] [--max-batch 64]
// [--max-wait-ms 2]`: the predict API of web/predict.ts on Deno.serve. The model is loaded (and
// run once on a blank image, which also compiles its kernels) before the socket opens; a
// missing or unusable model file exits with status 1 and says why. Exit 2: bad command line.
import { parseArgs } from "node:util";
import { init } from "../engine/tensor.ts";
import { engineOptionsFromEnv } from "../host/env.ts";
import { createHandler, MicroBatcher, Predictor } from "./predict.ts";

export const DEFAULT_MODEL = "models/mnist-model.safetensors";

const USAGE = `usage: deno task serve [--model PATH] [--port N] [--host ADDR] [--max-batch N]
                        [--max-wait-ms N]
  --model        a model saved by saveModel (default ${DEFAULT_MODEL},
                 written by \`deno task train tp1\`)
  --port         TCP port, 0 picks a free one (default 5000)
  --host         address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)
  --max-batch    most requests per forward pass (default 64)
  --max-wait-ms  how long a lone request waits for others to batch with (default 2)`;

export interface ServeOptions {
  modelPath: string;
  port: number;
  host: string;
  maxBatch: number;
  maxWaitMs: number;
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
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: "string", default: DEFAULT_MODEL },
      port: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      "max-batch": { type: "string" },
      "max-wait-ms": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (positionals.length > 0) throw new Error(`unexpected argument '${positionals[0]}'`);
  const maxBatch = integerFlag("max-batch", values["max-batch"], 64, 4096);
  if (maxBatch < 1) throw new Error("--max-batch 0: expected at least 1");
  return {
    modelPath: values.model,
    port: integerFlag("port", values.port, 5000, 65535),
    host: values.host,
    maxBatch,
    maxWaitMs: integerFlag("max-wait-ms", values["max-wait-ms"], 2, 1000),
    help: values.help,
  };
}

export interface RunningServer {
  server: Deno.HttpServer<Deno.NetAddr>;
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
    const reason = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new Error(
      `cannot read the model file '${options.modelPath}' (${reason}); train it with ` +
        `\`deno task train tp1\` (writes ${DEFAULT_MODEL}) or pass --model PATH`,
    );
  }
  const rt = await init(engineOptionsFromEnv());
  const predictor = Predictor.load(bytes, options.modelPath);
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
  const server = Deno.serve({
    port: options.port,
    hostname: options.host,
    onListen: ({ hostname, port }) => {
      if (quiet) return;
      console.log(
        `serving ${options.modelPath} (${predictor.info.params} params) on ` +
          `http://${hostname}:${port} — POST /predict, GET /health`,
      );
    },
  }, handler);
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
  // As PID 1 in a container no default signal action applies: stop cleanly on our own.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => running.server.shutdown());
  }
  await running.server.finished;
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
