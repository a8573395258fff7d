// The op checks of each family as plain data: `tests/<family>.test.ts` registers them with
// Deno.test, and tests/browser_ops.test.ts runs the same list inside Chromium.

export interface OpCheckTest {
  family: string;
  name: string;
  run: () => Promise<void>;
}

/** A family's list and the `test(name, run)` that fills it (written like Deno.test). */
export function opCheckTests(family: string) {
  const tests: OpCheckTest[] = [];
  const test = (name: string, run: () => Promise<void>) => tests.push({ family, name, run });
  return { test, tests };
}
