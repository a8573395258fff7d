// `/api/spirals?points=<per class>&seed=<n>`: the demo lab's two-spirals data (its own
// generator, labs/demo.ts) as JSON `{x: [x0, y0, x1, y1, …], y: [class, …]}`, for the page that
// trains the demo's MLP in the browser.
import { spirals } from "../../labs/demo.ts";
import { Rng } from "../../engine/random.ts";
import { json, NotFound, type Route } from "../route.ts";

/** Bounds the work one request can ask for (the demo uses 200 or 600 points per class). */
const MAX_POINTS = 5000;

function intParam(url: URL, name: string, min: number, max: number): number {
  const value = Number(url.searchParams.get(name));
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new NotFound(`${name}: expected an integer in [${min}, ${max}]`);
  }
  return value;
}

export const route: Route = {
  pattern: "/api/spirals",
  handle(request) {
    const points = intParam(request.url, "points", 1, MAX_POINTS);
    const seed = intParam(request.url, "seed", 0, 2 ** 31 - 1);
    const { x, y } = spirals(points, new Rng(seed));
    return Promise.resolve(json({ x: Array.from(x), y: Array.from(y) }));
  },
};
