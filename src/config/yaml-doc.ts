/**
 * YAML with positions: every YAML-based loader (skiff.yml, pontoon.yml,
 * compose, layer.yml) parses through here, so that a value's place in the
 * file (file:line:column) is known when the schema rejects it.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, stringify, visit, type Document, type Node, type Pair, type YAMLMap } from "yaml";
import { SkiffError } from "../errors.js";

export type YamlPath = ReadonlyArray<string | number>;

export interface YamlDoc {
  /** The file as given (for places). */
  file: string;
  /** The document as plain data (maps as objects, aliases resolved). */
  value: unknown;
  /** "file:line:col" of the value at `path`, or of the nearest ancestor that exists. */
  placeOf(path: YamlPath): string;
  /** "file:line:col" of the key at the end of `path` (for "unknown key" errors); the value's place if it has no key. */
  keyPlaceOf(path: YamlPath): string;
  /** Values tagged `!reset` or `!override` (the Compose Specification's merge tags), by path. */
  tagged?: ReadonlyArray<{ path: YamlPath; tag: "!reset" | "!override" }>;
}

/** Aliases may expand; a small document must not expand into gigabytes ("billion laughs"). */
// Sentry's compose file needs ~2000; a billion-laughs document is still refused within milliseconds.
const maxAliasCount = 10_000;

/** `value` as YAML text (`skiff config`). */
export function toYaml(value: unknown): string {
  return stringify(value);
}

/** Parse `text` (from `file`); a YAML syntax error is ERR_SKIFF_CONFIG at its line:column. */
export function parseYaml(text: string, file: string): YamlDoc {
  const lines = new LineCounter();
  // merge: YAML 1.1 merge keys (`<<: *defaults`, `<<: [*a, *b]`), which compose files use widely and
  // compose-go reads: explicit keys win, then the merged maps in list order.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, strict: true, merge: true });
  const place = (offset: number | undefined): string => {
    if (offset === undefined) return file;
    const p = lines.linePos(offset);
    return `${file}:${p.line}:${p.col}`;
  };
  const first = doc.errors[0];
  if (first !== undefined) {
    throw new SkiffError("ERR_SKIFF_CONFIG", `${file} is not valid YAML: ${firstLine(first.message)}`, {
      place: place(first.pos[0]),
      hint: "check the indentation and quoting at that place",
    });
  }
  // A key that is a list or map (`? [a]: b`) has no place in a config; yaml would stringify it with a process warning.
  let complexKey: number | undefined;
  visit(doc, {
    Pair(_key, pair) {
      if (pair.key !== null && !isScalar(pair.key)) {
        complexKey = isNode(pair.key) ? pair.key.range?.[0] : undefined;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  if (complexKey !== undefined) {
    throw new SkiffError("ERR_SKIFF_CONFIG", `${file}: a key is a list or a map`, {
      place: place(complexKey),
      hint: "keys are plain words; quote it if it should be text",
    });
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount });
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_CONFIG", `${file} cannot be read: ${err instanceof Error ? err.message : String(err)}`, {
      place: file,
      hint: "aliases (*name) may not expand into more than 10000 nodes",
    });
  }
  const tagged = mergeTags(doc.contents, []);
  return {
    file,
    value,
    placeOf: (path) => place(nodeAt(doc, path, "value")?.range?.[0]),
    keyPlaceOf: (path) => place(nodeAt(doc, path, "key")?.range?.[0]),
    ...(tagged.length === 0 ? {} : { tagged }),
  };
}

/** Paths of the nodes tagged `!reset` or `!override` under `node`. */
function mergeTags(node: unknown, path: YamlPath): Array<{ path: YamlPath; tag: "!reset" | "!override" }> {
  const out: Array<{ path: YamlPath; tag: "!reset" | "!override" }> = [];
  if (isNode(node) && (node.tag === "!reset" || node.tag === "!override")) out.push({ path, tag: node.tag });
  if (isMap(node)) {
    for (const pair of node.items) if (isScalar(pair.key)) out.push(...mergeTags(pair.value, [...path, String(pair.key.value)]));
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => out.push(...mergeTags(item, [...path, i])));
  }
  return out;
}

function firstLine(message: string): string {
  return message.split("\n")[0]!.trim();
}

/** The node at `path` (its key node with `want: "key"`), or the deepest ancestor found. */
function nodeAt(doc: Document, path: YamlPath, want: "key" | "value"): Node | undefined {
  let node: unknown = doc.contents;
  let found: Node | undefined = isNode(node) ? node : undefined;
  for (let i = 0; i < path.length; i++) {
    const step = path[i]!;
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = pairOf(doc, node, String(step), 0);
      if (pair === undefined) return found;
      if (last && want === "key" && isNode(pair.key)) return pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof step === "number") {
      node = node.items[step];
    } else {
      return found;
    }
    if (!isNode(node)) return found;
    found = node;
  }
  return found;
}

/** The pair for `key` in `map`, or in the maps it merges (`<<`), whose keys it does not set itself. */
function pairOf(doc: Document, map: YAMLMap, key: string, depth: number): Pair | undefined {
  const own = map.items.find((p) => isPair(p) && isScalar(p.key) && !isMergeKey(p.key.value) && String(p.key.value) === key);
  if (own !== undefined || depth > 20) return own;
  for (const merge of map.items.filter((p) => isScalar(p.key) && isMergeKey(p.key.value))) {
    const sources = isSeq(merge.value) ? merge.value.items : [merge.value];
    for (const source of sources) {
      const target = isAlias(source) ? source.resolve(doc) : source;
      const found = isMap(target) ? pairOf(doc, target, key, depth + 1) : undefined;
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

function isMergeKey(key: unknown): boolean {
  return key === "<<" || (typeof key === "symbol" && key.description === "<<");
}

function isNode(v: unknown): v is Node {
  return typeof v === "object" && v !== null && "range" in v;
}
