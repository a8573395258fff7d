// Crash-safe file writes: readers (mlflow ui, the web UI, --resume) must only ever see the old
// or the new content of a file, never a truncated one.
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
