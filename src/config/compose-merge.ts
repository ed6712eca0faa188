/**
 * The Compose Specification's merge rules (13-merge.md, as compose-go's
 * override package applies them), used for `-f a.yml -f b.yml`, the
 * default override file and `extends`: mappings merge key by key, scalars
 * are replaced, sequences are appended — except command, entrypoint and
 * healthcheck.test, which are replaced, and the "unique resources" (ports,
 * volumes, env_file, expose, dns …) where a later entry with the same key
 * replaces the earlier one in place. environment, labels, depends_on and
 * networks merge as maps whichever form (list or map) each file wrote.
 */
import { isMapping, mergeDocs } from "./merge.js";
import type { YamlDoc, YamlPath } from "./yaml-doc.js";

type Path = readonly string[];
type Origin = readonly [list: unknown[], index: number];

/** For each merged sequence, where each of its items came from (an earlier list and its index). */
const origins = new WeakMap<unknown[], Origin[]>();

function matches(pattern: string, path: Path): boolean {
  const steps = pattern.split(".");
  return steps.length === path.length && steps.every((s, i) => s === "*" || s === path[i]);
}

const replaced = ["services.*.command", "services.*.entrypoint", "services.*.healthcheck.test", "services.*.ulimits.*"];

/** Lists of KEY=VALUE (or maps) that merge as maps, later keys winning. */
const asMaps = [
  "services.*.environment",
  "services.*.labels",
  "services.*.annotations",
  "services.*.sysctls",
  "services.*.deploy.labels",
  "services.*.build.args",
  "services.*.build.labels",
  "services.*.build.additional_contexts",
  "networks.*.labels",
  "volumes.*.labels",
  "networks.*.driver_opts",
  "volumes.*.driver_opts",
];

/** Lists of names (or maps by name) that merge as maps: `[a, b]` is `{a: null, b: null}`. */
const namedMaps = ["services.*.depends_on", "services.*.networks"];

const keyValue = (v: unknown): string => (typeof v === "string" ? v.split("=")[0]! : JSON.stringify(v));

/** The key two entries of a sequence are "the same resource" by, per the spec's unique resources and compose-go's unicity table. */
const uniqueBy: ReadonlyArray<readonly [string, (v: unknown) => string]> = [
  ["services.*.ports", portKey],
  ["services.*.volumes", volumeTarget],
  ["services.*.env_file", (v) => (isMapping(v) ? String(v["path"]) : String(v))],
  ["services.*.expose", (v) => String(v)],
  ["services.*.secrets", (v) => mountTarget(v, "/run/secrets/")],
  ["services.*.configs", (v) => mountTarget(v, "/")],
  ["services.*.extra_hosts", (v) => String(v)],
  ["networks.*.ipam.config", (v) => (isMapping(v) && v["subnet"] !== undefined ? String(v["subnet"]) : JSON.stringify(v))],
  ...[
    "cap_add",
    "cap_drop",
    "dns",
    "dns_opt",
    "dns_search",
    "links",
    "profiles",
    "tmpfs",
    "devices",
    "build.tags",
    "networks.*.aliases",
    "networks.*.link_local_ips",
  ].map((k) => [`services.*.${k}`, keyValue] as const),
];

/** A value tagged `!reset` (13-merge.md): what earlier files set is dropped. */
const reset = Symbol("!reset");
/** A value tagged `!override`: it replaces what earlier files set, not merged with it. */
class Override {
  constructor(readonly value: unknown) {}
}

/** `doc.value` with its `!reset` / `!override` values marked for composeMerge (in place: the value is a fresh copy). */
export function markMergeTags(doc: YamlDoc): void {
  for (const { path, tag } of doc.tagged ?? []) {
    const parent = reachParent(doc.value, path);
    const last = path[path.length - 1];
    if (parent === undefined || last === undefined) continue;
    const holder = parent as Record<string | number, unknown>;
    if (!Object.hasOwn(holder, last)) continue;
    holder[last] = tag === "!reset" ? reset : new Override(holder[last]);
  }
}

