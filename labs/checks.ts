// The closing tables of the labs with exercises: each check is our number beside the students'
// and the target, with a verdict; plus the host-side helpers those labs share.
import { gpu } from "../engine/device.ts";
import { formatDuration } from "../engine/train/progress.ts";

/** One line of the closing table. */
export interface Check {
  name: string;
  /** Our number, formatted. */
  value: string;
  /** The students' number (or what they logged instead), formatted; "—" when none. */
  students: string;
  /** The target in words, e.g. "≥ 0.97". */
  target: string;
  pass: boolean;
  /** Reported, not enforced (quick runs, the failure-mode demonstrations). */
  informational?: boolean;
}

export interface ExerciseResult {
  exercise: number;
  title: string;
  checks: Check[];
  /** Tracking runs written, as `name (id)`. */
  runs: string[];
  seconds: number;
}

export function verdict(c: Check): string {
  return c.informational ? "INFO" : c.pass ? "PASS" : "FAIL";
}

/** Rows padded into columns. */
export function columns(rows: readonly string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd())
    .join("\n");
}

export function checksTable(checks: readonly Check[]): string {
  return columns([
    ["check", "ours", "students", "target", ""],
    ...checks.map((c) => [c.name, c.value, c.students, c.target, verdict(c)]),
  ]);
}

/** Four decimals, as Keras prints metrics. */
export const f4 = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : String(x));

/** Python's str() of a shape tuple: "(128, 128, 1)". */
export const tupleText = (shape: readonly number[]) =>
  `(${shape.join(", ")}${shape.length === 1 ? "," : ""})`;

/** Whether the engine runs on a software adapter (lavapipe, SwiftShader, WARP). */
export async function onSoftwareAdapter(): Promise<boolean> {
  return (await gpu()).report.isFallbackAdapter;
}

/** The closing summary of a lab's exercises: one table per exercise, then the verdict. */
export function exercisesSummary(
  lab: string,
  results: readonly ExerciseResult[],
  seconds: number,
): string {
  const lines = [`\n== ${lab} summary (${formatDuration(seconds)} in all) ==`];
  for (const r of results) {
    lines.push(
      `\nExercise ${r.exercise} — ${r.title} (${formatDuration(r.seconds)}; MLflow runs ` +
        `${r.runs.join(", ")})`,
      checksTable(r.checks),
    );
  }
  const failed = results.flatMap((r) => r.checks.filter((c) => !c.pass && !c.informational));
  const enforced = results.flatMap((r) => r.checks.filter((c) => !c.informational)).length;
  lines.push(
    failed.length
      ? `\n${failed.length} target(s) missed: ${failed.map((c) => c.name).join("; ")}`
      : `\nall ${enforced} enforced targets reached`,
  );
  return lines.join("\n") + "\n";
}

/** A lab's exit status: 1 when an enforced target is missed. */
export const exitStatus = (results: readonly ExerciseResult[]) =>
  results.some((r) => r.checks.some((c) => !c.pass && !c.informational)) ? 1 : 0;
