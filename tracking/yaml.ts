// The YAML subset MLflow's file store uses (PyYAML safe_dump, block style, sorted keys) — an
// emitter whose output matches PyYAML's for flat documents, and a reader for block mappings,
// block sequences, quoted/plain (multi-line) scalars and simple flow collections, resolving
// plain scalars with PyYAML's YAML 1.1 rules (so `'0'` stays a string and `0` is a number).

export type YamlValue =
  | string
  | number
  | bigint
  | boolean
  | null
  | YamlValue[]
  | { [key: string]: YamlValue };

// PyYAML's implicit resolvers: a string matching one of these must be quoted when emitted.
const BOOL_RE = /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/;
const NULL_RE = /^(?:~|null|Null|NULL|)$/;
const INT_RE =
  /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/;
const FLOAT_RE =
  /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;
const TIMESTAMP_RE =
  /^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$/;

function resolvesToNonString(s: string): boolean {
  return BOOL_RE.test(s) || NULL_RE.test(s) || INT_RE.test(s) || FLOAT_RE.test(s) ||
    TIMESTAMP_RE.test(s) || s === "<<" || s === "=";
}

// Characters PyYAML (allow_unicode=True) can write unescaped.
function isPrintable(ch: string): boolean {
  const c = ch.codePointAt(0)!;
  return (c >= 0x20 && c <= 0x7e) || c === 0x85 || (c >= 0xa0 && c <= 0xd7ff) ||
    (c >= 0xe000 && c <= 0xfffd && c !== 0xfeff) || (c >= 0x10000 && c <= 0x10ffff);
}

/** Whether PyYAML would write `s` as a plain scalar in block context. */
function canBePlain(s: string): boolean {
  if (s === "" || resolvesToNonString(s)) return false;
  if (s.startsWith("---") || s.startsWith("...")) return false;
  if (s.startsWith(" ") || s.endsWith(" ")) return false;
  const chars = [...s];
  const isSpace = (c: string | undefined) => c === undefined || c === " " || c === "\t";
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (!isPrintable(ch)) return false;
    const followedBySpace = isSpace(chars[i + 1]);
    if (i === 0) {
      if ("#,[]{}&*!|>'\"%@`".includes(ch)) return false;
      if ((ch === "?" || ch === ":" || ch === "-") && followedBySpace) return false;
    } else {
      if (ch === ":" && followedBySpace) return false;
      if (ch === "#" && isSpace(chars[i - 1])) return false;
    }
  }
  return true;
}

