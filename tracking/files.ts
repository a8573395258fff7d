// The file store's file IO. Writes are crash-safe: readers (mlflow ui, the web UI, --resume)
// must only ever see the old or the new content of a file, never a truncated one.
import * as path from "node:path";
import { localProcessAlive } from "./process.ts";

/** What writeFileAtomic accepts: bytes, text, or a (possibly async) producer of byte chunks. */
export type AtomicData =
  | Uint8Array
  | string
  | Iterable<Uint8Array>
  | AsyncIterable<Uint8Array>;

/**
 * Temporary files are `.<name>.<12 hex>.tmp`: the writer's pid (8 hex) and 4 random hex.
 * Readers skip them; the next write to their folder removes those of a dead writer.
 */
export const TEMP_FILE_PATTERN = /^\..+\.[0-9a-f]{12}\.tmp$/;
/** A temp file untouched this long is an orphan whoever wrote it (writes touch it as they go). */
const ORPHAN_TEMP_MS = 10 * 60_000;
/** A dead writer's temp file is removed once this old (its pid may be reused meanwhile). */
const DEAD_WRITER_TEMP_MS = 2_000;

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
  await sweepOrphanTemps(dir);
  const owner = (Deno.pid >>> 0).toString(16).padStart(8, "0").slice(-8);
  let temp: string;
  let file: Deno.FsFile;
  for (;;) {
    temp = path.join(dir, `.${path.basename(target)}.${owner}${randomHex(2)}.tmp`);
    try {
      file = await Deno.open(temp, { write: true, createNew: true });
      break;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
  }
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

/** Folders this process has swept already: once per folder is enough to clear a crash's debris. */
const swept = new Set<string>();

/**
 * Removes the temp files a killed writer left in `dir` (the first time this process writes
 * there): those of a writer on this host that is gone, and any untouched for ORPHAN_TEMP_MS.
 */
async function sweepOrphanTemps(dir: string): Promise<void> {
  if (swept.has(dir)) return;
  swept.add(dir);
  for (const entry of listDirSync(dir)) {
    if (!entry.isFile || !TEMP_FILE_PATTERN.test(entry.name)) continue;
    const file = path.join(dir, entry.name);
    const age = Date.now() - ((await lstatOrNull(file))?.mtime?.getTime() ?? Date.now());
    const pid = parseInt(entry.name.slice(-16, -8), 16);
    const dead = age > DEAD_WRITER_TEMP_MS && localProcessAlive(pid) === false;
    if (dead || age > ORPHAN_TEMP_MS) await Deno.remove(file).catch(() => {});
  }
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
// Reads that tolerate absent paths and skip the temporary files of interrupted writes. What the
// store reader reads (the web UI serves it) never goes through a symbolic link: a param linked
// to a system file, a metric linked to /dev/zero or a dangling link must not be read, hang or
// break the listing; and every file is read with a size bound.

/** The most the reader reads of each kind of file; a larger one is refused, not read. */
export const READ_LIMITS = {
  /** meta.yaml files. */
  meta: 1 << 20,
  /** One param or tag value (MLflow caps values at 6,000 and 8,000 characters). */
  value: 1 << 16,
  /** One metric history (about 40 bytes a point). */
  metric: 256 << 20,
  /** One artifact. */
  artifact: 1 << 30,
} as const;

/** A file or folder the reader will not read: a symbolic link, not a regular file, too large. */
export class RefusedPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RefusedPathError";
  }
}

