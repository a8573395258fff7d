// The page shell every route renders into: navigation, the stylesheet and the islands bundle.
import type { ComponentChildren } from "preact";

const BUNDLE_PATH = "/static/build/islands.js";

export function Layout(props: { title: string; children: ComponentChildren }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · denograd`}</title>
        <link rel="stylesheet" href="/static/style.css" />
        <link rel="icon" href="data:," />
      </head>
      <body>
        <header class="top">
          <a class="brand" href="/">denograd</a>
          <nav>
            <a href="/">experiments</a>
            <a href="/benchmarks">benchmarks</a>
            <a href="/playground">playground</a>
            <a href="/train">train in the page</a>
            <a href="/attention-demo">attention, live</a>
          </nav>
        </header>
        <main>{props.children}</main>
        <script type="module" src={BUNDLE_PATH} />
      </body>
    </html>
  );
}
