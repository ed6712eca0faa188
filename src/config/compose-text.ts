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
 * A `.env` / env_file file, as compose's dotenv reads it: `KEY=VALUE` lines,
 * `export ` allowed, `#` comments; 'single' quotes are literal, "double"
 * quotes take \n \r \t \" \\ escapes and interpolation, and either may
 * span lines (a PEM key, a JSON blob); unquoted values end at ` #`. Values
 * may use variables set earlier in the file or in `outer`.
 */
export function parseDotenv(text: string, file: string, outer: Lookup = () => undefined): Record<string, string> {
  const env: Record<string, string> = {};
  const lookup: Lookup = (name) => (Object.hasOwn(env, name) ? env[name] : outer(name));
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trimStart();
    if (line.trim() === "" || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:=\s*([\s\S]*))?$/.exec(line);
    const place = `${file}:${n + 1}:1`;
    if (m === null) configFail(`cannot read ${JSON.stringify(line.trim())} in ${file}`, place, "write KEY=VALUE, one a line");
    if (m[2] === undefined) continue; // a bare KEY: nothing to set
    const quote = m[2][0];
    if (quote !== "'" && quote !== '"') {
      env[m[1]!] = unquoted(m[2], lookup, place);
      continue;
    }
    let body = m[2].slice(1);
    let end = closingQuote(body, quote);
    while (end < 0 && n + 1 < lines.length) {
      body += `\n${lines[++n]!}`;
      end = closingQuote(body, quote);
    }
    if (end < 0) configFail(`unterminated ${quote} quote in ${file}`, place, `close the value with ${quote}; a quoted value may span lines`);
    const rest = body.slice(end + 1).trim();
    if (rest !== "" && !rest.startsWith("#")) configFail(`text after the closing ${quote} quote in ${file}: ${JSON.stringify(rest)}`, `${file}:${n + 1}:1`, "put a comment after # or quote the whole value");
    env[m[1]!] = quote === "'" ? body.slice(0, end) : doubleQuoted(body.slice(0, end), lookup, place);
  }
  return env;
}

/** Where the value's closing quote is in `body` (text after the opening one): in "…" a backslash escapes the next character. */
function closingQuote(body: string, quote: string): number {
  for (let i = 0; i < body.length; i++) {
    if (quote === '"' && body[i] === "\\") i++;
    else if (body[i] === quote) return i;
  }
  return -1;
}

function doubleQuoted(body: string, lookup: Lookup, place: string): string {
  const unescaped = body.replace(/\\([nrt"\\$])/g, (_, ch: string) => ({ n: "\n", r: "\r", t: "\t" })[ch] ?? ch);
  return interpolate(unescaped, lookup, place, () => {});
}

function unquoted(raw: string, lookup: Lookup, place: string): string {
  const hash = raw.search(/\s#/);
  return interpolate((hash < 0 ? raw : raw.slice(0, hash)).trim(), lookup, place, () => {});
}
