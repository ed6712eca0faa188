/**
 * Fuzzing the project-file loaders: the example of every format, mutated
 * thousands of ways (seeded, so a failure reproduces), must load into a
 * ProjectSpec or fail with a SkiffError that has a code and a place — never
 * any other exception, which the CLI would print as a crash with a stack.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYamlValue, stringify } from "yaml";
import { SkiffError } from "../../src/errors.js";
import type { ProjectSpec } from "../../src/project/types.js";
import type { LoaderContext } from "../../src/config/context.js";
import { composeToProject } from "../../src/config/compose.js";
import { pontoonToProject } from "../../src/config/pontoon.js";
import { skiffToProject } from "../../src/config/skiff-file.js";
import { validateProject } from "../../src/config/validate.js";
import { vmfileToProject } from "../../src/config/vmfile.js";
import { parseYaml, type YamlDoc } from "../../src/config/yaml-doc.js";

type Loader = (text: string, file: string, ctx: LoaderContext) => ProjectSpec;
const yamlLoader = (load: (docs: YamlDoc[], ctx: LoaderContext) => ProjectSpec): Loader => (text, file, ctx) => load([parseYaml(text, file)], ctx);

interface Target {
  format: string;
  example: string;
  load: Loader;
  yaml: boolean;
}

const targets: Target[] = [
  { format: "skiff", example: "examples/skiff/skiff.yml", load: yamlLoader(skiffToProject), yaml: true },
  { format: "skiff", example: "examples/router-web/skiff.yml", load: yamlLoader(skiffToProject), yaml: true },
  { format: "compose", example: "examples/compose/docker-compose.yml", load: yamlLoader(composeToProject), yaml: true },
  { format: "pontoon", example: "examples/pontoon/pontoon.yml", load: yamlLoader(pontoonToProject), yaml: true },
  { format: "vmfile", example: "examples/vmfile/VMFile.kdl", load: vmfileToProject, yaml: false },
];

/** mulberry32: a small seeded PRNG, enough to spread mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const tokens = [
  "null", "~", "true", "no", "-1", "0", "1e999", "0x1F", "NaN", ".inf", "[]", "{}", "''", '"', "'", "&a", "*a", "*nope", "!!binary x",
  "<<: *a", "__proto__: 1", "constructor: {}", "99999999999999999999", "x".repeat(300), "- ", ": ", "#", "|", ">-", "\t", "{", "[",
  "10.0.0.500", "256m", "1g", "-5", "a:b:c:d", "./x:/y:ro", "service_healthy", "CMD", "1m30s", "\u0000", "\ufeff", "é", "${VAR}", "$$",
  "vm", "{ shell { inline \"x\"; }; }", "image-url=\"x\"", "/-", "#\"raw\"#", "(type)", ";",
];

type Rand = () => number;
const pick = <T>(r: Rand, list: readonly T[]): T => list[Math.floor(r() * list.length)]!;

/** Text mutations: characters, lines, indentation, tokens. */
const textMutators: Array<(text: string, r: Rand) => string> = [
  (t, r) => {
    const i = Math.floor(r() * t.length);
    return t.slice(0, i) + String.fromCharCode(Math.floor(r() * 128)) + t.slice(i + 1);
  },
  (t, r) => lines(t, r, (ls, i) => ls.splice(i, 1)),
  (t, r) => lines(t, r, (ls, i) => ls.splice(i, 0, ls[i]!)),
  (t, r) =>
    lines(t, r, (ls, i) => {
      const j = Math.floor(r() * ls.length);
      [ls[i], ls[j]] = [ls[j]!, ls[i]!];
    }),
  (t, r) => lines(t, r, (ls, i) => (ls[i] = pick(r, ["  ", "    ", "\t", " "]) + ls[i])),
  (t, r) => lines(t, r, (ls, i) => (ls[i] = ls[i]!.replace(/^ {1,2}/, ""))),
  (t, r) => {
    const i = Math.floor(r() * (t.length + 1));
    return t.slice(0, i) + pick(r, tokens) + t.slice(i);
  },
  (t, r) => t.replace(/(:\s*)([^\s#][^\n]*)/g, (m, sep: string) => (r() < 0.15 ? sep + pick(r, tokens) : m)),
  (t, r) => t.slice(0, Math.floor(r() * t.length)),
];

function lines(text: string, r: Rand, edit: (ls: string[], i: number) => void): string {
  const ls = text.split("\n");
  edit(ls, Math.floor(r() * ls.length));
  return ls.join("\n");
}

const leafValues: unknown[] = [null, true, false, 0, -1, 1.5, 1e308, "", "x", "256m", "10.0.0.1", [], {}, ["a"], { a: 1 }, "a".repeat(100)];

/** A YAML round trip of the parsed value with a few leaves (or whole subtrees) swapped for other types. */
function mutateValue(value: unknown, r: Rand): string {
  const swaps = 1 + Math.floor(r() * 3);
  for (let n = 0; n < swaps; n++) value = swapOne(value, r, 0);
  return stringify(value);
}

function swapOne(node: unknown, r: Rand, depth: number): unknown {
  const entries = Array.isArray(node) ? node.map((v, i) => [i, v] as const) : typeof node === "object" && node !== null ? Object.entries(node) : [];
  if (entries.length === 0 || (depth > 0 && r() < 0.25)) return pick(r, leafValues);
  const [key, child] = pick(r, entries);
  const copy: Record<string | number, unknown> = Array.isArray(node) ? [...node] : { ...(node as object) };
  if (r() >= 0.1) copy[key] = swapOne(child, r, depth + 1);
  else if (Array.isArray(copy)) copy.splice(Number(key), 1);
  else delete copy[key];
  return copy;
}

/** 30 % of YAML documents start as a value mutation (the example parsed once), then 0–2 text mutations; the rest 1–3 text mutations. */
function mutate(text: string, value: unknown, r: Rand): string {
  const fromValue = value !== undefined && r() < 0.3;
  let out = fromValue ? mutateValue(value, r) : text;
  const n = Math.floor(r() * 3) + (fromValue ? 0 : 1);
  for (let i = 0; i < n; i++) out = pick(r, textMutators)(out, r);
  return out;
}

const total = 10_200;

describe("loaders under fuzzing", () => {
  it(`${total} mutated documents give a ProjectSpec or a SkiffError with a code and a place`, () => {
    const r = prng(0x5eed);
    const perTarget = Math.ceil(total / targets.length);
    const failures: string[] = [];
    let specs = 0;
    let errors = 0;
    for (const target of targets) {
      const original = readFileSync(target.example, "utf8");
      const value: unknown = target.yaml ? parseYamlValue(original) : undefined;
      const dir = path.resolve(path.dirname(target.example));
      const file = path.basename(target.example);
      const ctx: LoaderContext = { dir, projectName: "fuzz", files: [path.join(dir, file)], env: { HOME: "/home/fuzz" } };
      for (let i = 0; i < perTarget; i++) {
        const text = mutate(original, value, r);
        try {
          const spec = target.load(text, file, ctx);
          // What `skiff config` runs after every loader.
          validateProject(spec);
          expect(Array.isArray(spec.services)).toBe(true);
          specs++;
        } catch (err) {
          if (err instanceof SkiffError && typeof err.place === "string" && err.place.startsWith(file) && err.code.startsWith("ERR_SKIFF_")) {
            errors++;
            continue;
          }
          if (failures.length < 5) failures.push(`${target.format} #${i}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n--- document ---\n${text}`);
          else failures.push("");
        }
      }
    }
    expect(failures.filter((f) => f !== "").join("\n\n"), `${failures.length} documents broke a loader`).toBe("");
    expect(specs + errors).toBeGreaterThanOrEqual(10_000);
    // Both outcomes happen: the mutations are neither all harmless nor all fatal.
    expect(specs).toBeGreaterThan(100);
    expect(errors).toBeGreaterThan(1000);
  }, 60_000);
});
