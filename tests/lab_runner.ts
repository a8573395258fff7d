// The lab CLI as users run it: `deno run -A labs/main.ts …` in a subprocess, optionally writing
// into an MLflow store of the test's own (MLFLOW_TRACKING_URI).
import * as path from "node:path";

const root = path.resolve(import.meta.dirname!, "..");

export interface LabOutput {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runLab(args: string[], mlruns?: string): Promise<LabOutput> {
  const env: Record<string, string> = { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "" };
  if (mlruns) env.MLFLOW_TRACKING_URI = `file:${mlruns}`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "labs/main.ts", ...args],
    cwd: root,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}
