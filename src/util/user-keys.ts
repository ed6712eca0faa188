/**
 * Keys the user chose (service, network, volume, environment and label
 * names, in project files and in the records skiff keeps) become object keys, and some of them are Object.prototype's own:
 * zod's record refuses a map with a key `constructor` ("expected record")
 * and assigns `__proto__` as the prototype, so that service vanished. So a
 * document is parsed with such keys set aside under a name nothing else
 * uses, and given back as written, as own properties, in the data and in the
 * paths of the problems found.
 */
import type { z } from "zod/v4";

/** Keys that plain objects already answer to. */
const inherited = new Set(Object.getOwnPropertyNames(Object.prototype));
const mark = "\u0000skiff-key:";

/** `obj[key] = value`, also when key is `__proto__`. */
export function setKey<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Object.assign, also for a key `__proto__`. */
export function assignKeys<T>(target: Record<string, T>, source: Record<string, T>): void {
  for (const [k, v] of Object.entries(source)) setKey(target, k, v);
}

/** An object with these entries as own properties, whatever the keys. */
export function objectOf<T>(entries: Iterable<readonly [string, T]>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of entries) setKey(out, k, v);
  return out;
}

function mapKeys(value: unknown, rename: (key: string) => string): unknown {
  if (Array.isArray(value)) return value.map((v) => mapKeys(v, rename));
  if (typeof value !== "object" || value === null) return value;
  return objectOf(Object.entries(value).map(([k, v]) => [rename(k), mapKeys(v, rename)] as const));
}

const hide = (k: string): string => (inherited.has(k) ? mark + k : k);
const show = (k: string): string => (k.startsWith(mark) ? k.slice(mark.length) : k);

/** schema.safeParse(value), with keys such as `__proto__` and `constructor` read as any other. */
export function safeParseUserKeys<S extends z.ZodType>(schema: S, value: unknown, params?: { reportInput?: boolean }): z.ZodSafeParseResult<z.output<S>> {
  return parseUserKeys(value, (hidden) => schema.safeParse(hidden, params));
}

/**
 * `parse(value)` with such keys read as any other: `parse` is a schema's
 * safeParse, classic zod's or zod/mini's (the records `ps` reads use
 * zod/mini, which builds its schemas faster: src/store/record.ts).
 */
export function parseUserKeys<R extends { success: true; data: unknown } | { success: false; error: { issues: readonly z.core.$ZodIssue[] } }>(
  value: unknown,
  parse: (hidden: unknown) => R,
): R {
  const result = parse(mapKeys(value, hide));
  if (result.success) return { ...result, data: mapKeys(result.data, show) };
  for (const issue of result.error.issues) showIssue(issue);
  return result;
}

/** Issue paths (and those of union branches, and unknown keys) as the file wrote them. */
function showIssue(issue: z.core.$ZodIssue): void {
  // zod types its issues read-only; these are ours, made by the parse just above.
  const writable = issue as { path: PropertyKey[]; keys?: string[] };
  writable.path = issue.path.map((p) => (typeof p === "string" ? show(p) : p));
  if (issue.code === "unrecognized_keys") writable.keys = issue.keys.map(show);
  if (issue.code === "invalid_union") for (const branch of issue.errors) for (const i of branch) showIssue(i);
}
