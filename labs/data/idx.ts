// IDX files (MNIST, Fashion-MNIST): magic 0x00 0x00 <type> <rank>, then <rank> big-endian u32
// dimensions, then the values in row-major order, big-endian.

export type IdxType = "u8" | "i8" | "i16" | "i32" | "f32" | "f64";
export type IdxData =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Int32Array
  | Float32Array
  | Float64Array;

export interface IdxArray {
  type: IdxType;
  shape: number[];
  data: IdxData;
}

const TYPES: Record<number, { type: IdxType; bytes: number }> = {
  0x08: { type: "u8", bytes: 1 },
  0x09: { type: "i8", bytes: 1 },
  0x0b: { type: "i16", bytes: 2 },
  0x0c: { type: "i32", bytes: 4 },
  0x0d: { type: "f32", bytes: 4 },
  0x0e: { type: "f64", bytes: 8 },
};

const hex = (b: number) => `0x${b.toString(16).padStart(2, "0")}`;

/** Parses one IDX file; `what` names it in errors. Validates the magic and the exact length. */
export function parseIdx(bytes: Uint8Array, what = "IDX file"): IdxArray {
  const fail = (message: string): never => {
    throw new Error(`parseIdx: ${what}: ${message}`);
  };
  if (bytes.length < 4) fail(`${bytes.length} bytes, too short for the 4-byte magic number`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    fail(
      `bad magic number ${[...bytes.subarray(0, 4)].map(hex).join(" ")}; an IDX file starts ` +
        `0x00 0x00 <type> <rank>${
          bytes[0] === 0x1f && bytes[1] === 0x8b ? " (this one is gzipped)" : ""
        }`,
    );
  }
  const kind = TYPES[bytes[2]] ?? fail(
    `unknown type code ${hex(bytes[2])} (expected 0x08 u8, 0x09 i8, 0x0b i16, 0x0c i32, ` +
      `0x0d f32 or 0x0e f64)`,
  );
  const rank = bytes[3];
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) {
    fail(`${bytes.length} bytes, truncated inside the ${rank} dimensions`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  let count = 1;
  for (let i = 0; i < rank; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    shape.push(d);
    count *= d;
  }
  const expected = headerBytes + count * kind.bytes;
  if (bytes.length !== expected) {
    fail(
      `${bytes.length} bytes, but ${kind.type} [${shape.join(", ")}] needs ${expected} ` +
        `(${bytes.length < expected ? "truncated" : "trailing bytes"})`,
    );
  }
  const body = bytes.subarray(headerBytes);
  let data: IdxData;
  switch (kind.type) {
    case "u8":
      data = body.slice();
      break;
    case "i8":
      data = new Int8Array(body.slice().buffer);
      break;
    default: {
      const read = {
        i16: (o: number) => view.getInt16(o, false),
        i32: (o: number) => view.getInt32(o, false),
        f32: (o: number) => view.getFloat32(o, false),
        f64: (o: number) => view.getFloat64(o, false),
      }[kind.type];
      data = new { i16: Int16Array, i32: Int32Array, f32: Float32Array, f64: Float64Array }[
        kind.type
      ](count);
      for (let i = 0; i < count; i++) data[i] = read(headerBytes + i * kind.bytes);
    }
  }
  return { type: kind.type, shape, data };
}

/** Reads a possibly gzipped (`.gz`, detected by its magic bytes) IDX payload into raw bytes. */
export async function gunzipIfNeeded(bytes: Uint8Array): Promise<Uint8Array> {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
