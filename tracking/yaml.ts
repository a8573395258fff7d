// YAML as MLflow's file store writes it (PyYAML safe_dump, block style, sorted keys): our own
// emitter, whose output matches PyYAML's byte for byte, and a reader (the `yaml` package) that
// resolves plain scalars with PyYAML's YAML 1.1 rules (so `'0'` stays a string and `0` is a number).
import { parseDocument, type ScalarTag, type Tags } from "yaml";

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
// Reader: the `yaml` package, with PyYAML's implicit resolvers (yaml.resolver.Resolver) for plain
// scalars. The package's own YAML 1.1 schema differs from PyYAML: it reads y/n as booleans, 1e5,
// -.5 and `.` as floats, 09 and 0:30 as ints; PyYAML keeps all of those strings. Timestamps
// stay strings (PyYAML makes datetimes, which YamlValue has no place for).

/** PyYAML's construct_yaml_int: binary, octal (leading 0), hex, sexagesimal, with `_`. */
function resolveInt(text: string): number | bigint {
  const t = text.replaceAll("_", "");
  const negative = t.startsWith("-");
  const body = t.replace(/^[-+]/, "");
  let big: bigint;
  if (body.includes(":")) {
    big = body.split(":").reduce((sum, part) => sum * 60n + BigInt(part), 0n);
  } else if (body.startsWith("0b") || body.startsWith("0x")) big = BigInt(body);
  else if (body.length > 1 && body.startsWith("0")) big = BigInt("0o" + body.slice(1));
  else big = BigInt(body);
  if (negative) big = -big;
  const n = Number(big);
  return Number.isSafeInteger(n) ? n : big;
}

/** PyYAML's construct_yaml_float: `.inf`, `.nan`, sexagesimal, with `_`. */
function resolveFloat(text: string): number {
  const t = text.replaceAll("_", "").toLowerCase();
  const sign = t.startsWith("-") ? -1 : 1;
  const body = t.replace(/^[-+]/, "");
  if (/^\.?inf(?:inity)?$/.test(body)) return sign * Infinity;
  if (/^\.?nan$/.test(body)) return NaN;
  if (body.includes(":")) {
    // Summed from the seconds up, as PyYAML does (same rounding).
    let value = 0;
    let base = 1;
    for (const part of body.split(":").reverse()) {
      value += Number(part) * base;
      base *= 60;
    }
    return sign * value;
  }
  // Python's float() is as strict as this for explicit `!!float` text.
  if (!/^(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?$/.test(body)) {
    throw new Error(`could not convert string to float: '${text}'`);
  }
  return sign * Number(body);
}

/** PyYAML's construct_yaml_bool: yes/true/on and no/false/off, in any case. */
function resolveBool(text: string): boolean {
  const t = text.toLowerCase();
  if (["yes", "true", "on"].includes(t)) return true;
  if (["no", "false", "off"].includes(t)) return false;
  throw new Error(`'${text}' is not a boolean`);
}

const PYYAML_SCALARS: ScalarTag[] = [
  { tag: "tag:yaml.org,2002:null", default: true, test: NULL_RE, resolve: () => null },
  { tag: "tag:yaml.org,2002:bool", default: true, test: BOOL_RE, resolve: resolveBool },
  { tag: "tag:yaml.org,2002:int", default: true, test: INT_RE, resolve: resolveInt },
  { tag: "tag:yaml.org,2002:float", default: true, test: FLOAT_RE, resolve: resolveFloat },
  {
    // PyYAML resolves a plain `=` (and `<<` outside a key) to tags its SafeLoader cannot build.
    tag: "tag:yaml.org,2002:value",
    default: true,
    test: /^(?:=|<<)$/,
    resolve: (s, onError) => {
      onError(`could not determine a constructor for the plain scalar '${s}'`);
      return s;
    },
  },
];

const KEPT_TAGS = ["tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:str"];

/** The `yaml` package's YAML 1.1 schema with its scalar resolvers swapped for PyYAML's. */
const PARSE_OPTIONS = {
  version: "1.1",
  schema: "yaml-1.1",
  // Mappings, sequences and strings from the schema, PyYAML's scalars in place of its own.
  customTags: (tags: Tags) => [
    ...tags.filter((t) => typeof t !== "string" && KEPT_TAGS.includes(t.tag)),
    ...PYYAML_SCALARS,
    // Explicit `!!int '7'`-style tags: the same constructors, whatever the text looks like.
    ...PYYAML_SCALARS.map(({ tag, resolve }) => ({ tag, resolve })),
  ],
  // Explicit !!timestamp, !!binary, !!set, !!omap… (no YamlValue for them) are errors below.
  resolveKnownTags: false,
  // `<<` merge keys, as PyYAML's SafeLoader.
  merge: true,
  // Later duplicate keys win, as in PyYAML.
  uniqueKeys: false,
  // Keys keep their spelling (JS object keys are strings anyway).
  stringKeys: true,
} as const;

const FLAT_LINE = /^([a-z_]+): (.*)$/;
const QUOTED = /^'([^']*)'$/;
const SMALL_INT = /^-?(?:0|[1-9][0-9]{0,14})$/;
const PLAIN = /^[A-Za-z0-9_./@+][A-Za-z0-9_./:@+-]*$/;

/**
 * The mapping of a file shaped like MLflow's meta.yaml — `key: value` lines whose values are a
 * quoted string without quotes inside, a small decimal integer, `[]` or a plain word that PyYAML
 * reads as a string — or null for anything else (the full parser reads it). A store listing
 * parses thousands of these, and the full parser costs ~100× more per file.
 */
function parseFlatMapping(text: string): YamlValue | null {
  if (!text.endsWith("\n")) return null;
  const out: { [key: string]: YamlValue } = {};
  for (const line of text.slice(0, -1).split("\n")) {
    const match = FLAT_LINE.exec(line);
    if (!match) return null;
    const [, key, value] = match;
    const quoted = QUOTED.exec(value);
    if (quoted) out[key] = quoted[1];
    else if (SMALL_INT.test(value)) out[key] = Number(value) + 0; // PyYAML has no -0
    else if (value === "[]") out[key] = [];
    else if (PLAIN.test(value) && !resolvesToNonString(value)) out[key] = value;
    else return null;
  }
  return out;
}

/**
 * Parses one YAML document as PyYAML's `safe_load` would (a mapping, a list or a scalar);
 * `source` names the file in error messages.
 */
export function parseYaml(text: string, source = "yaml"): YamlValue {
  const flat = parseFlatMapping(text);
  if (flat) return flat;
  const doc = parseDocument(text, PARSE_OPTIONS);
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    const line = problem.linePos?.[0].line;
    const message = problem.message.replace(/ at line \d+, column \d+:[\s\S]*$/, "");
    throw new Error(`${source}: YAML${line === undefined ? "" : ` line ${line}`}: ${message}`);
  }
  return doc.toJS({ maxAliasCount: 100 }) as YamlValue;
}
