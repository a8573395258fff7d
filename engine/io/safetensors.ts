// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of UTF-8 JSON (padded with spaces to a multiple of 8), then one byte buffer
// that the tensors' `data_offsets` [begin, end) cover exactly, in order, without holes. Pure
// bytes in and out: the file system is the caller's business (engine/ runs in browsers too).

/** The dtypes tensors come back as; F32/I32/U32 are stored as is, the rest converted on read. */
export type EntryDType = "F32" | "I32" | "U32";
export type EntryData = Float32Array | Int32Array | Uint32Array;

export interface TensorEntry {
  dtype: EntryDType;
  shape: number[];
  data: EntryData;
}

/** `dtype` may be left out: it follows the typed array (Float32Array → F32, …). */
export interface TensorEntryInput {
  dtype?: EntryDType;
  shape: readonly number[];
  data: EntryData;
}

export interface Safetensors {
  tensors: Record<string, TensorEntry>;
  metadata: Record<string, string>;
}

/** The reference implementation refuses headers above 100 MB: nothing legitimate is that big. */
export const MAX_HEADER_BYTES = 100_000_000;

const ITEM_SIZE: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** The writer's order: descending dtype alignment (the spec's enum order), then name. */
const DTYPE_RANK: Record<EntryDType, number> = { F32: 2, U32: 1, I32: 0 };

const METADATA_KEY = "__metadata__";

function fail(message: string): never {
  throw new Error(`safetensors: ${message}`);
}

function dtypeOf(name: string, entry: TensorEntryInput): EntryDType {
  const natural: EntryDType = entry.data instanceof Float32Array
    ? "F32"
    : entry.data instanceof Int32Array
    ? "I32"
    : entry.data instanceof Uint32Array
    ? "U32"
    : fail(`tensor '${name}': data is not a Float32Array, Int32Array or Uint32Array`);
  if (entry.dtype !== undefined && entry.dtype !== natural) {
    fail(
      `tensor '${name}': dtype ${entry.dtype} does not match its ${entry.data.constructor.name}`,
    );
  }
  return natural;
}

/** Orders strings by code point, which is the byte order of their UTF-8 (Rust's `str` order). */
function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/**
 * Serialises tensors the way the reference writer does: tensors sorted by dtype alignment then
 * name, `__metadata__` first in the header, header padded with spaces to a multiple of 8 so
 * every tensor starts 8-byte aligned in the file.
 */
export function encodeSafetensors(
  entries: Record<string, TensorEntryInput>,
  metadata?: Record<string, string>,
): Uint8Array {
  const items = Object.entries(entries).map(([name, entry]) => {
    if (name === METADATA_KEY) fail(`'${METADATA_KEY}' is reserved and cannot name a tensor`);
    const dtype = dtypeOf(name, entry);
    const shape = [...entry.shape];
    let size = 1;
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0) {
        fail(`tensor '${name}': invalid shape [${shape.join(", ")}]`);
      }
      size *= d;
    }
    if (size !== entry.data.length) {
      fail(
        `tensor '${name}': shape [${shape.join(", ")}] holds ${size} values, ` +
          `data has ${entry.data.length}`,
      );
    }
    return { name, dtype, shape, data: entry.data };
  });
  items.sort((a, b) =>
    DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || compareCodePoints(a.name, b.name)
  );

  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== "string") {
        fail(`metadata '${key}' is a ${typeof value}, expected a string`);
      }
    }
    header[METADATA_KEY] = metadata;
  }
  let offset = 0;
  for (const { name, dtype, shape, data } of items) {
    // defineProperty: a tensor named "__proto__" must stay an ordinary key.
    Object.defineProperty(header, name, {
      value: { dtype, shape, data_offsets: [offset, offset + data.byteLength] },
      enumerable: true,
    });
    offset += data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerBytes = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerBytes + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerBytes);
  let at = 8 + headerBytes;
  for (const { data } of items) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  return out;
}

