// The style-transfer exercise's image files: PNG decoded by `fast-png` (image-js, MIT) and JPEG
// by `jpeg-js` (BSD-3) — both pure JavaScript with their own .d.ts, so they run wherever Deno
// runs with no native library; fast-png is image-js's own codec, still released in 2026; jpeg-js
// 0.4.4 carries the fixes of its decoder CVEs (2020-8175, 2022-25851). Images come out as 8-bit
// RGB tiles (labs/images.ts, whose `encodePng` writes the results) with Keras' `load_img`
// semantics: colour kept, alpha dropped, greyscale repeated over R, G, B, and resizing stretches
// to the target size (bilinear here, nearest in Keras).
import { convertIndexedToRgb, decode as decodePng, hasPngSignature } from "fast-png";
import { decode as decodeJpeg } from "jpeg-js";
import type { Tile } from "../images.ts";

/** 8-bit RGB from `channels` interleaved samples of 8 or 16 bits (alpha dropped). */
function toRgb(
  data: ArrayLike<number>,
  pixels: number,
  channels: number,
  depth: number,
): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  const scale = depth === 16 ? 1 / 257 : depth === 8 ? 1 : 255 / (2 ** depth - 1);
  const colour = channels >= 3;
  for (let i = 0; i < pixels; i++) {
    for (let c = 0; c < 3; c++) {
      rgb[3 * i + c] = Math.round(data[i * channels + (colour ? c : 0)] * scale);
    }
  }
  return rgb;
}

function decodePngTile(bytes: Uint8Array): Tile {
  const png = decodePng(bytes);
  const pixels = png.width * png.height;
  if (png.palette) {
    const expanded = convertIndexedToRgb(png);
    return {
      width: png.width,
      height: png.height,
      rgb: toRgb(expanded, pixels, expanded.length / pixels, 8),
    };
  }
  return {
    width: png.width,
    height: png.height,
    rgb: toRgb(png.data, pixels, png.channels, png.depth),
  };
}

function decodeJpegTile(bytes: Uint8Array): Tile {
  const jpeg = decodeJpeg(bytes, { useTArray: true, formatAsRGBA: false });
  return { width: jpeg.width, height: jpeg.height, rgb: jpeg.data };
}

/** A PNG or JPEG file's pixels as RGB; `source` names the file in errors. */
export function decodeImage(bytes: Uint8Array, source: string): Tile {
  const isJpeg = bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  if (!hasPngSignature(bytes) && !isJpeg) {
    throw new Error(`${source}: not a PNG or JPEG file (unrecognised signature)`);
  }
  try {
    return isJpeg ? decodeJpegTile(bytes) : decodePngTile(bytes);
  } catch (error) {
    throw new Error(`${source}: cannot decode the ${isJpeg ? "JPEG" : "PNG"} data: ${error}`);
  }
}

export async function readImage(file: string): Promise<Tile> {
  return decodeImage(await Deno.readFile(file), file);
}

/** Bilinear resampling to width × height (pixel centres aligned, edges clamped; stretches). */
export function resizeBilinear(image: Tile, width: number, height: number): Tile {
  const rgb = new Uint8Array(width * height * 3);
  const axis = (out: number, size: number, from: number) => {
    const at = Math.min(Math.max((out + 0.5) * (from / size) - 0.5, 0), from - 1);
    const low = Math.floor(at);
    return { low, high: Math.min(low + 1, from - 1), t: at - low };
  };
  for (let y = 0; y < height; y++) {
    const ay = axis(y, height, image.height);
    for (let x = 0; x < width; x++) {
      const ax = axis(x, width, image.width);
      const at = (yy: number, xx: number, c: number) => image.rgb[(yy * image.width + xx) * 3 + c];
      for (let c = 0; c < 3; c++) {
        const top = at(ay.low, ax.low, c) * (1 - ax.t) + at(ay.low, ax.high, c) * ax.t;
        const bottom = at(ay.high, ax.low, c) * (1 - ax.t) + at(ay.high, ax.high, c) * ax.t;
        rgb[(y * width + x) * 3 + c] = Math.round(top * (1 - ay.t) + bottom * ay.t);
      }
    }
  }
  return { width, height, rgb };
}
