// Image figures for the vision labs: tiles of pixels (grey maps, masks, error maps) laid out in a labelled
// grid. Each tile is encoded as a PNG (zlib through CompressionStream, so no dependency), embedded
// in an SVG with the titles, and the SVG is rasterised by resvg like every other lab figure.
import { svgToPng } from "./figures.ts";

/** An RGB image, 3 bytes per pixel, row-major. */
export interface Tile {
  width: number;
  height: number;
  rgb: Uint8Array;
}

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** An 8-bit RGB PNG of `tile`. */
export async function encodePng(tile: Tile): Promise<Uint8Array> {
  const { width, height, rgb } = tile;
  if (rgb.length !== width * height * 3) {
    throw new Error(`encodePng: ${rgb.length} bytes for ${width}×${height} RGB pixels`);
  }
  // Each scanline starts with filter type 0 (none).
  const raw = new Uint8Array(height * (1 + 3 * width));
  for (let y = 0; y < height; y++) {
    raw.set(rgb.subarray(y * 3 * width, (y + 1) * 3 * width), y * (1 + 3 * width) + 1);
  }
  const zlib = new Uint8Array(
    await new Response(new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate")))
      .arrayBuffer(),
  );
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits, truecolour, deflate, adaptive filters, no interlace
  const parts = [
    Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a),
    chunk("IHDR", header),
    chunk("IDAT", zlib),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Values in [low, high] as grey levels (clipped); `values[offset + y·width + x]`. */
export function greyTile(
  values: ArrayLike<number>,
  width: number,
  height: number,
  { offset = 0, low = 0, high = 1 } = {},
): Tile {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const v = Math.round((255 * (values[offset + i] - low)) / (high - low));
    rgb.fill(Math.min(255, Math.max(0, v)), 3 * i, 3 * i + 3);
  }
  return { width, height, rgb };
}

/**
 * Image `index` of a channels-last batch ([N, height, width, channels], 1 or 3 channels) as a
 * tile, values in [low, high] (default [0, 1]) scaled to 0–255 and clipped.
 */
export function imageTile(
  batch: ArrayLike<number>,
  index: number,
  [height, width, channels]: readonly number[],
  { low = 0, high = 1 } = {},
): Tile {
  if (channels !== 1 && channels !== 3) {
    throw new Error(`imageTile: ${channels} channels, expected 1 (grey) or 3 (RGB)`);
  }
  const pixels = height * width;
  const offset = index * pixels * channels;
  const rgb = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < 3; c++) {
      const v = batch[offset + p * channels + (channels === 3 ? c : 0)];
      rgb[3 * p + c] = Math.min(255, Math.max(0, Math.round((255 * (v - low)) / (high - low))));
    }
  }
  return { width, height, rgb };
}

export const ERROR_COLOURS = {
  truePositive: [235, 235, 235],
  falsePositive: [220, 50, 47],
  falseNegative: [38, 139, 210],
  trueNegative: [0, 0, 0],
} as const;

/** Thresholded prediction against the mask: TP light grey, FP red, FN blue, TN black. */
export function errorTile(
  pred: ArrayLike<number>,
  mask: ArrayLike<number>,
  width: number,
  height: number,
  { offset = 0, threshold = 0.5 } = {},
): Tile {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const p = pred[offset + i] > threshold;
    const t = mask[offset + i] > 0.5;
    const colour = p && t
      ? ERROR_COLOURS.truePositive
      : p
      ? ERROR_COLOURS.falsePositive
      : t
      ? ERROR_COLOURS.falseNegative
      : ERROR_COLOURS.trueNegative;
    rgb.set(colour, 3 * i);
  }
  return { width, height, rgb };
}

function base64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

const escapeXml = (s: string) =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

export interface GridRow {
  /** Left of the row (may be empty). */
  label: string;
  tiles: Tile[];
  /** Under each tile (optional). */
  captions?: string[];
}

export interface GridOptions {
  title: string;
  columns: string[];
  rows: GridRow[];
  /** Displayed edge of a tile in pixels (default 128); tiles are scaled without smoothing. */
  cell?: number;
  /** A line under the grid (e.g. the colour key). */
  footer?: string;
}

/** The grid as PNG: a title, column headings, row labels, tiles and captions. */
export async function gridPng(options: GridOptions): Promise<Uint8Array> {
  const { title, columns, rows, cell = 128, footer } = options;
  const gap = 8;
  const left = Math.max(0, ...rows.map((r) => r.label.length)) * 7 +
    (rows.some((r) => r.label) ? 16 : 8);
  const top = 56;
  const captioned = rows.some((r) => r.captions?.length);
  const rowHeight = cell + gap + (captioned ? 16 : 0);
  // Room for the title too (about 9 px per character of 15 px bold DejaVu Sans).
  const across = Math.max(columns.length, ...rows.map((r) => r.tiles.length));
  const width = Math.max(left + across * (cell + gap) + 8, left + 9 * title.length);
  const height = top + rows.length * rowHeight + (footer ? 28 : 8);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
    ...columns.map((c, j) =>
      `<text x="${left + j * (cell + gap) + cell / 2}" y="${
        top - 10
      }" font-size="12" text-anchor="middle">${escapeXml(c)}</text>`
    ),
  ];
  for (const [i, row] of rows.entries()) {
    const y = top + i * rowHeight;
    parts.push(
      `<text x="8" y="${y + cell / 2 + 4}" font-size="12">${escapeXml(row.label)}</text>`,
    );
    for (const [j, tile] of row.tiles.entries()) {
      const x = left + j * (cell + gap);
      const png = base64(await encodePng(tile));
      parts.push(
        `<image x="${x}" y="${y}" width="${cell}" height="${cell}" ` +
          `preserveAspectRatio="none" style="image-rendering:optimizeSpeed" ` +
          `href="data:image/png;base64,${png}"/>`,
      );
      const caption = row.captions?.[j];
      if (caption) {
        parts.push(
          `<text x="${x + cell / 2}" y="${y + cell + 14}" font-size="11" ` +
            `text-anchor="middle">${escapeXml(caption)}</text>`,
        );
      }
    }
  }
  if (footer) {
    parts.push(
      `<text x="${left}" y="${height - 10}" font-size="11">${escapeXml(footer)}</text>`,
    );
  }
  parts.push("</svg>");
  return svgToPng(parts.join("\n"), 1);
}
