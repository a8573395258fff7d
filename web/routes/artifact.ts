// `/runs/:runId/artifacts/<path>`: one artifact file's bytes, read through the store (which
// refuses paths that leave the run's artifact root). Only images display inline: anything else
// downloads, so a file in the store can never run as a page of this site.
import { found, NotFound, param, type Route, safeSegments } from "../route.ts";

const INLINE_TYPES: Record<string, string> = { ".png": "image/png" };

export const route: Route = {
  pattern: "/runs/:runId/artifacts/*",
  async handle(request) {
    const runId = param(request, "runId");
    const segments = safeSegments(request.params["0"] ?? "");
    if (!segments) throw new NotFound("bad artifact path");
    const relPath = segments.join("/");
    const bytes = await found(request.ui.store.readArtifact(runId, relPath), "artifact");
    const extension = /\.[^./]+$/.exec(relPath)?.[0].toLowerCase() ?? "";
    const inline = INLINE_TYPES[extension];
    const fileName = encodeURIComponent(segments.at(-1)!);
    return new Response(bytes as Uint8Array<ArrayBuffer>, {
      headers: {
        "content-type": inline ?? "application/octet-stream",
        "content-disposition": inline ? "inline" : `attachment; filename*=UTF-8''${fileName}`,
        "x-content-type-options": "nosniff",
      },
    });
  },
};
