// The part of node:assert/strict that the shared op checks use, for code that also runs in the
// browser (node: modules are not bundled for it).

export class AssertionError extends Error {}

function fail(message: string | undefined, detail: string): never {
  throw new AssertionError(message ? `${message}\n${detail}` : detail);
}

function show(value: unknown): string {
  try {
    return JSON.stringify(value, (_, v) => typeof v === "bigint" ? `${v}n` : v) ?? String(value);
  } catch {
    return String(value);
  }
}

function deepEqualValues(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const keysA = Object.keys(a), keysB = Object.keys(b);
  if (keysA.length !== keysB.length) return false;
  const ra = a as Record<string, unknown>, rb = b as Record<string, unknown>;
  return keysA.every((k) => Object.hasOwn(rb, k) && deepEqualValues(ra[k], rb[k]));
}

function ok(value: unknown, message?: string): asserts value {
  if (!value) fail(message, `expected a truthy value, got ${show(value)}`);
}

function equal<T>(actual: unknown, expected: T, message?: string): asserts actual is T {
  if (!Object.is(actual, expected)) fail(message, `${show(actual)} !== ${show(expected)}`);
}

function deepEqual<T>(actual: unknown, expected: T, message?: string): asserts actual is T {
  if (!deepEqualValues(actual, expected)) {
    fail(message, `${show(actual)} is not deeply equal to ${show(expected)}`);
  }
}

function throws(fn: () => unknown, pattern?: RegExp, message?: string): void {
  try {
    fn();
  } catch (e) {
    const text = e instanceof Error ? e.message : String(e);
    if (pattern && !pattern.test(text)) fail(message, `'${text}' does not match ${pattern}`);
    return;
  }
  fail(message, "expected the function to throw");
}

async function rejects(fn: () => Promise<unknown>, pattern?: RegExp, message?: string) {
  try {
    await fn();
  } catch (e) {
    const text = e instanceof Error ? e.message : String(e);
    if (pattern && !pattern.test(text)) fail(message, `'${text}' does not match ${pattern}`);
    return;
  }
  fail(message, "expected the promise to reject");
}

interface Assert {
  (value: unknown, message?: string): asserts value;
  ok(value: unknown, message?: string): asserts value;
  equal<T>(actual: unknown, expected: T, message?: string): asserts actual is T;
  deepEqual<T>(actual: unknown, expected: T, message?: string): asserts actual is T;
  throws(fn: () => unknown, pattern?: RegExp, message?: string): void;
  rejects(fn: () => Promise<unknown>, pattern?: RegExp, message?: string): Promise<void>;
}

const assert: Assert = Object.assign(ok, { ok, equal, deepEqual, throws, rejects });
export default assert;
