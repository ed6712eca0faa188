/**
 * The text rules of docker compose that a compose file relies on: `${VAR}`
 * interpolation and `.env` / env_file files.
 */
import { configFail } from "./foreign.js";

export type Lookup = (name: string) => string | undefined;

const nameStart = /[A-Za-z_]/;
const nameRest = /[A-Za-z0-9_]/;

/**
 * Compose's interpolation: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or
 * empty), `${VAR-default}` (unset), `${VAR:?message}` / `${VAR?message}`
 * (an error), `${VAR:+alt}` / `${VAR+alt}`, `$$` for a literal `$`. Defaults
 * may hold interpolations of their own. An unset variable without a default
 * is "" and is reported through `onUnset`, as compose warns.
 */
export function interpolate(text: string, lookup: Lookup, place: string, onUnset: (name: string) => void): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c !== "$") {
      out += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === "$") {
      out += "$";
      i += 2;
    } else if (next === "{") {
      const end = closingBrace(text, i + 2);
      if (end < 0) configFail(`invalid interpolation in ${JSON.stringify(text)}: no closing }`, place, "write ${VAR} or ${VAR:-default}; $$ is a literal $");
      out += substitute(text.slice(i + 2, end), lookup, place, onUnset, text);
      i = end + 1;
    } else if (next !== undefined && nameStart.test(next)) {
      let j = i + 2;
      while (j < text.length && nameRest.test(text[j]!)) j++;
      out += valueOf(text.slice(i + 1, j), lookup, onUnset);
      i = j;
    } else {
      out += "$";
      i++;
    }
  }
  return out;
}

function closingBrace(text: string, from: number): number {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    if (text[i] === "$" && text[i + 1] === "{") {
      depth++;
      i++;
    } else if (text[i] === "}" && --depth === 0) return i;
  }
  return -1;
}

function valueOf(name: string, lookup: Lookup, onUnset: (name: string) => void): string {
  const v = lookup(name);
  if (v === undefined) onUnset(name);
  return v ?? "";
}

function substitute(inner: string, lookup: Lookup, place: string, onUnset: (name: string) => void, whole: string): string {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([\s\S]*))?$/.exec(inner);
  if (m === null) configFail(`invalid interpolation ${JSON.stringify(whole)}`, place, "write ${VAR}, ${VAR:-default}, ${VAR:?error} or ${VAR:+alternative}; $$ is a literal $");
  const [, name, op, arg = ""] = m;
  const v = lookup(name!);
  if (op === undefined) return valueOf(name!, lookup, onUnset);
  const missing = op.startsWith(":") ? v === undefined || v === "" : v === undefined;
  const rest = () => interpolate(arg, lookup, place, onUnset);
  switch (op.replace(":", "")) {
    case "-":
      return missing ? rest() : v!;
    case "+":
      return missing ? "" : rest();
    default:
      if (missing) configFail(`required variable ${name} is missing a value: ${rest() || "(no message)"}`, place, `set ${name} in the environment or in .env`);
      return v!;
  }
}

/**
 * A `.env` / env_file file: `KEY=VALUE` lines, `export ` allowed, `#`
 * comments; 'single' quotes are literal, "double" quotes take \n escapes and
 * interpolation, unquoted values end at ` #`. Values may use variables set
 * earlier in the file or in `outer`.
 */
export function parseDotenv(text: string, file: string, outer: Lookup = () => undefined): Record<string, string> {
  const env: Record<string, string> = {};
  const lookup: Lookup = (name) => (Object.hasOwn(env, name) ? env[name] : outer(name));
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:=\s*([\s\S]*))?$/.exec(line);
    const place = `${file}:${n + 1}:1`;
    if (m === null) configFail(`cannot read ${JSON.stringify(line)} in ${file}`, place, "write KEY=VALUE, one a line");
    if (m[2] === undefined) continue; // a bare KEY: nothing to set
    env[m[1]!] = dotenvValue(m[2], lookup, place);
  }
  return env;
}

function dotenvValue(raw: string, lookup: Lookup, place: string): string {
  const quote = raw[0];
  if (quote === "'" || quote === '"') {
    const end = raw.lastIndexOf(quote);
    if (end <= 0) configFail(`unterminated ${quote} quote`, place);
    const body = raw.slice(1, end);
    if (quote === "'") return body;
    const unescaped = body.replace(/\\([nrt"\\$])/g, (_, ch: string) => ({ n: "\n", r: "\r", t: "\t" })[ch] ?? ch);
    return interpolate(unescaped, lookup, place, () => {});
  }
  const hash = raw.search(/\s#/);
  return interpolate((hash < 0 ? raw : raw.slice(0, hash)).trim(), lookup, place, () => {});
}
