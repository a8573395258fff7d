// A kernel's uniform block, declared once: the WGSL struct and the packer come from the same field
// list, so the bytes an op writes cannot drift from the struct its shader reads. Offsets follow
// WGSL's uniform layout (scalars 4-byte, vec2 8-byte, vec3/vec4 and arrays 16-byte aligned).

type Lane = "u" | "i" | "f";
type Scalar = "u32" | "i32" | "f32";
type Vector = `vec${2 | 3 | 4}${Lane}`;
type VectorArray = `array<vec4${Lane}, ${number}>`;
export type UniformType = Scalar | Vector | VectorArray;
export type UniformFields = Record<string, UniformType>;

/** Values to pack: a number per scalar, up to the field's lane count per vector or array. */
export type UniformValues<F extends UniformFields> = { [K in keyof F]: ValueOf<F[K]> };
type ValueOf<T extends UniformType> = T extends Scalar ? number : readonly number[];

interface Slot {
  name: string;
  type: UniformType;
  lane: Lane;
  offset: number;
  lanes: number;
}

const U32_MAX = 2 ** 32;
const I32_MIN = -(2 ** 31);

function slotShape(type: UniformType): { lane: Lane; lanes: number; align: number } {
  const scalar = /^([uif])32$/.exec(type);
  if (scalar) return { lane: scalar[1] as Lane, lanes: 1, align: 4 };
  const vector = /^vec([234])([uif])$/.exec(type);
  if (vector) {
    const n = Number(vector[1]);
    return { lane: vector[2] as Lane, lanes: n, align: n === 2 ? 8 : 16 };
  }
  const array = /^array<vec4([uif]), (\d+)>$/.exec(type);
  if (array && Number(array[2]) > 0) {
    return { lane: array[1] as Lane, lanes: 4 * Number(array[2]), align: 16 };
  }
  throw new Error(`uniform block: unsupported field type '${type}'`);
}

export class UniformBlock<F extends UniformFields> {
  /** Packed size in bytes (a multiple of 16, as a uniform binding needs). */
  readonly bytes: number;
  private readonly slots: Slot[] = [];

  constructor(readonly fields: F) {
    let offset = 0;
    for (const [name, type] of Object.entries(fields)) {
      const { lane, lanes, align } = slotShape(type);
      offset = Math.ceil(offset / align) * align;
      this.slots.push({ name, type, lane, offset, lanes });
      offset += 4 * lanes;
    }
    this.bytes = Math.max(16, Math.ceil(offset / 16) * 16);
  }

  /** WGSL: `struct <name> { field: type, … }`. */
  struct(name = "U"): string {
    return `struct ${name} { ${this.slots.map((s) => `${s.name}: ${s.type}`).join(", ")} }`;
  }

  /** The block's bytes; throws naming the field when a value does not fit its type. */
  pack(values: UniformValues<F>): ArrayBuffer {
    const buffer = new ArrayBuffer(this.bytes);
    const view = new DataView(buffer);
    for (const slot of this.slots) {
      const value = (values as Record<string, number | readonly number[]>)[slot.name];
      const list = typeof value === "number" ? [value] : value;
      if (list === undefined || list.length > slot.lanes) {
        throw new Error(
          `uniform '${slot.name}' (${slot.type}): got ${
            list === undefined ? "no value" : `${list.length} values`
          }, expected at most ${slot.lanes}`,
        );
      }
      list.forEach((v, i) => {
        const at = slot.offset + 4 * i;
        if (slot.lane === "f") return view.setFloat32(at, v, true);
        const ok = Number.isInteger(v) &&
          (slot.lane === "u" ? v >= 0 && v < U32_MAX : v >= I32_MIN && v < -I32_MIN);
        if (!ok) throw new Error(`uniform '${slot.name}' (${slot.type}): ${v} does not fit`);
        if (slot.lane === "u") view.setUint32(at, v, true);
        else view.setInt32(at, v, true);
      });
    }
    return buffer;
  }
}

export function uniformBlock<F extends UniformFields>(fields: F): UniformBlock<F> {
  return new UniformBlock(fields);
}
