// `deno task train <lab> [--epochs N --batch-size N --seed N --quick --resume …]`,
// `deno task train --list`; `--plan` lists a lab's independent trainings (units) as JSON,
// `--unit K|NAME` runs one, `--summarize` builds the lab's summary from the units' runs in the
// store. Exit codes: 0 done, 1 the lab failed (or a summary misses units), 2 bad command line or
// missing data.
import { init } from "../engine/tensor.ts";
import { engineOptionsFromEnv } from "../host/env.ts";
import { parseLabCommand, planJson, USAGE } from "./command.ts";
import { DataError, UsageError } from "./registry.ts";

export async function main(argv: string[]): Promise<number> {
  const command = parseLabCommand(argv);
  if ("status" in command) {
    if (command.stdout !== undefined) console.log(command.stdout);
    if (command.stderr !== undefined) console.error(command.stderr);
    return command.status;
  }
  const { lab, args, mode } = command;
  try {
    if (mode === "plan") {
      console.log(planJson(lab, args));
      return 0;
    }
    // A summary reads the store and draws figures: no GPU, so it runs on any node.
    if (mode !== "summarize") await init(engineOptionsFromEnv());
    if (mode === "summarize") {
      const { status, missing } = await lab.summarize!(args);
      if (missing.length > 0) {
        console.error(
          `lab '${lab.name}': no finished run of ${missing.length} unit(s): ${missing.join(", ")}` +
            ` (run them with deno task train ${lab.name} --unit NAME, then summarise again)`,
        );
        return Math.max(status, 1);
      }
      return status;
    }
    return (await lab.run(args)) ?? 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n${USAGE}`);
      return 2;
    }
    if (e instanceof DataError) {
      console.error(`lab '${lab.name}': ${e.message}`);
      return 2;
    }
    console.error(`lab '${lab.name}' failed: ${(e as Error).stack ?? e}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
