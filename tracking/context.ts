// What the MLflow client reads from the process when it starts a run: the OS user, the entry
// script and its git commit (tags `mlflow.user`, `mlflow.source.*`), and environment variables.
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** An environment variable, or undefined when unset, empty or not readable (no --allow-env). */
export function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** getpass.getuser(): the login environment variables, then the password database. */
export function currentUser(): string {
  const fromEnv = envVar("LOGNAME") ?? envVar("USER") ?? envVar("LNAME") ?? envVar("USERNAME");
  if (fromEnv) return fromEnv;
  try {
    return os.userInfo().username || "unknown";
  } catch {
    return "unknown";
  }
}

function mainModulePath(): string | null {
  try {
    return Deno.mainModule.startsWith("file:") ? fileURLToPath(Deno.mainModule) : null;
  } catch {
    return null;
  }
}

async function gitCommit(dir: string): Promise<string | null> {
  try {
    const { success, stdout } = await new Deno.Command("git", {
      args: ["rev-parse", "HEAD"],
      cwd: dir,
      stdout: "piped",
      stderr: "null",
    }).output();
    const sha = new TextDecoder().decode(stdout).trim();
    return success && /^[0-9a-f]{40,64}$/.test(sha) ? sha : null;
  } catch {
    return null; // no git binary, or no permission to run it
  }
}

/**
 * The tags the MLflow client adds to a new run: `mlflow.user`, `mlflow.source.name` (the main
 * module relative to the cwd, unless `sourceName` is given), `mlflow.source.type` LOCAL and,
 * inside a git work tree, `mlflow.source.git.commit`.
 */
export async function contextTags(sourceName?: string): Promise<Record<string, string>> {
  const main = mainModulePath();
  let name = sourceName;
  if (name === undefined) {
    if (main === null) name = Deno.mainModule;
    else {
      const rel = path.relative(Deno.cwd(), main);
      name = rel.startsWith("..") || path.isAbsolute(rel) ? main : rel;
    }
  }
  const tags: Record<string, string> = {
    "mlflow.user": currentUser(),
    "mlflow.source.name": name,
    "mlflow.source.type": "LOCAL",
  };
  const commit = await gitCommit(main === null ? Deno.cwd() : path.dirname(main));
  if (commit !== null) tags["mlflow.source.git.commit"] = commit;
  return tags;
}
