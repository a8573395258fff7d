// Host Philox-4x32-10 (BigInt multiplies, independent of the WGSL 16-bit-split version) and
// the dropout keep-mask it defines.

const M0 = 0xD2511F53n;
const M1 = 0xCD9E8D57n;
const W0 = 0x9E3779B9;
const W1 = 0xBB67AE85;

function mulHiLo(m: bigint, a: number): [number, number] {
  const p = m * BigInt(a >>> 0);
  return [Number(p >> 32n), Number(p & 0xffffffffn)];
}

export function philox4x32(
  counter: readonly number[],
  key: readonly number[],
): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter.map((v) => v >>> 0);
  let [k0, k1] = key.map((v) => v >>> 0);
  for (let round = 0; round < 10; round++) {
    const [hi0, lo0] = mulHiLo(M0, c0);
    const [hi1, lo1] = mulHiLo(M1, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

/** The keep-mask `dropout(x, rate, {seed, offset})` applies to n elements (1 = kept). */
export function dropoutMaskRef(n: number, rate: number, seed: number, offset: number): Uint8Array {
  const threshold = Math.min(Math.round(rate * 2 ** 32), 2 ** 32 - 1);
  const key = [seed >>> 0, Math.floor(seed / 2 ** 32)];
  const mask = new Uint8Array(n);
  for (let block = 0; block * 4 < n; block++) {
    const bits = philox4x32([block, offset >>> 0, Math.floor(offset / 2 ** 32), 0], key);
    for (let j = 0; j < 4 && block * 4 + j < n; j++) {
      mask[block * 4 + j] = bits[j] >= threshold ? 1 : 0;
    }
  }
  return mask;
}
