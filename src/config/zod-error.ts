/**
 * Schema failures as one ERR_SKIFF_CONFIG: every problem with its
 * file:line:column, sorted in file order, the first in the message and all of
 * them in `details.problems` (Lima's rule: validate collects every problem at
 * once, so a user fixes a file in one pass, not one error per run).
 */
import type { z } from "zod/v4";
import { isSkiffError, SkiffError } from "../errors.js";
import type { YamlPath } from "./yaml-doc.js";

type Issue = z.core.$ZodIssue;

export interface ConfigProblem {
  place: string;
  message: string;
  /** What to do about this one problem; the error's hint when it comes first. */
  hint?: string;
}

export type PlaceLookup = (path: YamlPath) => string;

const defaultHint = "see docs/skiff-yml.md, or `skiff config schema` for the JSON Schema an editor can check against";

/** A zod error (or its issues) from validating `file` as ERR_SKIFF_CONFIG with places. */
export function configError(
  issues: z.ZodError | readonly Issue[],
  placeOf: PlaceLookup,
  keyPlaceOf: PlaceLookup,
  file: string,
  hint = defaultHint,
): SkiffError {
  const list = "issues" in issues ? issues.issues : issues;
  const problems = list.flatMap((issue) => problemsOf(issue, [], placeOf, keyPlaceOf));
  return problemsError(problems, file, hint);
}

/** ERR_SKIFF_CONFIG from problems found by hand (cross-checks after the schema passed). */
export function problemsError(problems: readonly ConfigProblem[], file: string, hint = defaultHint): SkiffError {
  const files = [...new Set(problems.map((p) => placeKey(p.place)[0]))];
  const key = (p: ConfigProblem): number[] => {
    const [f, line, col] = placeKey(p.place);
    return [files.indexOf(f), line, col];
  };
  const sorted = [...problems].sort((a, b) => compareKeys(key(a), key(b)));
  const first = sorted[0] ?? { place: file, message: "invalid project file" };
  const more = sorted.length > 1 ? ` (and ${sorted.length - 1} more problem${sorted.length > 2 ? "s" : ""})` : "";
  return new SkiffError("ERR_SKIFF_CONFIG", `${first.message}${more}`, {
    place: first.place,
    hint: first.hint ?? hint,
    details: { problems: sorted },
  });
}

function problemsOf(issue: Issue, prefix: YamlPath, placeOf: PlaceLookup, keyPlaceOf: PlaceLookup): ConfigProblem[] {
  const path = [...prefix, ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))];
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.map((key) => ({
        place: keyPlaceOf([...path, key]),
        message: `${at(path)}unknown key ${JSON.stringify(key)}`,
      }));
    case "invalid_union": {
      // The branch the user meant: the one that got furthest into the value
      // (or whose type matched and only a value check failed), then the one with fewest problems.
      const branches = issue.errors.filter((b) => b.length > 0);
      const meant = branches.reduce<Issue[] | undefined>((best, b) => (best === undefined || fit(b) > fit(best) ? b : best), undefined);
      if (meant !== undefined && fit(meant) > 0) return meant.flatMap((i) => problemsOf(i, path, placeOf, keyPlaceOf));
      const expected = [...new Set(branches.flat().map(expectedOf).filter((e) => e !== ""))];
      const message = expected.length > 0 ? `expected ${expected.join(" or ")}` : firstMessage(branches) ?? issue.message;
      return [{ place: placeOf(path), message: `${at(path)}${message}` }];
    }
    case "invalid_type":
      // With safeParse(value, { reportInput: true }) an absent key is told from a wrong value.
      if ("input" in issue && issue.input === undefined && path.length > 0) {
        return [{ place: placeOf(path), message: `${at(path.slice(0, -1))}${String(path[path.length - 1])} is missing (${expectedOf(issue)})` }];
      }
      return [{ place: placeOf(path), message: `${at(path)}expected ${expectedOf(issue)}` }];
    case "invalid_value":
      return [{ place: placeOf(path), message: `${at(path)}expected ${expectedOf(issue)}` }];
    case "custom": {
      const hint: unknown = issue.params?.["hint"];
      return [{ place: placeOf(path), message: `${at(path)}${issue.message}`, ...(typeof hint === "string" ? { hint } : {}) }];
    }
    default:
      return [{ place: placeOf(path), message: `${at(path)}${issue.message}` }];
  }
}

/** Higher when a union branch matched more of the value: depth reached first, fewer problems second; > 0 once past the type. */
function fit(branch: readonly Issue[]): number {
  const depth = Math.max(...branch.map((i) => i.path.length + (i.code === "unrecognized_keys" || i.code === "custom" ? 1 : 0)));
  return depth * 1000 - branch.length;
}

function firstMessage(branches: readonly Issue[][]): string | undefined {
  return branches.flat()[0]?.message;
}

/** "a string", "a list": the words a YAML author knows. */
function expectedOf(issue: Issue): string {
  if (issue.code === "invalid_type") return typeWords[issue.expected] ?? issue.expected;
  if (issue.code === "invalid_value") return issue.values.map((v) => JSON.stringify(v)).join(" or ");
  return "";
}

const typeWords: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  array: "a list",
  object: "a map",
  null: "nothing (null)",
  tuple: "a list",
  record: "a map",
};

/** "services.web.memory: " — the message says which value; the place (printed apart) says where. */
export function at(path: YamlPath): string {
  return path.length === 0 ? "" : `${path.join(".")}: `;
}

/** [file, line, col] of "file:line:col"; places without a line sort last in their file. */
function placeKey(place: string): [string, number, number] {
  const m = /^(.*):(\d+):(\d+)$/.exec(place);
  return m === null ? [place, Infinity, Infinity] : [m[1]!, Number(m[2]), Number(m[3])];
}

/** Problems of the earlier file first (in the order files appear), then by line and column. */
function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0 && !Number.isNaN(d)) return d;
  }
  return 0;
}

/** Run a skiff parser; its SkiffError becomes a problem at `place`. */
export function attempt<T>(problems: ConfigProblem[], place: string, prefix: string, parse: () => T): T | undefined {
  try {
    return parse();
  } catch (err) {
    if (!isSkiffError(err)) throw err;
    problems.push({ place, message: `${prefix}${err.message}`, ...(err.hint === undefined ? {} : { hint: err.hint }) });
    return undefined;
  }
}
