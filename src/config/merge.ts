/**
 * `-f a.yml -f b.yml`: later files override earlier ones. Maps merge key by
 * key, all the way down; scalars and lists are replaced whole (compose files
 * follow the Compose Specification's own rules instead: compose-merge.ts);
 * a later `key:` with no value (null) leaves
 * the earlier value, since that is how YAML writes "declared, no settings".
 * The merged document still knows, for each value, which file it came from,
 * so errors point at the file that wrote it.
 */
import type { YamlDoc, YamlPath } from "./yaml-doc.js";

export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `later` over `earlier` by the rule above. */
export function deepMerge(earlier: unknown, later: unknown): unknown {
  if (later === null || later === undefined) return earlier ?? later;
  if (!isMapping(earlier) || !isMapping(later)) return later;
  const out: Record<string, unknown> = {};
  // defineProperty: a YAML key "__proto__" must stay a key, not become a prototype.
  const put = (key: string, value: unknown) => Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  for (const [key, value] of Object.entries(earlier)) put(key, value);
  for (const [key, value] of Object.entries(later)) put(key, Object.hasOwn(earlier, key) ? deepMerge(earlier[key], value) : value);
  return out;
}

/** How many leading steps of `path` exist in `value`. */
export function reach(value: unknown, path: YamlPath): number {
  let node = value;
  for (let i = 0; i < path.length; i++) {
    const step = path[i]!;
    if (Array.isArray(node) && typeof step === "number" && step < node.length) node = node[step];
    else if (isMapping(node) && Object.hasOwn(node, String(step))) node = node[String(step)];
    else return i;
  }
  return path.length;
}

/** The documents merged into one (by `merge`, deepMerge unless given); places come from the last file that has the path (or most of it). */
export function mergeDocs(docs: readonly YamlDoc[], merge: (earlier: unknown, later: unknown) => unknown = deepMerge): YamlDoc {
  if (docs.length === 1) return docs[0]!;
  const owner = (path: YamlPath): YamlDoc => {
    let best = docs[0]!;
    let bestReach = -1;
    for (const doc of docs) {
      const r = reach(doc.value, path);
      if (r >= bestReach) [best, bestReach] = [doc, r];
    }
    return best;
  };
  return {
    file: docs[0]!.file,
    value: docs.map((d) => d.value).reduce((a, b) => merge(a, b)),
    placeOf: (path) => owner(path).placeOf(path),
    keyPlaceOf: (path) => owner(path).keyPlaceOf(path),
  };
}
