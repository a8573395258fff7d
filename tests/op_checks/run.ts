// Runs every family's op checks and reports what ran: in Chromium (tests/browser_ops.test.ts)
// with one case per kernel variant class per test, since its pipeline builds are ~6× slower.
import type { AdapterReport } from "../../engine/device.ts";
import { opCheckCounts, sampleOpChecks, setup } from "../helpers.ts";
import { ATTENTION_CHECKS } from "./attention.ts";
import { BATCHNORM_CHECKS } from "./batchnorm.ts";
import { CONV_CHECKS } from "./conv.ts";
import { DECODE_CHECKS } from "./decode.ts";
import { DROPOUT_CHECKS } from "./dropout.ts";
import { ELEMENTWISE_CHECKS } from "./elementwise.ts";
import { LAYERNORM_CHECKS } from "./layernorm.ts";
import { LOSS_CHECKS } from "./loss.ts";
import { MATMUL_CHECKS } from "./matmul.ts";
import { OPTIM_CHECKS } from "./optim.ts";
import { POOL_CHECKS } from "./pool.ts";
import { REDUCE_CHECKS } from "./reduce.ts";
import { RNN_CHECKS } from "./rnn.ts";
import { SHAPE_CHECKS } from "./shape.ts";
import type { OpCheckTest } from "./suite.ts";

export const ALL_OP_CHECKS: OpCheckTest[] = [
  ...ELEMENTWISE_CHECKS,
  ...MATMUL_CHECKS,
  ...REDUCE_CHECKS,
  ...SHAPE_CHECKS,
  ...LOSS_CHECKS,
  ...CONV_CHECKS,
  ...POOL_CHECKS,
  ...BATCHNORM_CHECKS,
  ...LAYERNORM_CHECKS,
  ...ATTENTION_CHECKS,
  ...RNN_CHECKS,
  ...DECODE_CHECKS,
  ...OPTIM_CHECKS,
  ...DROPOUT_CHECKS,
];

export interface OpTestResult {
  family: string;
  name: string;
  /** Op checks this test ran and passed (a failure stops the test at its first bad check). */
  run: number;
  passed: number;
  sampledOut: number;
  seconds: number;
  error?: string;
}

export interface OpSuiteReport {
  adapter: AdapterReport;
  results: OpTestResult[];
  /** Kernels compiled, as `name|key`. */
  kernels: string[];
  seconds: number;
}

/** What the browser page leaves for its test: the report, or why the suite could not start. */
export type OpSuiteOutcome = OpSuiteReport | { error: string };

/**
 * Runs the tests whose family is in `families` (all when omitted). `sample`: only the first
 * check of each variant class (OpCheck.variant) per test; the others count as sampled out.
 */
export async function runOpSuite(
  { sample, families, onResult }: {
    sample: boolean;
    families?: string[];
    onResult?: (result: OpTestResult) => void;
  },
): Promise<OpSuiteReport> {
  const rt = await setup();
  const started = performance.now();
  let current = "";
  const seen = new Set<string>();
  sampleOpChecks(
    sample
      ? (spec) => {
        const key = `${current}|${spec.variant ?? ""}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      }
      : null,
  );
  const results: OpTestResult[] = [];
  for (const test of ALL_OP_CHECKS) {
    if (families && !families.includes(test.family)) continue;
    current = test.name;
    const before = { ...opCheckCounts };
    const t0 = performance.now();
    let error: string | undefined;
    try {
      await test.run();
    } catch (e) {
      error = e instanceof Error ? `${e.message}\n${e.stack ?? ""}` : String(e);
    }
    const result: OpTestResult = {
      family: test.family,
      name: test.name,
      run: opCheckCounts.run - before.run,
      passed: opCheckCounts.passed - before.passed,
      sampledOut: opCheckCounts.sampledOut - before.sampledOut,
      seconds: (performance.now() - t0) / 1000,
      error,
    };
    results.push(result);
    onResult?.(result);
  }
  sampleOpChecks(null);
  return {
    adapter: rt.ctx.report,
    results,
    kernels: rt.compiledKernels(),
    seconds: (performance.now() - started) / 1000,
  };
}