function reachParent(value: unknown, path: YamlPath): object | undefined {
  let node = value;
  for (const step of path.slice(0, -1)) {
    if (Array.isArray(node) && typeof step === "number") node = node[step];
    else if (isMapping(node) && Object.hasOwn(node, String(step))) node = node[String(step)];
    else return undefined;
  }
  return typeof node === "object" && node !== null ? node : undefined;
}

/** The merged value with the merge tags gone: `!reset` keys removed, `!override` values unwrapped (in place, keeping lists' identities). */
function dropMergeTags(v: unknown): unknown {
  if (v === reset) return undefined;
  if (v instanceof Override) return dropMergeTags(v.value);
  if (Array.isArray(v)) {
    for (let i = v.length - 1; i >= 0; i--) {
      const item = dropMergeTags(v[i]);
      if (item === undefined) v.splice(i, 1);
      else v[i] = item;
    }
  } else if (isMapping(v)) {
    for (const key of Object.keys(v)) {
      const item = dropMergeTags(v[key]);
      if (item === undefined) delete v[key];
      else v[key] = item;
    }
  }
  return v;
}

/** `later` over `earlier` at `path` (from the document's root) by the rules above. */
export function composeMerge(earlier: unknown, later: unknown, path: Path = []): unknown {
  if (later === reset) return undefined;
  if (later instanceof Override) return later.value;
  if (earlier === reset) return later;
  if (earlier instanceof Override) return composeMerge(earlier.value, later, path);
  if (later === null || later === undefined) return earlier ?? later;
  if (earlier === null || earlier === undefined) return later;
  if (replaced.some((p) => matches(p, path))) return later;
  if (asMaps.some((p) => matches(p, path))) return { ...keyValueMap(earlier), ...keyValueMap(later) };
  if (namedMaps.some((p) => matches(p, path))) {
    // A depends_on name alone means "started", as compose-go's normalisation writes it before merging.
    const bare = matches("services.*.depends_on", path) ? { condition: "service_started" } : null;
    return mergeMaps(namesToMap(earlier, bare), namesToMap(later, bare), path);
  }
  if (matches("services.*.build", path)) return mergeMaps(buildMap(earlier), buildMap(later), path);
  if (matches("services.*.logging", path) && isMapping(earlier) && isMapping(later)) {
    // Another driver's options mean nothing for this one.
    if (earlier["driver"] !== undefined && later["driver"] !== undefined && earlier["driver"] !== later["driver"]) return later;
  }
  if (Array.isArray(earlier) && Array.isArray(later)) return mergeSequences(earlier, later, path);
  if (isMapping(earlier) && isMapping(later)) return mergeMaps(earlier, later, path);
  return later;
}

function mergeMaps(earlier: Record<string, unknown>, later: Record<string, unknown>, path: Path): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // defineProperty: a YAML key "__proto__" must stay a key, not become a prototype.
  const put = (key: string, value: unknown) => Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  for (const [key, value] of Object.entries(earlier)) put(key, value);
  for (const [key, value] of Object.entries(later)) {
    const merged = Object.hasOwn(earlier, key) ? composeMerge(earlier[key], value, [...path, key]) : value;
    if (merged === undefined) delete out[key];
    else put(key, merged);
  }
  return out;
}

function mergeSequences(earlier: unknown[], later: unknown[], path: Path): unknown[] {
  const key = uniqueBy.find(([p]) => matches(p, path))?.[1];
  const out: unknown[] = [];
  const from: Origin[] = [];
  const index = new Map<string, number>();
  for (const [list, i] of [...earlier.map((_, i) => [earlier, i] as const), ...later.map((_, i) => [later, i] as const)]) {
    const k = key?.(list[i]);
    const at = k === undefined ? undefined : index.get(k);
    if (at === undefined) {
      if (k !== undefined) index.set(k, out.length);
      out.push(list[i]);
      from.push([list, i]);
    } else {
      out[at] = list[i];
      from[at] = [list, i];
    }
  }
  origins.set(out, from);
  return out;
}

/**
 * The documents merged by these rules. Places of items of merged sequences
 * come from the file (and the service, for extends) whose list held them.
 */
