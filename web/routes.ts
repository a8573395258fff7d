// The route manifest (Fresh generates one; here it is written by hand): one file per page under
// web/routes/, tried in this order.
import type { Route } from "./route.ts";
import { route as metricsApi } from "./routes/api_metrics.ts";
import { route as spiralsApi } from "./routes/api_spirals.ts";
import { route as artifact } from "./routes/artifact.ts";
import { route as attention } from "./routes/attention.tsx";
import { route as attentionDemo } from "./routes/attention_demo.tsx";
import { route as benchmarks } from "./routes/benchmarks.tsx";
import { route as benchBrowser } from "./routes/bench_browser.tsx";
import { route as compare } from "./routes/compare.tsx";
import { route as experiment } from "./routes/experiment.tsx";
import { route as index } from "./routes/index.tsx";
import { route as playground } from "./routes/playground.tsx";
import { route as run } from "./routes/run.tsx";
import { route as runPredict } from "./routes/run_predict.ts";
import { route as train } from "./routes/train.tsx";

export const ROUTES: readonly Route[] = [
  index,
  experiment,
  run,
  attention,
  artifact,
  compare,
  benchmarks,
  metricsApi,
  playground,
  runPredict,
  train,
  spiralsApi,
  benchBrowser,
  attentionDemo,
];
