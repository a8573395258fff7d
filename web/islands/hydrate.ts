// The browser bundle's entry (`deno task web:build`): every element the server marked with
// data-island is hydrated with the component of that name and the props serialised beside it.
import { h, hydrate } from "preact";
import { type IslandName, ISLANDS } from "./registry.ts";

for (const element of document.querySelectorAll<HTMLElement>("[data-island]")) {
  const name = element.dataset.island as IslandName;
  const propsScript = document.getElementById(`${element.id}-props`);
  const component = ISLANDS[name] as (props: unknown) => unknown;
  if (!component || !propsScript) throw new Error(`island '${name}': component or props missing`);
  // deno-lint-ignore no-explicit-any
  hydrate(h(component as any, JSON.parse(propsScript.textContent ?? "{}")), element);
}
// Marks the page interactive (browser tests wait for it before they click).
document.documentElement.dataset.hydrated = "true";
