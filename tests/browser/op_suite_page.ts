// The op suite's page script: runs the op checks in the browser and leaves the outcome on
// `window.opSuite` for the Chromium test to read (tests/browser_ops.test.ts). `?families=a,b`
// runs those families only; `?all` runs every case instead of one per kernel variant class.
import { type OpSuiteOutcome, runOpSuite } from "../op_checks/run.ts";

const done = (outcome: OpSuiteOutcome) => {
  (globalThis as { opSuite?: OpSuiteOutcome }).opSuite = outcome;
};

const query = new URLSearchParams(location.search);
const families = query.get("families")?.split(",");
runOpSuite({
  sample: !query.has("all"),
  families,
  onResult: (r) =>
    console.log(`op suite: ${r.error ? "FAIL" : "ok"} ${r.name} ${r.passed}/${r.run}`),
}).then(
  done,
  (e) => done({ error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) }),
);
