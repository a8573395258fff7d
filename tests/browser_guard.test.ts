// The engine runs unchanged in the browser: nothing in engine/ may import from outside engine/
// (except the packages listed below), and nothing may touch the Deno namespace. Sources are
// parsed with the TypeScript compiler, so comments and string contents can neither hide a
// violation nor raise a false one.
import assert from "node:assert/strict";
import * as path from "node:path";
import ts from "typescript";

const ROOT = path.resolve(import.meta.dirname!, "..");
const ENGINE = path.join(ROOT, "engine");

/** Bare specifiers the engine may import; each must be mapped in deno.json's imports. */
const ALLOWED_PACKAGES = new Set(["wgsl-preprocessor"]);

const SCRIPT_EXTENSIONS = /\.(ts|tsx|mts|cts|js|jsx|mjs|cjs)$/;

export interface Violation {
  /** Path relative to the repository root. */
  file: string;
  line: number;
  message: string;
}

interface Source {
  /** Absolute path. */
  path: string;
  text: string;
}

/** Why an import of `specifier` from `file` leaves the engine, or null if it does not. */
function specifierProblem(specifier: string, file: string): string | null {
  if (/^\.\.?(\/|$)/.test(specifier)) {
    const target = path.relative(ENGINE, path.resolve(path.dirname(file), specifier));
    const outside = target === ".." || target.startsWith(`..${path.sep}`) ||
      path.isAbsolute(target);
    return outside ? `'${specifier}' resolves outside engine/` : null;
  }
  if (specifier.startsWith("/")) return `'${specifier}' is an absolute path`;
  if (/^[a-z][a-z0-9+.-]*:/i.test(specifier)) {
    return `'${specifier}': ${specifier.split(":")[0]}: imports cannot run in the browser build`;
  }
  if (ALLOWED_PACKAGES.has(specifier)) return null;
  return `package '${specifier}' is not in the engine's allow-list (${[...ALLOWED_PACKAGES]})`;
}

/** Every import that leaves engine/ and every reference to the Deno namespace in `sources`. */
export function findViolations(sources: Source[]): Violation[] {
  const found: Violation[] = [];
  for (const { path: file, text } of sources) {
    const kind = /\.[jt]sx$/.test(file) ? ts.ScriptKind.TSX : ts.ScriptKind.TS;
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, kind);
    const report = (pos: number, message: string) =>
      found.push({
        file: path.relative(ROOT, file),
        line: sf.getLineAndCharacterOfPosition(pos).line + 1,
        message,
      });
    const checkSpecifier = (node: ts.Node | undefined, what: string, at: ts.Node) => {
      if (node && ts.isStringLiteralLike(node)) {
        const problem = specifierProblem(node.text, file);
        if (problem) report(node.getStart(sf), `${what} ${problem}`);
      } else {
        report(at.getStart(sf), `${what} with a computed specifier cannot be checked`);
      }
    };
    // parseDiagnostics is internal but stable: a file that does not parse cannot be vouched for.
    for (const d of (sf as unknown as { parseDiagnostics: ts.Diagnostic[] }).parseDiagnostics) {
      report(
        d.start ?? 0,
        `does not parse: ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`,
      );
    }
    for (const ref of sf.referencedFiles) {
      const problem = specifierProblem(ref.fileName, file);
      if (problem) report(ref.pos, `/// <reference path> ${problem}`);
    }
    for (const ref of sf.typeReferenceDirectives) {
      report(ref.pos, `/// <reference types="${ref.fileName}"> brings in types from outside`);
    }
    for (const ref of sf.libReferenceDirectives) {
      report(ref.pos, `/// <reference lib="${ref.fileName}">: the engine uses its config's libs`);
    }
    const visit = (node: ts.Node): void => {
      if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
        if (node.moduleSpecifier) checkSpecifier(node.moduleSpecifier, "import", node);
      } else if (
        ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)
      ) {
        checkSpecifier(node.moduleReference.expression, "import", node);
      } else if (ts.isImportTypeNode(node)) {
        const arg = node.argument;
        checkSpecifier(
          ts.isLiteralTypeNode(arg) ? arg.literal : undefined,
          "import() type",
          node,
        );
      } else if (ts.isCallExpression(node)) {
        if (node.expression.kind === ts.SyntaxKind.ImportKeyword) {
          checkSpecifier(node.arguments[0], "dynamic import", node);
        } else if (ts.isIdentifier(node.expression) && node.expression.text === "require") {
          report(node.getStart(sf), "require() is not available in the browser");
        }
      } else if (ts.isIdentifier(node) && node.text === "Deno") {
        report(node.getStart(sf), "the Deno namespace does not exist in the browser");
      } else if (ts.isStringLiteralLike(node) && node.text === "Deno") {
        report(node.getStart(sf), `"Deno" looked up by name: the namespace is not in the browser`);
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return found;
}

