/**
 * One compose file made ready to merge, as compose-go loads each file before
 * merging: `x-*` extensions dropped, `${VAR}` interpolated with the file's
 * own environment and cast to the types the fields need, and — for a file
 * from another directory (include, extends) — relative paths made absolute
 * against that file's directory, since they mean paths next to it.
 */
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { errnoOf } from "../errors.js";
import { interpolate, parseDotenv } from "./compose-text.js";
import { markMergeTags } from "./compose-merge.js";
import { castValue, withoutExtensions } from "./compose-values.js";
import { configFail, type Warnings } from "./foreign.js";
import { isMapping } from "./merge.js";
import { parseYaml, type YamlDoc, type YamlPath } from "./yaml-doc.js";

/** What reading a compose file needs besides the file. */
export interface ComposeReader {
  /** The shell's environment (ctx.env). */
  shell: NodeJS.ProcessEnv;
  /** The project directory (the first file's): places are shown relative to it. */
  projectDir: string;
  warnings: Warnings;
}

/** Is `p` a regular file (not a directory, not missing)? */
export function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/**
 * The shell's environment over `envFiles` (default: the directory's .env),
 * as compose reads a project's variables. A `.env` that is a directory (a
 * Python virtualenv, often) is not a variables file, and compose ignores it.
 */
export function projectEnv(dir: string, shell: NodeJS.ProcessEnv, envFiles?: readonly string[], place?: string): NodeJS.ProcessEnv {
  const files = envFiles ?? [path.join(dir, ".env")];
  let vars: Record<string, string> = {};
  for (const file of files) {
    if (!isFile(file)) {
      if (envFiles !== undefined && place !== undefined) configFail(`env_file ${file} is not a file`, place, "name a file of KEY=VALUE lines");
      continue;
    }
    vars = { ...vars, ...parseDotenv(readFileSync(file, "utf8"), file, (k) => shell[k] ?? vars[k]) };
  }
  return { ...vars, ...shell };
}

/** `doc` without extensions, interpolated with `env` (places from `doc`). */
export function prepareDoc(doc: YamlDoc, env: NodeJS.ProcessEnv, warnings: Warnings): YamlDoc {
  const prepared = { ...doc, value: interpolateAll(withoutExtensions(doc.value), [], doc, env, warnings) };
  markMergeTags(prepared);
  return prepared;
}

function interpolateAll(v: unknown, at: YamlPath, doc: YamlDoc, env: NodeJS.ProcessEnv, warnings: Warnings): unknown {
  if (typeof v === "string") {
    const place = doc.placeOf(at);
    return castValue(
      interpolate(v, (k) => env[k], place, (name) => warnings.add(`variable ${name}`, place, "is not set; read as an empty string")),
      at,
    );
  }
  if (Array.isArray(v)) return v.map((item, i) => interpolateAll(item, [...at, i], doc, env, warnings));
  if (isMapping(v)) return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, interpolateAll(item, [...at, k], doc, env, warnings)]));
  return v;
}

/** Read, parse and prepare another compose file (`file` absolute; its relative paths from `baseDir`); `place` is what named it. */
export function readComposeDoc(file: string, env: NodeJS.ProcessEnv, r: ComposeReader, place: string, baseDir = path.dirname(file)): YamlDoc {
  if (!isFile(file)) configFail(`${file} is not a file`, place, "name a compose file, relative to the file that names it");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    return configFail(`cannot read ${file} (${errnoOf(err) ?? String(err)})`, place);
  }
  const rel = path.relative(r.projectDir, file);
  const shown = rel.startsWith("../../") || path.isAbsolute(rel) ? file : rel;
  return rebase(prepareDoc(parseYaml(text, shown), env, r.warnings), baseDir, r.projectDir);
}

/** The doc with its services' relative paths (build, env_file, bind sources) made absolute from `fromDir`. */
export function rebase(doc: YamlDoc, fromDir: string, projectDir: string): YamlDoc {
  const value = doc.value;
  if (path.resolve(fromDir) === path.resolve(projectDir) || !isMapping(value) || !isMapping(value["services"])) return doc;
  const services = Object.fromEntries(Object.entries(value["services"]).map(([name, svc]) => [name, isMapping(svc) ? rebaseService(svc, fromDir) : svc]));
  return { ...doc, value: { ...value, services } };
}

function rebaseService(svc: Record<string, unknown>, dir: string): Record<string, unknown> {
  const abs = (p: unknown): unknown => (typeof p === "string" && !p.startsWith("~") && !path.isAbsolute(p) ? path.resolve(dir, p) : p);
  const out = { ...svc };
  if (typeof out["build"] === "string") out["build"] = abs(out["build"]);
  else if (isMapping(out["build"])) out["build"] = { ...out["build"], context: abs(out["build"]["context"] ?? ".") };
  const envFile = out["env_file"];
  const envEntry = (e: unknown): unknown => (isMapping(e) ? { ...e, path: abs(e["path"]) } : abs(e));
  if (envFile !== undefined) out["env_file"] = Array.isArray(envFile) ? envFile.map(envEntry) : envEntry(envFile);
  if (Array.isArray(out["volumes"])) out["volumes"] = out["volumes"].map((v) => rebaseVolume(v, abs));
  return out;
}

function rebaseVolume(v: unknown, abs: (p: unknown) => unknown): unknown {
  if (isMapping(v)) return v["type"] === "bind" ? { ...v, source: abs(v["source"]) } : v;
  if (typeof v !== "string") return v;
  const colon = v.indexOf(":");
  if (colon < 0 || !v.startsWith(".")) return v;
  return `${String(abs(v.slice(0, colon)))}${v.slice(colon)}`;
}
