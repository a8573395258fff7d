// A Vega-Lite spec rendered interactively (SVG, tooltips) by vega-embed, re-rendered when the
// spec changes. The server renders the empty frame; vega-embed only ever loads in the browser.
import { useEffect, useRef } from "preact/hooks";

// deno-lint-ignore no-explicit-any
export type VegaLiteSpec = Record<string, any>;

export function VegaChart(props: { spec: VegaLiteSpec; label: string }) {
  const frame = useRef<HTMLDivElement>(null);
  useEffect(() => {
    let finalize: (() => void) | null = null;
    let cancelled = false;
    import("vega-embed").then(async ({ default: embed }) => {
      if (cancelled || !frame.current) return;
      const result = await embed(frame.current, props.spec, { renderer: "svg", actions: false });
      if (cancelled) result.finalize();
      else finalize = () => result.finalize();
    }).catch((error) => {
      if (frame.current) frame.current.textContent = `chart failed: ${error.message}`;
    });
    return () => {
      cancelled = true;
      finalize?.();
    };
  }, [JSON.stringify(props.spec)]);
  return <div class="vega-chart" ref={frame} aria-label={props.label} />;
}