/** Like Deno.lstat (a link is reported as itself, never followed); null if absent. */
export async function lstatOrNull(p: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(p);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** lstatOrNull without awaiting. */
export function lstatOrNullSync(p: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(p);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** Whether `p` is a folder itself (not a link to one); false if absent. */
export async function isRealDirectory(p: string): Promise<boolean> {
  return (await lstatOrNull(p))?.isDirectory ?? false;
}

function refusal(p: string, info: Deno.FileInfo): RefusedPathError | null {
  if (info.isSymlink) return new RefusedPathError(`${p} is a symbolic link (not followed)`);
  if (!info.isFile && !info.isDirectory) {
    return new RefusedPathError(`${p} is not a regular file (a device, FIFO or socket)`);
  }
  return null;
}

/**
 * `base` joined with `parts`, once every folder on the way is checked to be a real folder: a
 * link among them throws RefusedPathError; null if one is missing. `base` itself is trusted.
 */
export async function pathInside(base: string, parts: readonly string[]): Promise<string | null> {
  let at = base;
  for (const part of parts.slice(0, -1)) {
    at = path.join(at, part);
    const info = await lstatOrNull(at);
    if (info === null) return null;
    const refused = refusal(at, info);
    if (refused) throw refused;
    if (!info.isDirectory) return null;
  }
  return path.join(at, ...parts.slice(-1));
}

/** Why `file` (as lstat saw it) may not be read, or null: a link, special file, folder, too big. */
function readRefusal(file: string, info: Deno.FileInfo, maxBytes: number): RefusedPathError | null {
  const refused = refusal(file, info);
  if (refused) return refused;
  if (!info.isFile) return new RefusedPathError(`${file} is a folder, not a file`);
  if (info.size > maxBytes) {
    return new RefusedPathError(`${file} is ${info.size} bytes, over the ${maxBytes}-byte limit`);
  }
  return null;
}

/** Reads an opened file whose lstat was `info`, checking it is still that file and in bounds. */
function boundedReader(file: string, info: Deno.FileInfo, maxBytes: number) {
  const chunks: Uint8Array[] = [];
  let size = 0;
  return {
    checkOpened(opened: Deno.FileInfo) {
      if (!opened.isFile || opened.ino !== info.ino || opened.dev !== info.dev) {
        throw new RefusedPathError(`${file} was replaced while being opened`);
      }
    },
    // One byte over the size seen: a file that did not grow is read in one call.
    buffer: () => new Uint8Array(Math.min(info.size + 1, maxBytes + 1 - size, 1 << 24)),
    /** Takes `n` bytes read into `chunk`; false at the end of the file. */
    take(chunk: Uint8Array, n: number | null): boolean {
      if (n === null) return false;
      size += n;
      if (size > maxBytes) {
        throw new RefusedPathError(`${file} grew over the ${maxBytes}-byte limit while being read`);
      }
      chunks.push(chunk.subarray(0, n));
      // A regular file reads short only at its end: no second call to learn that.
      return n === chunk.length;
    },
    bytes(): Uint8Array {
      if (chunks.length === 1) return chunks[0];
      const out = new Uint8Array(size);
      let at = 0;
      for (const chunk of chunks) {
        out.set(chunk, at);
        at += chunk.length;
      }
      return out;
    },
  };
}

/**
 * The bytes of the regular file `file`, or null if it does not exist. A symbolic link, a
 * device or FIFO, a folder, or a file over `maxBytes` throws RefusedPathError instead of being
 * read (the file is also checked to be the one examined when it is opened).
 */
export async function readFileBounded(file: string, maxBytes: number): Promise<Uint8Array | null> {
  const info = await lstatOrNull(file);
  if (info === null) return null;
  const refused = readRefusal(file, info, maxBytes);
  if (refused) throw refused;
  const reader = boundedReader(file, info, maxBytes);
  const handle = await Deno.open(file, { read: true });
  try {
    reader.checkOpened(await handle.stat());
    for (;;) {
      const chunk = reader.buffer();
      if (!reader.take(chunk, await handle.read(chunk))) return reader.bytes();
    }
  } finally {
    handle.close();
  }
}

/**
 * readFileBounded without awaiting: for the many small files of a run (meta.yaml, params, tags,
 * metrics), where each await costs more than the read itself (a listing of 1,000 runs reads
 * 25,000 files).
 */
export function readFileBoundedSync(file: string, maxBytes: number): Uint8Array | null {
  const info = lstatOrNullSync(file);
  if (info === null) return null;
  const refused = readRefusal(file, info, maxBytes);
  if (refused) throw refused;
  const reader = boundedReader(file, info, maxBytes);
  const handle = Deno.openSync(file, { read: true });
  try {
    reader.checkOpened(handle.statSync());
    for (;;) {
      const chunk = reader.buffer();
      if (!reader.take(chunk, handle.readSync(chunk))) return reader.bytes();
    }
  } finally {
    handle.close();
  }
}

/** readFileBounded as UTF-8 text (invalid bytes replaced, as Deno.readTextFile does). */
export async function readTextBounded(file: string, maxBytes: number): Promise<string | null> {
  const bytes = await readFileBounded(file, maxBytes);
  return bytes === null ? null : new TextDecoder().decode(bytes);
}

/** readFileBoundedSync as UTF-8 text. */
export function readTextBoundedSync(file: string, maxBytes: number): string | null {
  const bytes = readFileBoundedSync(file, maxBytes);
  return bytes === null ? null : new TextDecoder().decode(bytes);
}

export async function statOrNull(p: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(p);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

const byName = (a: Deno.DirEntry, b: Deno.DirEntry) =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

/**
 * Entries of `dir` sorted by name (temporary files included); empty if it does not exist. Not
 * awaited: a listing is one quick system call, and the reader makes thousands of them.
 */
export function listDirSync(dir: string): Deno.DirEntry[] {
  try {
    return [...Deno.readDirSync(dir)].sort(byName);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/**
 * Files under `dir`, as sorted `/`-separated relative paths, without temporary files. Links and
 * special files are not listed (nor followed): each is described in `skipped`.
 */
export function listFilesRecursive(dir: string, prefix = "", skipped: string[] = []): string[] {
  const out: string[] = [];
  for (const entry of listDirSync(dir)) {
    if (TEMP_FILE_PATTERN.test(entry.name)) continue;
    const rel = prefix + entry.name;
    if (entry.isSymlink) skipped.push(`${rel} is a symbolic link (not followed)`);
    else if (entry.isDirectory) {
      out.push(...listFilesRecursive(path.join(dir, entry.name), rel + "/", skipped));
    } else if (entry.isFile) out.push(rel);
    else skipped.push(`${rel} is not a regular file (a device, FIFO or socket)`);
  }
  return out;
}