export function mergeComposeDocs(docs: readonly YamlDoc[]): YamlDoc {
  const merged = mergeDocs(docs, (a, b) => composeMerge(a, b));
  dropMergeTags(merged.value);
  let homes: Map<unknown[], readonly [YamlDoc, YamlPath]> | undefined;
  const home = (list: unknown[]) => {
    if (homes === undefined) {
      homes = new Map();
      for (const doc of docs) indexLists(doc.value, [], doc, homes);
    }
    return homes.get(list);
  };
  const locate = (path: YamlPath, want: "key" | "value"): string => {
    let node = merged.value;
    for (let i = 0; i < path.length; i++) {
      const step = path[i]!;
      if (Array.isArray(node) && typeof step === "number") {
        const [list, index] = originOf(node, step);
        const found = list === node ? undefined : home(list);
        if (found !== undefined) {
          const [doc, at] = found;
          const rest = [...at, index, ...path.slice(i + 1)];
          return want === "key" ? doc.keyPlaceOf(rest) : doc.placeOf(rest);
        }
        node = node[step];
      } else if (isMapping(node) && Object.hasOwn(node, String(step))) {
        node = node[String(step)];
      } else {
        break;
      }
    }
    return want === "key" ? merged.keyPlaceOf(path) : merged.placeOf(path);
  };
  return { ...merged, placeOf: (path) => locate(path, "value"), keyPlaceOf: (path) => locate(path, "key") };
}

/** Where item `index` of `list` came from, followed back through every merge. */
function originOf(list: unknown[], index: number): Origin {
  let at: Origin = [list, index];
  for (let from = origins.get(list)?.[index]; from !== undefined; from = origins.get(at[0])?.[at[1]]) at = from;
  return at;
}

function indexLists(v: unknown, path: YamlPath, doc: YamlDoc, into: Map<unknown[], readonly [YamlDoc, YamlPath]>): void {
  if (Array.isArray(v)) {
    if (!into.has(v)) into.set(v, [doc, path]);
    v.forEach((item, i) => indexLists(item, [...path, i], doc, into));
  } else if (isMapping(v)) {
    for (const [k, item] of Object.entries(v)) indexLists(item, [...path, k], doc, into);
  }
}

/** environment/labels as a map: `KEY=VALUE` → KEY: VALUE, a bare `KEY` → KEY: null (take the shell's). */
function keyValueMap(v: unknown): Record<string, unknown> {
  if (isMapping(v)) return v;
  if (!Array.isArray(v)) return {};
  return Object.fromEntries(
    v.map((item) => {
      const text = String(item);
      const eq = text.indexOf("=");
      return eq < 0 ? [text, null] : [text.slice(0, eq), text.slice(eq + 1)];
    }),
  );
}

function namesToMap(v: unknown, bare: unknown): Record<string, unknown> {
  if (isMapping(v)) return v;
  return Array.isArray(v) ? Object.fromEntries(v.map((name) => [String(name), bare])) : {};
}

function buildMap(v: unknown): Record<string, unknown> {
  return typeof v === "string" ? { context: v } : isMapping(v) ? v : {};
}

/** host_ip:published:target/protocol, with compose's defaults filled in, whichever syntax wrote it. */
function portKey(v: unknown): string {
  if (isMapping(v)) return `${String(v["host_ip"] ?? "")}:${String(v["published"] ?? "")}:${String(v["target"])}/${String(v["protocol"] ?? "tcp")}`;
  const text = String(v);
  const slash = text.indexOf("/");
  const proto = slash < 0 ? "tcp" : text.slice(slash + 1);
  const parts = (slash < 0 ? text : text.slice(0, slash)).split(":");
  const target = parts.pop()!;
  const published = parts.pop() ?? "";
  return `${parts.join(":")}:${published}:${target}/${proto}`;
}

/** A mount's path in the container: `source:target[:mode]` or `target`, or the long syntax's target. */
function volumeTarget(v: unknown): string {
  if (isMapping(v)) return String(v["target"]);
  const parts = String(v).split(":");
  return parts.length === 1 ? parts[0]! : parts[1]!;
}

function mountTarget(v: unknown, dir: string): string {
  if (!isMapping(v)) return `${dir}${String(v)}`;
  return String(v["target"] ?? `${dir}${String(v["source"])}`);
}