interface HeaderEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseEntry(name: string, value: unknown, bufferBytes: number): HeaderEntry {
  if (!isPlainObject(value)) fail(`tensor '${name}': header entry is not an object`);
  for (const key of Object.keys(value)) {
    if (key !== "dtype" && key !== "shape" && key !== "data_offsets") {
      fail(`tensor '${name}': unknown header field '${key}'`);
    }
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== "string") fail(`tensor '${name}': dtype is missing or not a string`);
  const itemSize = ITEM_SIZE[dtype];
  if (itemSize === undefined || !Object.hasOwn(ITEM_SIZE, dtype)) {
    fail(`tensor '${name}': unknown dtype '${dtype.slice(0, 40)}'`);
  }
  if (!Array.isArray(shape)) fail(`tensor '${name}': shape is missing or not an array`);
  // Sizes are bounded by the buffer, so a product past it can stop early (no overflow, no
  // huge number) unless a later dimension is 0.
  let count = 1;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
      fail(`tensor '${name}': shape contains ${JSON.stringify(d)}, expected integers ≥ 0`);
    }
    count = Math.min(count * d, bufferBytes + 1);
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0)
  ) {
    fail(`tensor '${name}': data_offsets must be two integers ≥ 0`);
  }
  const [begin, end] = offsets as number[];
  if (end < begin) fail(`tensor '${name}': data_offsets [${begin}, ${end}] end before they begin`);
  if (end > bufferBytes) {
    fail(
      `tensor '${name}': data_offsets [${begin}, ${end}] go past the ${bufferBytes}-byte ` +
        `data buffer (file truncated?)`,
    );
  }
  if (count * itemSize !== end - begin) {
    fail(
      `tensor '${name}': ${dtype} shape [${shape.join(", ")}] needs ${count * itemSize} bytes, ` +
        `data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

/** Copies the bytes out (the source may be unaligned) and widens/narrows to a supported dtype. */
function readData(entry: HeaderEntry, buffer: Uint8Array): { dtype: EntryDType; data: EntryData } {
  const bytes = buffer.slice(entry.begin, entry.end);
  const view = new DataView(bytes.buffer);
  const n = (entry.end - entry.begin) / ITEM_SIZE[entry.dtype];
  switch (entry.dtype) {
    case "F32":
      return { dtype: "F32", data: new Float32Array(bytes.buffer) };
    case "I32":
      return { dtype: "I32", data: new Int32Array(bytes.buffer) };
    case "U32":
      return { dtype: "U32", data: new Uint32Array(bytes.buffer) };
    case "F64":
      return { dtype: "F32", data: Float32Array.from(new Float64Array(bytes.buffer)) };
    case "F16": {
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = halfToFloat(view.getUint16(2 * i, true));
      return { dtype: "F32", data };
    }
    case "BF16": {
      const data = new Float32Array(n);
      // bfloat16 is the top half of a float32.
      const word = new Uint32Array(1);
      const float = new Float32Array(word.buffer);
      for (let i = 0; i < n; i++) {
        word[0] = view.getUint16(2 * i, true) << 16;
        data[i] = float[0];
      }
      return { dtype: "F32", data };
    }
    case "I64": {
      // PyTorch stores counters (BatchNorm's num_batches_tracked) as I64.
      const data = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = view.getBigInt64(8 * i, true);
        if (v < -0x80000000n || v > 0x7fffffffn) {
          fail(`tensor '${entry.name}': I64 value ${v} at index ${i} does not fit in I32`);
        }
        data[i] = Number(v);
      }
      return { dtype: "I32", data };
    }
    default:
      return fail(
        `tensor '${entry.name}': unsupported dtype ${entry.dtype} ` +
          `(readable: F32, I32, U32, F16, BF16, F64, I64)`,
      );
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/**
 * The first key that a JSON object of `text` (valid JSON) repeats, or null. JSON.parse keeps
 * the last value of a repeated key, so a header could carry two tensors of one name.
 */
function repeatedKey(text: string): string | null {
  // Per open container: its keys so far (null for an array) and whether a key comes next.
  const open: { keys: Set<string> | null; keyNext: boolean }[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) { // a string: skip to its closing quote
      let end = i + 1;
      while (text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c ? 2 : 1;
      const top = open[open.length - 1];
      if (top?.keys && top.keyNext) {
        const key: string = JSON.parse(text.slice(i, end + 1));
        if (top.keys.has(key)) return key;
        top.keys.add(key);
        top.keyNext = false;
      }
      i = end;
    } else if (c === 0x7b) open.push({ keys: new Set(), keyNext: true });
    else if (c === 0x5b) open.push({ keys: null, keyNext: false });
    else if (c === 0x7d || c === 0x5d) open.pop();
    else if (c === 0x2c && open[open.length - 1]?.keys) open[open.length - 1].keyNext = true;
  }
  return null;
}

/**
 * Parses and validates a whole file. Every defect — short file, absurd header length, bad UTF-8
 * or JSON, a repeated tensor name or key, unknown dtype, shape and offsets that disagree, holes, overlaps, trailing bytes,
 * non-string metadata — throws an Error whose message starts with "safetensors:"; nothing is
 * allocated beyond the size of the input.
 */
export function decodeSafetensors(bytes: Uint8Array): Safetensors {
  if (!(bytes instanceof Uint8Array)) fail("input is not a Uint8Array");
  if (bytes.length < 8) {
    fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  }
  const declared = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_BYTES)) {
    fail(`header length ${declared} is over the ${MAX_HEADER_BYTES}-byte limit (corrupt file?)`);
  }
  const headerBytes = Number(declared);
  if (8 + headerBytes > bytes.length) {
    fail(`header length ${headerBytes} runs past the end of the ${bytes.length}-byte file`);
  }
  if (headerBytes === 0 || bytes[8] !== 0x7b) fail("header does not start with '{'");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerBytes));
  } catch {
    fail("header is not valid UTF-8");
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header)) fail("header is not a JSON object");
  const repeated = repeatedKey(text);
  if (repeated !== null) {
    fail(
      `header names '${repeated.slice(0, 80)}' twice in one object (a duplicate tensor name ` +
        "or field; JSON would silently keep the last)",
    );
  }

  const bufferBytes = bytes.length - 8 - headerBytes;
  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (!isPlainObject(value)) fail(`${METADATA_KEY} is not an object`);
      for (const [key, v] of Object.entries(value)) {
        if (typeof v !== "string") fail(`metadata '${key}' is not a string`);
        Object.defineProperty(metadata, key, { value: v, enumerable: true, writable: true });
      }
    } else {
      entries.push(parseEntry(name, value, bufferBytes));
    }
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const entry of entries) {
    if (entry.begin < covered) {
      fail(
        `tensor '${entry.name}': data_offsets [${entry.begin}, ${entry.end}] overlap another tensor`,
      );
    }
    if (entry.begin > covered) {
      fail(
        `tensor '${entry.name}': bytes ${covered}..${entry.begin} before it belong to no tensor`,
      );
    }
    covered = entry.end;
  }
  if (covered !== bufferBytes) {
    fail(
      `the tensors cover ${covered} bytes of the ${bufferBytes}-byte data buffer ` +
        `(trailing bytes or a truncated header)`,
    );
  }

  const buffer = bytes.subarray(8 + headerBytes);
  const tensors: Record<string, TensorEntry> = {};
  for (const entry of entries) {
    const { dtype, data } = readData(entry, buffer);
    Object.defineProperty(tensors, entry.name, {
      value: { dtype, shape: entry.shape, data },
      enumerable: true,
      writable: true,
    });
  }
  return { tensors, metadata };
}