function doubleQuoted(s: string): string {
  return JSON.stringify(s).replace(
    /[\u007f-\u009f\ufeff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** A string as PyYAML would write it: plain, 'single-quoted', or "double-quoted" if needed. */
export function yamlString(s: string): string {
  if (canBePlain(s)) return s;
  if ([...s].every(isPrintable)) return `'${s.replaceAll("'", "''")}'`;
  return doubleQuoted(s);
}

/** PyYAML's float representation (repr, lower-cased, `.0` before a bare exponent). */
function yamlFloat(x: number): string {
  if (Number.isNaN(x)) return ".nan";
  if (!Number.isFinite(x)) return x > 0 ? ".inf" : "-.inf";
  const repr = pythonFloatRepr(x);
  return !repr.includes(".") && repr.includes("e") ? repr.replace("e", ".0e") : repr;
}

function scalar(value: YamlValue): string | undefined {
  if (value === null) return "null";
  if (typeof value === "string") return yamlString(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") {
    return Number.isInteger(value) ? value.toString() : yamlFloat(value);
  }
  if (Array.isArray(value) && value.length === 0) return "[]";
  if (!Array.isArray(value) && Object.keys(value).length === 0) return "{}";
  return undefined;
}

function emitMapping(obj: { [key: string]: YamlValue }, indent: string, sortKeys: boolean): string {
  const keys = Object.keys(obj);
  if (sortKeys) keys.sort();
  let out = "";
  for (const key of keys) {
    const value = obj[key];
    const simple = scalar(value);
    if (simple !== undefined) out += `${indent}${yamlString(key)}: ${simple}\n`;
    else if (Array.isArray(value)) {
      // PyYAML writes sequences inside a mapping without extra indentation.
      out += `${indent}${yamlString(key)}:\n${emitSequence(value, indent, sortKeys)}`;
    } else {
      out += `${indent}${yamlString(key)}:\n${
        emitMapping(value as { [key: string]: YamlValue }, indent + "  ", sortKeys)
      }`;
    }
  }
  return out;
}

function emitSequence(items: YamlValue[], indent: string, sortKeys: boolean): string {
  let out = "";
  for (const item of items) {
    const simple = scalar(item);
    if (simple !== undefined) out += `${indent}- ${simple}\n`;
    else if (Array.isArray(item)) {
      out += `${indent}-${emitSequence(item, indent + "  ", sortKeys).slice(indent.length + 1)}`;
    } else {
      const body = emitMapping(item as { [key: string]: YamlValue }, indent + "  ", sortKeys);
      out += `${indent}- ${body.slice(indent.length + 2)}`;
    }
  }
  return out;
}

/** Block-style YAML of a mapping, keys sorted like PyYAML's `safe_dump` (MLflow's write_yaml). */
export function dumpYaml(obj: { [key: string]: YamlValue }, sortKeys = true): string {
  return emitMapping(obj, "", sortKeys);
}

/** Python's `repr(float)`: shortest round-trip digits, exponent form outside [1e-4, 1e16). */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(x.toExponential())!;
  const sign = m[1];
  const digits = m[2] + (m[3] ?? "");
  const exponent = Number(m[4]);
  if (exponent < -4 || exponent >= 16) {
    const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const expText = String(Math.abs(exponent)).padStart(2, "0");
    return `${sign}${mantissa}e${exponent < 0 ? "-" : "+"}${expText}`;
  }
  if (exponent < 0) return `${sign}0.${"0".repeat(-exponent - 1)}${digits}`;
  const intDigits = exponent + 1;
  if (digits.length <= intDigits) return `${sign}${digits.padEnd(intDigits, "0")}.0`;
  return `${sign}${digits.slice(0, intDigits)}.${digits.slice(intDigits)}`;
}

// ---------------------------------------------------------------------------------------------
// Reader

function resolvePlain(s: string): YamlValue {
  if (NULL_RE.test(s)) return null;
  if (BOOL_RE.test(s)) return /^(?:yes|true|on)$/i.test(s);
  if (INT_RE.test(s) && !s.includes(":")) {
    const t = s.replaceAll("_", "");
    const negative = t.startsWith("-");
    const body = t.replace(/^[-+]/, "");
    let big: bigint;
    if (body.startsWith("0b")) big = BigInt(body);
    else if (body.startsWith("0x")) big = BigInt(body);
    else if (body.length > 1 && body.startsWith("0")) big = BigInt("0o" + body.slice(1));
    else big = BigInt(body);
    if (negative) big = -big;
    const n = Number(big);
    return Number.isSafeInteger(n) ? n : big;
  }
  if (FLOAT_RE.test(s) && !s.includes(":")) {
    const t = s.replaceAll("_", "").toLowerCase();
    if (t.endsWith(".nan")) return NaN;
    if (t.endsWith(".inf")) return t.startsWith("-") ? -Infinity : Infinity;
    return Number(t);
  }
  return s;
}

function indentOf(line: string): number {
  return line.length - line.trimStart().length;
}

function isBlankOrComment(line: string): boolean {
  const t = line.trim();
  return t === "" || t.startsWith("#");
}

/** Joins the lines of a multi-line flow scalar: one break → space, n blank lines → n breaks. */
function fold(lines: string[]): string {
  let out = lines[0].trimEnd();
  let blanks = 0;
  for (let i = 1; i < lines.length; i++) {
    const isLast = i === lines.length - 1;
    const t = isLast ? lines[i].trimStart() : lines[i].trim();
    if (t === "" && !isLast) {
      blanks++;
      continue;
    }
    out += (blanks > 0 ? "\n".repeat(blanks) : " ") + t;
    blanks = 0;
  }
  return out;
}

const ESCAPES: Record<string, string> = {
  "0": "\0",
  a: "\x07",
  b: "\b",
  t: "\t",
  "\t": "\t",
  n: "\n",
  v: "\v",
  f: "\f",
  r: "\r",
  e: "\x1b",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
  N: "\x85",
  _: "\xa0",
  L: "\u2028",
  P: "\u2029",
};

/** Decodes a complete quoted scalar (quotes included), folding any line breaks inside. */
function decodeQuoted(raw: string, fail: (message: string) => never): string {
  const body = raw.slice(1, -1);
  if (raw[0] === "'") return fold(body.split("\n")).replaceAll("''", "'");
  let out = "";
  const lines = body.split("\n");
  for (let l = 0; l < lines.length; l++) {
    let line = l > 0 ? lines[l].trimStart() : lines[l];
    let escapedBreak = false;
    if (l < lines.length - 1) {
      const trailingBackslashes = /\\*$/.exec(line.trimEnd())![0].length;
      if (trailingBackslashes % 2 === 1) {
        escapedBreak = true;
        line = line.trimEnd().slice(0, -1);
      } else line = line.trimEnd();
    }
    for (let j = 0; j < line.length; j++) {
      const ch = line[j];
      if (ch !== "\\") {
        out += ch;
        continue;
      }
      const e = line[++j];
      const width = e === "x" ? 2 : e === "u" ? 4 : e === "U" ? 8 : 0;
      if (width > 0) {
        const hex = line.slice(j + 1, j + 1 + width);
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== width) fail(`bad escape \\${e}`);
        out += String.fromCodePoint(parseInt(hex, 16));
        j += width;
      } else if (e in ESCAPES) out += ESCAPES[e];
      else fail(`unknown escape \\${e}`);
    }
    if (l < lines.length - 1 && !escapedBreak) {
      let blanks = 0;
      while (l + 1 < lines.length - 1 && lines[l + 1].trim() === "") {
        blanks++;
        l++;
      }
      out += blanks > 0 ? "\n".repeat(blanks) : " ";
    }
  }
  return out;
}

class YamlParser {
  private i = 0;
  constructor(private readonly lines: string[], private readonly source: string) {}

  private fail(message: string): never {
    throw new Error(`${this.source}: YAML line ${this.i + 1}: ${message}`);
  }

  private skipBlank(): void {
    while (this.i < this.lines.length && isBlankOrComment(this.lines[this.i])) this.i++;
  }

  parseDocument(): YamlValue {
    this.skipBlank();
    if (this.i < this.lines.length && this.lines[this.i].startsWith("---")) {
      const rest = this.lines[this.i].slice(3).trim();
      if (rest !== "") return this.parseInlineValue(rest, -1);
      this.i++;
      this.skipBlank();
    }
    if (this.i >= this.lines.length || this.lines[this.i].startsWith("...")) return null;
    const value = this.parseBlock(indentOf(this.lines[this.i]));
    this.skipBlank();
    if (this.i < this.lines.length && !this.lines[this.i].startsWith("...")) {
      this.fail(`unexpected content '${this.lines[this.i].trim()}'`);
    }
    return value;
  }

  private isSequenceItem(text: string): boolean {
    return text === "-" || text.startsWith("- ");
  }

  private parseBlock(indent: number): YamlValue {
    const text = this.lines[this.i].slice(indent);
    if (this.isSequenceItem(text)) return this.parseSequence(indent);
    if (this.findKeyEnd(text) !== undefined) return this.parseMapping(indent);
    return this.parseInlineValue(text, indent - 1);
  }

  /** Index of the `:` that ends a mapping key in `text`, if the line is a mapping entry. */
  private findKeyEnd(text: string): number | undefined {
    if (text.startsWith("'") || text.startsWith('"')) {
      const q = text[0];
      let j = 1;
      while (j < text.length) {
        if (text[j] === "\\" && q === '"') j += 2;
        else if (text[j] === q && q === "'" && text[j + 1] === "'") j += 2;
        else if (text[j] === q) break;
        else j++;
      }
      const after = text.slice(j + 1).trimStart();
      return after.startsWith(":") && (after.length === 1 || after[1] === " ")
        ? text.indexOf(":", j + 1)
        : undefined;
    }
    if ("[{#&*!|>%@`".includes(text[0] ?? "")) return undefined;
    for (let j = 0; j < text.length; j++) {
      if (text[j] === "#" && j > 0 && text[j - 1] === " ") return undefined;
      if (text[j] === ":" && (j + 1 === text.length || text[j + 1] === " ")) return j;
    }
    return undefined;
  }

  private parseMapping(indent: number): { [key: string]: YamlValue } {
    const out: { [key: string]: YamlValue } = {};
    while (true) {
      this.skipBlank();
      if (this.i >= this.lines.length) break;
      const line = this.lines[this.i];
      const lineIndent = indentOf(line);
      if (lineIndent < indent) break;
      if (lineIndent > indent) this.fail(`bad indentation (expected ${indent} spaces)`);
      const text = line.slice(indent);
      if (this.isSequenceItem(text) || text.startsWith("...") || text.startsWith("---")) break;
      const keyEnd = this.findKeyEnd(text);
      if (keyEnd === undefined) this.fail(`expected 'key: value', got '${text}'`);
      const rawKey = text.slice(0, keyEnd).trim();
      const key = rawKey.startsWith("'") || rawKey.startsWith('"')
        ? decodeQuoted(rawKey, (m) => this.fail(m))
        : rawKey;
      const rest = text.slice(keyEnd + 1).trim();
      out[key] = this.parseInlineValue(rest, indent, true);
    }
    return out;
  }

  private parseSequence(indent: number): YamlValue[] {
    const out: YamlValue[] = [];
    while (true) {
      this.skipBlank();
      if (this.i >= this.lines.length) break;
      const line = this.lines[this.i];
      if (indentOf(line) !== indent || !this.isSequenceItem(line.slice(indent))) break;
      const rest = line.slice(indent + 1).trimStart();
      if (rest !== "" && !rest.startsWith("#") && this.findKeyEnd(rest) !== undefined) {
        // "- key: value" starts a mapping whose keys are aligned with `key`.
        const column = line.length - rest.length;
        this.lines[this.i] = " ".repeat(column) + rest;
        out.push(this.parseMapping(column));
      } else {
        out.push(this.parseInlineValue(rest, indent));
      }
    }
    return out;
  }

  /** Parses the value after `key:` or `- ` on line i; continuation lines are indented > parent. */
  private parseInlineValue(rest: string, parentIndent: number, inMapping = false): YamlValue {
    if (rest === "" || rest.startsWith("#")) {
      this.i++;
      this.skipBlank();
      if (this.i >= this.lines.length) return null;
      const next = this.lines[this.i];
      const nextIndent = indentOf(next);
      if (nextIndent > parentIndent) return this.parseBlock(nextIndent);
      if (inMapping && nextIndent === parentIndent && this.isSequenceItem(next.slice(nextIndent))) {
        return this.parseSequence(nextIndent);
      }
      return null;
    }
    const first = rest[0];
    if (first === "'" || first === '"') return this.parseQuoted(rest, parentIndent);
    if (first === "[" || first === "{") return this.parseFlowLines(rest, parentIndent);
    if (first === "|" || first === ">") this.fail("block scalars (| or >) are not supported");
    if (first === "&" || first === "*" || first === "!") {
      this.fail("anchors, aliases and tags are not supported");
    }
    // Plain scalar, possibly folded over more-indented lines (PyYAML wraps long ones at 80).
    const parts = [rest.replace(/\s+#.*$/, "")];
    this.i++;
    while (this.i < this.lines.length) {
      const line = this.lines[this.i];
      if (line.trim() !== "" && indentOf(line) <= parentIndent) break;
      if (line.trim().startsWith("#")) break;
      if (line.trim() !== "" && this.findKeyEnd(line.trim()) !== undefined) break;
      parts.push(line.replace(/\s+#.*$/, ""));
      this.i++;
    }
    while (parts.length > 1 && parts[parts.length - 1].trim() === "") parts.pop();
    return resolvePlain(fold(parts));
  }

  private parseQuoted(rest: string, parentIndent: number): YamlValue {
    const quote = rest[0];
    let raw = rest;
    // Gather lines until the closing quote.
    while (true) {
      const end = this.closingQuote(raw, quote);
      if (end !== undefined) {
        const after = raw.slice(end + 1).trim();
        if (after !== "" && !after.startsWith("#")) this.fail(`unexpected '${after}' after string`);
        raw = raw.slice(0, end + 1);
        break;
      }
      this.i++;
      if (this.i >= this.lines.length) this.fail("unterminated quoted string");
      if (this.lines[this.i].trim() !== "" && indentOf(this.lines[this.i]) <= parentIndent) {
        this.fail("unterminated quoted string");
      }
      raw += "\n" + this.lines[this.i];
    }
    this.i++;
    return decodeQuoted(raw, (m) => this.fail(m));
  }

  private closingQuote(raw: string, quote: string): number | undefined {
    for (let j = 1; j < raw.length; j++) {
      if (quote === '"' && raw[j] === "\\") j++;
      else if (quote === "'" && raw[j] === "'" && raw[j + 1] === "'") j++;
      else if (raw[j] === quote) return j;
    }
    return undefined;
  }

  private parseFlowLines(rest: string, parentIndent: number): YamlValue {
    let raw = rest;
    for (let k = this.i;; k++) {
      try {
        const flow = new FlowParser(raw);
        const value = flow.parseValue();
        flow.expectEnd();
        this.i = k + 1;
        return value;
      } catch (error) {
        if (!(error instanceof IncompleteFlow)) this.fail((error as Error).message);
        if (k + 1 >= this.lines.length || indentOf(this.lines[k + 1]) <= parentIndent) {
          this.fail("unterminated flow collection");
        }
        raw += " " + this.lines[k + 1].trim();
      }
    }
  }
}

class IncompleteFlow extends Error {}

/** `[a, 'b', {c: 1}]`-style flow collections on one (joined) line. */
class FlowParser {
  private j = 0;
  constructor(private readonly s: string) {}

  private skipSpace(): void {
    while (this.s[this.j] === " " || this.s[this.j] === "\t") this.j++;
  }

  expectEnd(): void {
    this.skipSpace();
    const rest = this.s.slice(this.j);
    if (rest !== "" && !rest.startsWith("#")) throw new Error(`unexpected '${rest}'`);
  }

  parseValue(): YamlValue {
    this.skipSpace();
    const ch = this.s[this.j];
    if (ch === undefined) throw new IncompleteFlow();
    if (ch === "[") return this.parseCollection("]");
    if (ch === "{") return this.parseCollection("}");
    if (ch === "'" || ch === '"') {
      const start = this.j;
      for (this.j++; this.j < this.s.length; this.j++) {
        if (ch === '"' && this.s[this.j] === "\\") this.j++;
        else if (ch === "'" && this.s[this.j] === "'" && this.s[this.j + 1] === "'") this.j++;
        else if (this.s[this.j] === ch) break;
      }
      if (this.j >= this.s.length) throw new IncompleteFlow();
      this.j++;
      return decodeQuoted(this.s.slice(start, this.j), (message) => {
        throw new Error(message);
      });
    }
    const start = this.j;
    while (this.j < this.s.length && !",]}".includes(this.s[this.j])) {
      if (this.s[this.j] === ":" && " ,]}".includes(this.s[this.j + 1] ?? " ")) break;
      this.j++;
    }
    return resolvePlain(this.s.slice(start, this.j).trim());
  }

  private parseCollection(close: "]" | "}"): YamlValue {
    this.j++;
    const items: YamlValue[] = [];
    const map: { [key: string]: YamlValue } = {};
    while (true) {
      this.skipSpace();
      if (this.j >= this.s.length) throw new IncompleteFlow();
      if (this.s[this.j] === close) {
        this.j++;
        return close === "]" ? items : map;
      }
      const value = this.parseValue();
      this.skipSpace();
      if (close === "}") {
        if (this.s[this.j] !== ":") throw new Error("expected ':' in flow mapping");
        this.j++;
        map[String(value)] = this.parseValue();
      } else items.push(value);
      this.skipSpace();
      if (this.s[this.j] === ",") this.j++;
      else if (this.s[this.j] !== close) {
        if (this.j >= this.s.length) throw new IncompleteFlow();
        throw new Error(`expected ',' or '${close}' in flow collection`);
      }
    }
  }
}

/** Parses a YAML document of the subset above; `source` names the file in error messages. */
export function parseYaml(text: string, source = "yaml"): YamlValue {
  const lines = text.replace(/^\ufeff/, "").split(/\r\n|\r|\n/);
  if (lines.some((line) => /^ *\t/.test(line) && line.trim() !== "")) {
    throw new Error(`${source}: YAML indentation must use spaces, not tabs`);
  }
  return new YamlParser(lines, source).parseDocument();
}
