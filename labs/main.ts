// `deno task train <lab> [--epochs N --batch-size N --seed N --quick --resume …]`,
// `deno task train --list`. Exit codes: 0 done, 1 the lab failed, 2 bad command line or missing
// data.
import { parseArgs } from "node:util";
import { init } from "../engine/tensor.ts";
import { engineOptionsFromEnv } from "../host/env.ts";
import {
  DataError,
  findLab,
  type LabArgs,
  type LabFlag,
  listLabs,
  stdoutWriter,
  UsageError,
} from "./registry.ts";
import "./demo.ts";
import "./tp1.ts";
import "./tp2.ts";
import "./tp3.ts";
import "./tp4.ts";
import "./tp5.ts";

const USAGE =
  `usage: deno task train <lab> [--epochs N] [--batch-size N] [--seed N] [--quick] [--resume]
                     [--checkpoint-dir DIR] [--exercise N] [--part N] [--seeds N]
                     [--loss NAME] [--compare-losses] [--base-filters N]
                     [--dataset NAME] [--data DIR] [--weights FILE] [--content FILE]
                     [--style FILE] [--steps N] [--image-size N] [--unit NAME]
       deno task train --list`;

/** Seeds are 32-bit: the generators (engine/random.ts) use the seed modulo 2³². */
const MAX_SEED = 2 ** 32 - 1;

function labList(): string {
  const labs = listLabs();
  const width = Math.max(...labs.map((l) => l.name.length));
  return labs.map((l) => `  ${l.name.padEnd(width)}  ${l.description}`).join("\n");
}

function positiveInt(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new Error(`--${flag} ${text}: expected an integer ≥ 1`);
  }
  return n;
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      tokens: true,
      options: {
        epochs: { type: "string" },
        "batch-size": { type: "string" },
        seed: { type: "string" },
        quick: { type: "boolean", default: false },
        resume: { type: "boolean", default: false },
        "checkpoint-dir": { type: "string", default: "checkpoints" },
        exercise: { type: "string" },
        part: { type: "string" },
        seeds: { type: "string" },
        loss: { type: "string" },
        "compare-losses": { type: "boolean", default: false },
        "base-filters": { type: "string" },
        dataset: { type: "string" },
        data: { type: "string" },
        weights: { type: "string" },
        content: { type: "string" },
        style: { type: "string" },
        steps: { type: "string" },
        "image-size": { type: "string" },
        unit: { type: "string" },
        list: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals, tokens } = parsed;
  if (values.help) {
    console.log(`${USAGE}\n\nlabs:\n${labList()}`);
    return 0;
  }
  if (values.list) {
    console.log(labList());
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(`expected one lab name, received ${positionals.length}\n${USAGE}`);
    return 2;
  }
  const lab = findLab(positionals[0]);
  if (!lab) {
    console.error(`unknown lab '${positionals[0]}'; known labs:\n${labList()}`);
    return 2;
  }
  let args: LabArgs;
  try {
    // Generators take 32-bit seeds: a larger one would silently repeat a smaller one's run.
    const seed = values.seed === undefined ? 0 : Number(values.seed);
    if (!/^\d+$/.test(values.seed ?? "0") || !(seed <= MAX_SEED)) {
      throw new Error(`--seed ${values.seed}: expected an integer from 0 to ${MAX_SEED}`);
    }
    args = {
      epochs: positiveInt("epochs", values.epochs),
      batchSize: positiveInt("batch-size", values["batch-size"]),
      exercise: positiveInt("exercise", values.exercise),
      part: positiveInt("part", values.part),
      seeds: positiveInt("seeds", values.seeds),
      loss: values.loss,
      compareLosses: values["compare-losses"],
      baseFilters: positiveInt("base-filters", values["base-filters"]),
      dataset: values.dataset,
      dataDir: values.data,
      weights: values.weights,
      contentImage: values.content,
      styleImage: values.style,
      steps: positiveInt("steps", values.steps),
      imageSize: positiveInt("image-size", values["image-size"]),
      unit: values.unit,
      seed,
      quick: values.quick,
      resume: values.resume,
      given: new Set(tokens.flatMap((t) => t.kind === "option" ? [t.name] : [])),
      checkpointDir: values["checkpoint-dir"],
      out: stdoutWriter(),
    };
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const given: [LabFlag, boolean][] = [
    ["batch-size", args.batchSize !== undefined],
    ["exercise", args.exercise !== undefined],
    ["part", args.part !== undefined],
    ["seeds", args.seeds !== undefined],
    ["resume", args.resume],
    ["loss", args.loss !== undefined],
    ["compare-losses", args.compareLosses],
    ["base-filters", args.baseFilters !== undefined],
    ["dataset", args.dataset !== undefined],
    ["data", args.dataDir !== undefined],
    ["weights", args.weights !== undefined],
    ["content", args.contentImage !== undefined],
    ["style", args.styleImage !== undefined],
    ["steps", args.steps !== undefined],
    ["image-size", args.imageSize !== undefined],
    ["unit", args.unit !== undefined],
  ];
  for (const [flag, used] of given) {
    if (used && !lab.flags?.includes(flag)) {
      console.error(`lab '${lab.name}' has no --${flag} option\n${USAGE}`);
      return 2;
    }
  }
  for (
    const [flag, value, count] of [
      ["exercise", args.exercise, lab.exercises],
      ["part", args.part, lab.parts],
    ] as const
  ) {
    if (value !== undefined && count !== undefined && value > count) {
      console.error(`--${flag} ${value}: lab '${lab.name}' has ${flag}s 1 to ${count}\n${USAGE}`);
      return 2;
    }
  }
  try {
    await init(engineOptionsFromEnv());
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
