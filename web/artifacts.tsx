// A run's artifacts on its page: PNG figures inline, Vega-Lite specs (`*.vl.json`) and JSON
// arrays as interactive charts, Markdown reports rendered, safetensors files summarised,
// text shown; anything else is a download link. Everything is read through the store.
import { Marked } from "marked";
import type { VNode } from "preact";
import { decodeSafetensors } from "../engine/io/safetensors.ts";
import type { ArtifactInfo } from "../tracking/store.ts";
import { Island } from "./island.tsx";
import { formatNumber } from "./islands/series.ts";
import { jsonChartSpec } from "./json_chart.ts";
import type { ReadOnlyStore } from "./route.ts";

/** Files listed at most, and bytes shown of a text file. */
const MAX_ARTIFACTS = 300;
const MAX_TEXT_BYTES = 20_000;
const MAX_CHART_JSON_BYTES = 4_000_000;

export function artifactUrl(runId: string, relPath: string): string {
  return `/runs/${runId}/artifacts/${relPath.split("/").map(encodeURIComponent).join("/")}`;
}

/** Every file under the run's artifact root, depth first, sorted by path within a folder. */
export async function listArtifactFiles(store: ReadOnlyStore, runId: string) {
  const files: ArtifactInfo[] = [];
  const walk = async (dir: string | undefined) => {
    for (const entry of await store.listArtifacts(runId, dir)) {
      if (files.length >= MAX_ARTIFACTS) return;
      if (entry.isDir) await walk(entry.path);
      else files.push(entry);
    }
  };
  await walk(undefined);
  return files;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Markdown to HTML with raw HTML escaped and relative images pointing at the run's artifacts. */
function markdownHtml(text: string, runId: string, relPath: string): string {
  const folder = relPath.includes("/") ? relPath.slice(0, relPath.lastIndexOf("/") + 1) : "";
  const marked = new Marked({
    renderer: {
      html: ({ text }) => escapeHtml(text),
      image: ({ href, text }) => {
        const relative = !/^[a-z][a-z0-9+.-]*:|^\//i.test(href) && !href.includes("..");
        return relative
          ? `<img src="${escapeHtml(artifactUrl(runId, folder + href))}" alt="${escapeHtml(text)}">`
          : escapeHtml(`[image: ${text}]`);
      },
    },
  });
  return marked.parse(text, { async: false });
}

function SafetensorsSummary({ bytes }: { bytes: Uint8Array }) {
  const { tensors, metadata } = decodeSafetensors(bytes);
  const entries = Object.entries(tensors);
  const total = entries.reduce((n, [, t]) => n + t.data.length, 0);
  return (
    <>
      <p>
        {entries.length} tensors, {formatNumber(total)} values
        {Object.keys(metadata).length > 0 && `; metadata: ${Object.keys(metadata).join(", ")}`}
      </p>
      <table class="safetensors">
        <thead>
          <tr>
            <th>tensor</th>
            <th>dtype</th>
            <th>shape</th>
            <th class="number">bytes</th>
          </tr>
        </thead>
        <tbody>
          {entries.map(([name, t]) => (
            <tr key={name}>
              <td class="mono">{name}</td>
              <td>{t.dtype}</td>
              <td class="mono">[{t.shape.join(", ")}]</td>
              <td class="number">{t.data.byteLength}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

async function artifactBody(store: ReadOnlyStore, runId: string, file: ArtifactInfo) {
  const name = file.path.toLowerCase();
  const size = file.fileSize ?? 0;
  if (name.endsWith(".png")) return <img src={artifactUrl(runId, file.path)} alt={file.path} />;
  const read = () => store.readArtifact(runId, file.path);
  const text = async () => new TextDecoder().decode(await read());
  if (name.endsWith(".safetensors")) return <SafetensorsSummary bytes={await read()} />;
  if (name.endsWith(".md")) {
    return (
      <div
        class="report"
        dangerouslySetInnerHTML={{ __html: markdownHtml(await text(), runId, file.path) }}
      />
    );
  }
  if (name.endsWith(".json") && size <= MAX_CHART_JSON_BYTES) {
    const parsed = JSON.parse(await text());
    const spec = name.endsWith(".vl.json") ? parsed : jsonChartSpec(parsed);
    if (spec) return <Island name="VegaChart" props={{ spec, label: file.path }} />;
  }
  if (name.endsWith(".json") && size <= MAX_TEXT_BYTES) {
    return <pre>{JSON.stringify(JSON.parse(await text()), null, 2)}</pre>;
  }
  if (/\.(txt|yaml|yml|csv|log)$/.test(name) && size <= MAX_TEXT_BYTES) {
    return <pre>{await text()}</pre>;
  }
  return <a href={artifactUrl(runId, file.path)} download>download ({formatNumber(size)} bytes)</a>;
}

/** A PNG whose `.vl.json` spec sits beside it is shown as the interactive chart only. */
function shown(files: ArtifactInfo[]): ArtifactInfo[] {
  const paths = new Set(files.map((f) => f.path));
  return files.filter((f) =>
    !(f.path.endsWith(".png") && paths.has(f.path.replace(/\.png$/, ".vl.json")))
  );
}

/** The artifacts section of a run page (built before rendering: its reads are async). */
export async function artifactSection(store: ReadOnlyStore, runId: string): Promise<VNode> {
  const files = await listArtifactFiles(store, runId);
  if (files.length === 0) return <p class="empty">No artifacts.</p>;
  const bodies = await Promise.all(
    shown(files).map(async (file) => {
      try {
        return { file, body: await artifactBody(store, runId, file) };
      } catch (error) {
        return {
          file,
          body: <p class="empty">Cannot show this file: {(error as Error).message}</p>,
        };
      }
    }),
  );
  return (
    <>
      {bodies.map(({ file, body }) => (
        <div class="artifact" key={file.path} data-artifact={file.path}>
          <h3 class="mono">
            <a href={artifactUrl(runId, file.path)}>{file.path}</a>
          </h3>
          {body}
        </div>
      ))}
    </>
  );
}
