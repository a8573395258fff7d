// The op suite's page script: runs the sampled op checks in the browser and leaves the outcome
// on `window.opSuite` for the Chromium test to read (tests/browser_ops.test.ts).
import { type OpSuiteOutcome, runOpSuite } from "../op_checks/run.ts";

const done = (outcome: OpSuiteOutcome) => {
  (globalThis as { opSuite?: OpSuiteOutcome }).opSuite = outcome;
};

const families = new URLSearchParams(location.search).get("families")?.split(",");
runOpSuite({
  sample: true,
  families,
  onResult: (r) =>
    console.log(`op suite: ${r.error ? "FAIL" : "ok"} ${r.name} ${r.passed}/${r.run}`),
}).then(
  done,
  (e) => done({ error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) }),
);
