// The lab command line (`deno task train <lab> …`) parsed into the lab and its LabArgs, with
// every check that needs no GPU: labs/main.ts runs what it names, the sweep (labs/sweep/)
// validates a sweep's lab flags with it before writing any job.
import { parseArgs } from "node:util";
import {
  findLab,
  type Lab,
  type LabArgs,
  type LabFlag,
  listLabs,
  stdoutWriter,
} from "./registry.ts";
import "./demo.ts";
import "./tp1.ts";
import "./tp2.ts";
import "./tp3.ts";
import "./tp4.ts";
import "./tp5.ts";

export const USAGE =
  `usage: deno task train <lab> [--epochs N] [--batch-size N] [--seed N] [--quick] [--resume]
                     [--checkpoint-dir DIR] [--exercise N] [--part N] [--seeds N]
                     [--loss NAME] [--compare-losses] [--base-filters N]
                     [--dataset NAME] [--data DIR] [--weights FILE] [--content FILE]
                     [--style FILE] [--steps N] [--image-size N]
                     [--plan | --unit K|NAME | --summarize]
       deno task train --list`;

/** Seeds are 32-bit: the generators (engine/random.ts) use the seed modulo 2³². */
const MAX_SEED = 2 ** 32 - 1;

/** What the command asks of the lab: everything, its plan, one unit, or the summary. */
export type LabMode = "run" | "plan" | "unit" | "summarize";

export type LabCommand =
  | { lab: Lab; args: LabArgs; mode: LabMode }
  /** Nothing to run: exit with `status` after printing `stdout` / `stderr`. */
  | { status: number; stdout?: string; stderr?: string };

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

const usageError = (message: string): LabCommand => ({
  status: 2,
  stderr: `${message}\n${USAGE}`,
});

/** `--unit K` (an index into the plan) or `--unit NAME`, as the unit's name. */
function unitName(lab: Lab, args: LabArgs, text: string): string {
  const units = lab.units!(args);
  const known = units.map((u) => u.name);
  if (/^\d+$/.test(text)) {
    const index = Number(text);
    if (index >= units.length) {
      throw new Error(`--unit ${text}: lab '${lab.name}' has units 0 to ${units.length - 1}`);
    }
    return units[index].name;
  }
  if (!known.includes(text)) {
    throw new Error(`--unit ${text}: lab '${lab.name}' has units ${known.join(", ")}`);
  }
  return text;
}

export function parseLabCommand(argv: string[]): LabCommand {
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
        plan: { type: "boolean", default: false },
        summarize: { type: "boolean", default: false },
        list: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    return usageError((e as Error).message);
  }
  const { values, positionals, tokens } = parsed;
  if (values.help) return { status: 0, stdout: `${USAGE}\n\nlabs:\n${labList()}` };
  if (values.list) return { status: 0, stdout: labList() };
  if (positionals.length !== 1) {
    return usageError(`expected one lab name, received ${positionals.length}`);
  }
  const lab = findLab(positionals[0]);
  if (!lab) {
    return { status: 2, stderr: `unknown lab '${positionals[0]}'; known labs:\n${labList()}` };
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
    return usageError((e as Error).message);
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
    // A lab with a plan takes --unit whether or not it lists the flag.
    ["unit", args.unit !== undefined && lab.units === undefined],
  ];
  for (const [flag, used] of given) {
    if (used && !lab.flags?.includes(flag)) {
      return usageError(`lab '${lab.name}' has no --${flag} option`);
    }
  }
  for (
    const [flag, value, count] of [
      ["exercise", args.exercise, lab.exercises],
      ["part", args.part, lab.parts],
    ] as const
  ) {
    if (value !== undefined && count !== undefined && value > count) {
      return usageError(`--${flag} ${value}: lab '${lab.name}' has ${flag}s 1 to ${count}`);
    }
  }
  const modes = [
    values.plan && "--plan",
    values.summarize && "--summarize",
    args.unit !== undefined && "--unit",
  ].filter((m) => m !== false);
  if (modes.length > 1) return usageError(`${modes.join(" and ")} exclude each other`);
  const mode: LabMode = values.plan
    ? "plan"
    : values.summarize
    ? "summarize"
    : args.unit !== undefined
    ? "unit"
    : "run";
  if ((mode === "plan" || mode === "summarize") && (!lab.units || !lab.summarize)) {
    return {
      status: 2,
      stderr: `lab '${lab.name}' has no units yet: it cannot list a plan, be summarised from ` +
        "the store or be swept; run it whole with deno task train " + lab.name,
    };
  }
  if (mode === "unit" && lab.units) {
    try {
      args.unit = unitName(lab, args, args.unit!);
    } catch (e) {
      return usageError((e as Error).message);
    }
  }
  return { lab, args, mode };
}

/** `--plan`'s JSON: the lab and its units in order, with their index. */
export function planJson(lab: Lab, args: LabArgs): string {
  const units = lab.units!(args).map((u, index) => ({
    index,
    name: u.name,
    trains: u.trains,
    rough_seconds: u.seconds,
  }));
  return JSON.stringify({ lab: lab.name, units }, null, 2);
}
