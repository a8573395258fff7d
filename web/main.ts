// `deno task web [--store DIR|URI] [--port 8000] [--host 127.0.0.1] [--bench DIR]`: the web UI
// over a tracking store, on the server plumbing the predict API uses (web/server.ts). The task
// builds the islands bundle first, then runs this with read access and a listening socket only.
import { parseArgs } from "node:util";
import { openStore } from "../tracking/store.ts";
import { createUiHandler } from "./app.tsx";
import { RunsIndex } from "./runs_index.ts";
import { listenHttp } from "./server.ts";

const USAGE = `usage: deno task web [--store DIR|URI] [--port N] [--host ADDR] [--bench DIR]
  --store  the tracking store (default: MLFLOW_TRACKING_URI, else ./mlruns)
  --port   TCP port, 0 picks a free one (default 8000)
  --host   address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)
  --bench  folder of benchmark result files (default bench/results)`;

function main(): void {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        store: { type: "string" },
        port: { type: "string", default: "8000" },
        host: { type: "string", default: "127.0.0.1" },
        bench: { type: "string", default: "bench/results" },
        help: { type: "boolean" },
      },
    }));
    if (!/^\d{1,5}$/.test(values.port) || Number(values.port) > 65535) {
      throw new Error(`--port ${values.port}: expected an integer from 0 to 65535`);
    }
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    Deno.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const store = openStore(values.store);
  const runs = new RunsIndex(store);
  runs.warm().catch((error) => console.error("web: reading the store's runs:", error));
  const server = listenHttp(
    { hostname: values.host, port: Number(values.port) },
    createUiHandler({ store, runs, benchDir: values.bench }),
  );
  console.log(`denograd web UI on http://${server.addr.hostname}:${server.addr.port}/`);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => server.shutdown().then(() => Deno.exit(0)));
  }
}

main();
