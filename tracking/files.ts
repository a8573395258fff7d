// The file store's file IO. Writes are crash-safe: readers (mlflow ui, the web UI, --resume)
// must only ever see the old or the new content of a file, never a truncated one.
import * as path from "node:path";

/** What writeFileAtomic accepts: bytes, text, or a (possibly async) producer of byte chunks. */
export type AtomicData =
  | Uint8Array
  | string
  | Iterable<Uint8Array>
  | AsyncIterable<Uint8Array>;

/** Temporary files are `.<name>.<12 hex>.tmp`; readers skip leftovers of a killed process. */
export const TEMP_FILE_PATTERN = /^\..+\.[0-9a-f]{12}\.tmp$/;

function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
}

/**
 * Writes `data` to `target` atomically: into a temporary file in the same directory, fsync, then
 * rename over the target (and fsync the directory where the OS allows it). Parent directories
 * are created. If anything fails (including a throwing producer), the temporary file is removed
 * and the previous content of `target` is left untouched.
 */
export async function writeFileAtomic(target: string, data: AtomicData): Promise<void> {
  const dir = path.dirname(target);
  await Deno.mkdir(dir, { recursive: true });
  const temp = path.join(dir, `.${path.basename(target)}.${randomHex(6)}.tmp`);
  const file = await Deno.open(temp, { write: true, createNew: true });
  try {
    try {
      if (typeof data === "string") await writeAll(file, new TextEncoder().encode(data));
      else if (data instanceof Uint8Array) await writeAll(file, data);
      else for await (const chunk of data) await writeAll(file, chunk);
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, target);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
  await syncDirectory(dir);
}

/** Makes a completed rename durable; directories cannot be opened for syncing on Windows. */
async function syncDirectory(dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  let handle: Deno.FsFile | undefined;
  try {
    handle = await Deno.open(dir, { read: true });
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename itself is already atomic.
  } finally {
    handle?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Reads that tolerate absent paths and skip the temporary files of interrupted writes

export async function statOrNull(p: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(p);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

export async function readTextOrNull(p: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(p);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** Entries of `dir` sorted by name (temporary files included); empty if it does not exist. */
export async function listDir(dir: string): Promise<Deno.DirEntry[]> {
  const entries: Deno.DirEntry[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) entries.push(entry);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Files under `dir`, as sorted `/`-separated relative paths, without temporary files. */
export async function listFilesRecursive(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await listDir(dir)) {
    if (TEMP_FILE_PATTERN.test(entry.name)) continue;
    const rel = prefix + entry.name;
    if (entry.isDirectory) {
      out.push(...await listFilesRecursive(path.join(dir, entry.name), rel + "/"));
    } else out.push(rel);
  }
  return out;
}
