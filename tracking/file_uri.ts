// `file:` URIs as MLflow writes and reads them (artifact_location, artifact_uri, tracking URIs).
import * as path from "node:path";

/** Python's urllib.parse.quote(safe="/"): everything but A-Za-z0-9_.-~ and `/` is %-encoded. */
function quotePath(p: string): string {
  return p.split("/").map((segment) =>
    encodeURIComponent(segment).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    )
  ).join("/");
}

/** `file://` URI of an absolute path, as pathlib's `as_uri()` writes it (MLflow does). */
export function pathToFileUri(absPath: string): string {
  const p = absPath.replaceAll("\\", "/");
  const drive = /^[A-Za-z]:/.exec(p);
  if (drive) return `file:///${drive[0]}${quotePath(p.slice(2))}`;
  return `file://${quotePath(p)}`;
}

/** Local path of a `file:` URI (`file:///abs`, `file://localhost/abs`, `file:rel`, `file:/abs`). */
export function fileUriToPath(uri: string): string {
  if (!/^file:/i.test(uri)) throw new Error(`Not a file URI: '${uri}'`);
  let rest = uri.slice(5);
  if (rest.startsWith("//")) {
    const slash = rest.indexOf("/", 2);
    const host = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
    if (host !== "" && host.toLowerCase() !== "localhost") {
      throw new Error(`File URI '${uri}' names a remote host '${host}'; only local paths work`);
    }
    rest = slash < 0 ? "/" : rest.slice(slash);
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    throw new Error(`File URI '${uri}' has a malformed %-escape`);
  }
  // file:///C:/x → C:/x
  return /^\/[A-Za-z]:/.test(decoded) ? decoded.slice(1) : decoded;
}

/** The absolute directory of a file-store location: `file:<dir>`, `file:///abs` or a path. */
export function resolveTrackingRoot(uri: string): string {
  if (uri.trim() === "") throw new Error("Tracking URI is empty");
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(uri)?.[1];
  // A single letter followed by ':' is a Windows drive, not a scheme.
  if (scheme === undefined || scheme.length === 1) return path.resolve(uri);
  if (scheme.toLowerCase() !== "file") {
    throw new Error(
      `Tracking URI '${uri}' uses the '${scheme}' scheme, but the file store needs file:<dir>, ` +
        "file:///absolute/dir or a plain directory path",
    );
  }
  return path.resolve(fileUriToPath(uri));
}
