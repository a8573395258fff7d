// Which process writes a run or a temporary file, so that what a process killed with SIGKILL
// left behind (a run stuck RUNNING, a half-written temp file) can be told from the work of one
// still alive. On Linux a process is its pid plus its start time (/proc/<pid>/stat), which
// survives pid reuse; elsewhere, on another host or without the permissions, liveness is
// unknown and nothing is judged stale.

/** The run tag naming the process that writes a RUNNING run (`<host> <pid> <start ticks>`). */
export const PROCESS_TAG = "denograd.process";

/** Clock ticks since boot when `pid` started (Linux), or null if it is gone / unknowable. */
function startTicks(pid: number): string | null {
  if (Deno.build.os !== "linux") return null;
  const file = `/proc/${pid}/stat`;
  if (Deno.permissions.querySync({ name: "read", path: file }).state !== "granted") return null;
  try {
    const stat = Deno.readTextFileSync(file);
    // Fields after the command name (which may hold spaces and parentheses); starttime is 22nd.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

function hostname(): string | null {
  if (Deno.permissions.querySync({ name: "sys", kind: "hostname" }).state !== "granted") {
    return null;
  }
  try {
    return Deno.hostname();
  } catch {
    return null;
  }
}

/** This process as the `denograd.process` run tag records it: `<host> <pid> <start ticks>`. */
export function currentProcess(): string {
  return `${hostname() ?? "?"} ${Deno.pid} ${startTicks(Deno.pid) ?? "?"}`;
}

/** A `denograd.process` tag read back. */
export interface ProcessId {
  host: string;
  pid: number;
  start: string;
}

export function parseProcess(tag: string): ProcessId | null {
  const match = /^(\S+) (\d+) (\S+)$/.exec(tag);
  return match ? { host: match[1], pid: Number(match[2]), start: match[3] } : null;
}

/**
 * Whether process `pid` of this host is running: false only when it is certainly gone (no
 * /proc entry, or one that started at another time); null when that cannot be known.
 */
export function localProcessAlive(pid: number, start?: string): boolean | null {
  if (Deno.build.os !== "linux" || !Number.isSafeInteger(pid) || pid <= 0) return null;
  if (Deno.permissions.querySync({ name: "read", path: "/proc" }).state !== "granted") return null;
  let exists: boolean;
  try {
    exists = Deno.statSync(`/proc/${pid}`).isDirectory;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) return null;
    exists = false;
  }
  if (!exists) return false;
  if (start === undefined || start === "?") return true;
  const now = startTicks(pid);
  return now === null ? null : now === start;
}

/** Whether the process a `denograd.process` tag names is alive (null: cannot tell from here). */
export function processAlive(tag: string): boolean | null {
  const id = parseProcess(tag);
  if (id === null || id.host === "?") return null;
  const here = hostname();
  if (here === null || here !== id.host) return null;
  return localProcessAlive(id.pid, id.start);
}
