// Server side of an island: the component rendered to HTML inside a marked element, with its
// props serialised next to it for web/islands/hydrate.ts to hydrate the same tree in the browser.
import type { ComponentProps, VNode } from "preact";
import { type IslandName, ISLANDS } from "./islands/registry.ts";

let counter = 0;

/** JSON that cannot close the script element it sits in. */
function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(
    /\u2028|\u2029/g,
    (c) => c === "\u2028" ? "\\u2028" : "\\u2029",
  );
}

export function Island<K extends IslandName>(
  { name, props }: { name: K; props: ComponentProps<(typeof ISLANDS)[K]> },
) {
  const id = `island-${++counter}`;
  // One component of the table, chosen by `name`: TypeScript cannot narrow the union by K.
  const Component = ISLANDS[name] as unknown as (p: object) => VNode;
  return (
    <>
      <script
        type="application/json"
        id={`${id}-props`}
        dangerouslySetInnerHTML={{ __html: scriptSafeJson(props) }}
      />
      <div id={id} data-island={name}>
        <Component {...(props as object)} />
      </div>
    </>
  );
}