async function engineSources(dir = ENGINE): Promise<Source[]> {
  const out: Source[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory) out.push(...await engineSources(full));
    else if (SCRIPT_EXTENSIONS.test(entry.name)) {
      out.push({ path: full, text: await Deno.readTextFile(full) });
    }
  }
  return out;
}

const format = (v: Violation) => `${v.file}:${v.line}: ${v.message}`;

Deno.test("browser guard: engine/ imports nothing from outside and never touches Deno", async () => {
  const sources = await engineSources();
  const names = sources.map((s) => path.relative(ENGINE, s.path));
  for (const expected of ["runtime.ts", path.join("ops", "matmul.ts"), path.join("nn", "rnn.ts")]) {
    assert.ok(names.includes(expected), `the scan missed engine/${expected}: ${names}`);
  }
  assert.deepEqual(findViolations(sources).map(format), []);
});

Deno.test("browser guard: each allowed package is mapped in deno.json", async () => {
  const config = JSON.parse(await Deno.readTextFile(path.join(ROOT, "deno.json")));
  for (const name of ALLOWED_PACKAGES) {
    assert.match(
      config.imports?.[name] ?? "",
      /^npm:/,
      `${name} is not mapped to npm: in deno.json`,
    );
  }
});

Deno.test("browser guard: reports each kind of violation with its file and line", () => {
  const at = (name: string) => path.join(ENGINE, "probe", name);
  const sources: Source[] = [
    {
      path: at("leaks.ts"),
      text: [
        `import { lab } from "../../labs/x.ts";`, // 1
        `import * as fs from "node:fs";`,
        `import pad from "left-pad";`,
        `export const home = Deno.env.get("HOME");`,
        `export * from "../../tracking/files.ts";`, // 5
        `const p = await import("jsr:@std/path");`,
        `const q = await import(someName);`,
        `type T = typeof import("npm:vega");`,
        `const d = (globalThis as any).Deno;`,
        `const e = (globalThis as any)["Deno"];`, // 10
        `const f = \`\${Deno.pid}\`;`,
        `import abs from "/etc/x.ts";`,
        `import deep from "../ops/../../web/serve.ts";`,
        `const r = require("fs");`,
      ].join("\n"),
    },
    {
      path: at("directives.ts"),
      text: [
        `/// <reference lib="deno.ns" />`,
        `/// <reference types="npm:@types/node" />`,
        `/// <reference path="../../labs/globals.d.ts" />`,
        `/// <reference path="./local.d.ts" />`,
        `export {};`, // 5
        `/// <reference lib="deno.ns" /> (not at the top: a plain comment, ignored by TypeScript)`,
      ].join("\n"),
    },
    {
      path: at("clean.ts"),
      text: [
        `// Deno.env.get("HOME") in a comment, and import x from "node:fs" too`,
        `/* import "../../labs/x.ts"; Deno.exit(1) */`,
        `/** Uses {@link Deno.env} — prose in a doc comment. */`,
        `import { wgsl } from "wgsl-preprocessor";`,
        `import { matmul } from "../ops/matmul.ts";`, // 5
        `export * from "./sibling.ts";`,
        `const s = "Deno.env.get('HOME') import('node:fs')";`,
        `const t = \`no Deno.\${"pid"} here, see ../../labs/x.ts\`;`,
        `const u = { denoland: 1, deno: 2 };`,
        `const v = "Deno is not here";`, // 10
      ].join("\n"),
    },
    {
      path: at("broken.ts"),
      text: `import { x } from "./ok.ts";\nconst = ;`,
    },
  ];
  const found = findViolations(sources);
  const where = (v: Violation) => `${path.basename(v.file)}:${v.line}`;
  assert.ok(found.every((v) => v.file === path.join("engine", "probe", path.basename(v.file))));
  assert.deepEqual(found.map(where), [
    "leaks.ts:1",
    "leaks.ts:2",
    "leaks.ts:3",
    "leaks.ts:4",
    "leaks.ts:5",
    "leaks.ts:6",
    "leaks.ts:7",
    "leaks.ts:8",
    "leaks.ts:9",
    "leaks.ts:10",
    "leaks.ts:11",
    "leaks.ts:12",
    "leaks.ts:13",
    "leaks.ts:14",
    "directives.ts:3",
    "directives.ts:2",
    "directives.ts:1",
    "broken.ts:2",
  ], found.map(format).join("\n"));
  const message = (line: number) => found.find((v) => v.line === line && /leaks/.test(v.file))!;
  assert.match(message(1).message, /'\.\.\/\.\.\/labs\/x\.ts' resolves outside engine\//);
  assert.match(message(2).message, /'node:fs': node: imports cannot run in the browser/);
  assert.match(message(3).message, /package 'left-pad' is not in the engine's allow-list/);
  assert.match(message(4).message, /Deno namespace/);
  assert.match(message(7).message, /computed specifier/);
  assert.match(message(10).message, /"Deno" looked up by name/);
  assert.match(found.at(-1)!.message, /does not parse/);
});

Deno.test("browser guard: engine/ type-checks without the Deno namespace", async () => {
  // The two configs copied beside three probe files: engine/deno.json must reject Deno.env inside
  // engine/ and accept the browser's DOM and WebGPU globals; the same line outside engine/ passes.
  const dir = await Deno.makeTempDir({ prefix: "denograd-browser-check-" });
  try {
    const config = JSON.parse(await Deno.readTextFile(path.join(ROOT, "deno.json")));
    await Deno.writeTextFile(
      path.join(dir, "deno.json"),
      JSON.stringify({ ...config, nodeModulesDir: "none", imports: {}, tasks: {} }),
    );
    await Deno.mkdir(path.join(dir, "engine"));
    await Deno.mkdir(path.join(dir, "labs"));
    await Deno.copyFile(path.join(ENGINE, "deno.json"), path.join(dir, "engine", "deno.json"));
    const leak = `export const home: string | undefined = Deno.env.get("HOME");\n`;
    const browser = `export const usage: number = GPUBufferUsage.STORAGE;\n` +
      `export const title = (): string => document.title;\n`;
    await Deno.writeTextFile(path.join(dir, "engine", "leak.ts"), leak);
    await Deno.writeTextFile(path.join(dir, "engine", "browser.ts"), browser);
    await Deno.writeTextFile(path.join(dir, "labs", "leak.ts"), leak);
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--no-lock", "engine/leak.ts", "engine/browser.ts", "labs/leak.ts"],
      cwd: dir,
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(stderr);
    assert.notEqual(code, 0, "Deno.env inside engine/ passed the browser type check");
    // One error, the engine's use of Deno: the browser globals and the same line in labs/ pass.
    const errors = text.match(/TS\d+ \[ERROR\]: .*/g) ?? [];
    assert.equal(errors.length, 1, text);
    assert.match(errors[0], /^TS2304 \[ERROR\]: Cannot find name 'Deno'/);
    assert.match(text, /engine\/leak\.ts:1:/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- import cycles --------------------------------------------------------------------------

/**
 * Value imports between engine files, relative to engine/. Type-only imports (`import type`, or
 * every name marked `type`) are erased before run time, so they cannot form a cycle.
 */
function valueImports(sources: Source[]): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const { path: file, text } of sources) {
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false);
    const targets = new Set<string>();
    for (const node of sf.statements) {
      if (!ts.isImportDeclaration(node) && !ts.isExportDeclaration(node)) continue;
      const spec = node.moduleSpecifier;
      if (!spec || !ts.isStringLiteral(spec) || !spec.text.startsWith(".")) continue;
      if (ts.isImportDeclaration(node)) {
        const clause = node.importClause;
        const bindings = clause?.namedBindings;
        const typeOnly = clause?.isTypeOnly ||
          (!clause?.name && bindings && ts.isNamedImports(bindings) &&
            bindings.elements.length > 0 && bindings.elements.every((e) => e.isTypeOnly));
        if (typeOnly) continue;
      } else if (node.isTypeOnly) continue;
      targets.add(path.relative(ENGINE, path.resolve(path.dirname(file), spec.text)));
    }
    graph.set(path.relative(ENGINE, file), targets);
  }
  return graph;
}

/** The strongly connected components with more than one file (Tarjan), each sorted. */
function importCycles(graph: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) cycles.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

Deno.test("engine imports: the one cycle is tensor.ts with the ops its method shortcuts call", async () => {
  // `x.add(y)`, `x.sum()`, `x.reshape()`, `x.matmul()`, `Tensor.full` and `backward()`'s gradient
  // sum are the Tensor API; every use sits inside a function body, so module evaluation order
  // cannot bite. Any other cycle (an op file importing the tape back, one family importing
  // another that imports it) fails here; a new op family must not join this one.
  const cycles = importCycles(valueImports(await engineSources()));
  assert.deepEqual(cycles, [[
    "ops/elementwise.ts",
    "ops/matmul.ts",
    "ops/reduce.ts",
    "ops/shape.ts",
    "tensor.ts",
  ]]);
});

Deno.test("engine imports: the cycle finder sees value cycles and ignores type-only ones", () => {
  const at = (name: string) => path.join(ENGINE, name);
  const graph = valueImports([
    { path: at("a.ts"), text: 'import { b } from "./b.ts";' },
    { path: at("b.ts"), text: 'import { c } from "./sub/c.ts";' },
    { path: at("sub/c.ts"), text: 'export { a } from "../a.ts";' },
    { path: at("d.ts"), text: 'import type { E } from "./e.ts";' },
    { path: at("e.ts"), text: 'import { type D } from "./d.ts";' },
  ]);
  assert.deepEqual(importCycles(graph), [["a.ts", "b.ts", "sub/c.ts"]]);
});

Deno.test("layering: models/ imports only engine/ (and other models)", async () => {
  const models = path.join(ROOT, "models");
  const outside: string[] = [];
  for await (const entry of Deno.readDir(models)) {
    if (!SCRIPT_EXTENSIONS.test(entry.name)) continue;
    const file = path.join(models, entry.name);
    const sf = ts.createSourceFile(file, await Deno.readTextFile(file), ts.ScriptTarget.Latest);
    for (const node of sf.statements) {
      if (!ts.isImportDeclaration(node) && !ts.isExportDeclaration(node)) continue;
      const spec = node.moduleSpecifier;
      if (!spec || !ts.isStringLiteral(spec)) continue;
      const target = path.relative(ROOT, path.resolve(models, spec.text));
      if (!/^(engine|models)\//.test(target)) outside.push(`models/${entry.name}: ${spec.text}`);
    }
  }
  assert.deepEqual(outside, []);
});
