/**
 * Compose's value rules that are not YAML's: the types interpolated values
 * are cast to (compose-go's loader/interpolate.go table), Go duration syntax,
 * and which `x-*` keys are extensions (to be ignored) rather than user data.
 */
import { configFail } from "./foreign.js";
import { isMapping } from "./merge.js";
import type { YamlPath } from "./yaml-doc.js";

type Cast = "int" | "float" | "bool";

/**
 * Paths whose string values are cast (after interpolation, as compose-go
 * does for every string there): `*` is any key or index. From compose-go
 * loader/interpolate.go's interpolateTypeCastMapping.
 */
const casts: ReadonlyArray<readonly [string, Cast]> = [
  ["services.*.cpu_count", "int"],
  ["services.*.cpu_percent", "float"],
  ["services.*.cpu_period", "int"],
  ["services.*.cpu_quota", "int"],
  ["services.*.cpu_rt_period", "int"],
  ["services.*.cpu_rt_runtime", "int"],
  ["services.*.cpus", "float"],
  ["services.*.cpu_shares", "int"],
  ["services.*.init", "bool"],
  ["services.*.deploy.replicas", "int"],
  ["services.*.deploy.resources.limits.cpus", "float"],
  ["services.*.deploy.resources.limits.pids", "int"],
  ["services.*.deploy.update_config.parallelism", "int"],
  ["services.*.deploy.update_config.max_failure_ratio", "float"],
  ["services.*.deploy.rollback_config.parallelism", "int"],
  ["services.*.deploy.rollback_config.max_failure_ratio", "float"],
  ["services.*.deploy.restart_policy.max_attempts", "int"],
  ["services.*.deploy.placement.max_replicas_per_node", "int"],
  ["services.*.healthcheck.retries", "int"],
  ["services.*.healthcheck.disable", "bool"],
  ["services.*.oom_kill_disable", "bool"],
  ["services.*.oom_score_adj", "int"],
  ["services.*.pids_limit", "int"],
  ["services.*.ports.*.target", "int"],
  ["services.*.ports.*.published", "int"],
  ["services.*.privileged", "bool"],
  ["services.*.read_only", "bool"],
  ["services.*.scale", "int"],
  ["services.*.stdin_open", "bool"],
  ["services.*.tty", "bool"],
  ["services.*.ulimits.*", "int"],
  ["services.*.ulimits.*.hard", "int"],
  ["services.*.ulimits.*.soft", "int"],
  ["services.*.volumes.*.read_only", "bool"],
  ["services.*.volumes.*.volume.nocopy", "bool"],
  ["services.*.depends_on.*.required", "bool"],
  ["services.*.depends_on.*.restart", "bool"],
  ["networks.*.external", "bool"],
  ["networks.*.internal", "bool"],
  ["networks.*.attachable", "bool"],
  ["networks.*.enable_ipv4", "bool"],
  ["networks.*.enable_ipv6", "bool"],
  ["volumes.*.external", "bool"],
  ["secrets.*.external", "bool"],
  ["configs.*.external", "bool"],
];

function matches(pattern: string, path: YamlPath): boolean {
  const steps = pattern.split(".");
  return steps.length === path.length && steps.every((s, i) => s === "*" || s === String(path[i]));
}

/** Go's strconv.ParseBool words and YAML 1.1's, as compose-go's toBoolean takes them. */
const booleans: Record<string, boolean> = { true: true, yes: true, y: true, on: true, "1": true, false: false, no: false, n: false, off: false, "0": false };

/**
 * `text` (a string at `path`) as the type the field needs; left a string when
 * it does not read as one (the schema then says what was expected, at its place).
 */
export function castValue(text: string, path: YamlPath): string | number | boolean {
  const cast = casts.find(([pattern]) => matches(pattern, path))?.[1];
  const trimmed = text.trim();
  if (cast === undefined || trimmed === "") return text;
  if (cast === "bool") return booleans[trimmed.toLowerCase()] ?? text;
  const n = Number(trimmed);
  if (!Number.isFinite(n) || (cast === "int" && !Number.isInteger(n))) return text;
  return n;
}

const goUnits: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A compose duration in milliseconds: Go's time.ParseDuration syntax
 * (`500us`, `1h30m`, `1.5s`, `0`), or a bare number of seconds as some
 * files write. Fractions of a millisecond round to the nearest.
 */
export function composeDuration(v: string | number, place: string): number {
  const text = String(v).trim();
  if (/^\d+(\.\d+)?$/.test(text)) return text === "0" || Number(text) === 0 ? 0 : Math.round(Number(text) * 1000);
  const parts = [...text.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text) {
    configFail(`invalid duration ${JSON.stringify(String(v))}`, place, "give a Go duration such as 500ms, 1.5s, 1m30s, 1h or 500us");
  }
  return Math.round(parts.reduce((ms, p) => ms + Number(p[1]) * goUnits[p[2]!]!, 0));
}

/**
 * Keys whose values are the user's own maps (variable names, labels, options):
 * an `x-` key there is data, not an extension.
 */
const userMaps = new Set(["environment", "labels", "annotations", "sysctls", "driver_opts", "options", "args", "extra_hosts", "aux_addresses", "ulimits", "additional_contexts"]);

/**
 * The value without `x-*` extension keys, at every level compose allows
 * them (the top, services, networks, volumes and the objects inside them:
 * healthcheck, deploy, ports, ipam, build, logging …), but not inside maps of
 * user data such as environment or labels.
 */
export function withoutExtensions(value: unknown, path: readonly string[] = []): unknown {
  if (Array.isArray(value)) return value.map((item) => withoutExtensions(item, path));
  if (!isMapping(value)) return value;
  // services.<name> is a name, whatever it is called; deeper, those keys hold user data.
  if (path.length >= 3 && userMaps.has(path[path.length - 1]!)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (key.startsWith("x-")) continue;
    Object.defineProperty(out, key, { value: withoutExtensions(item, [...path, key]), enumerable: true, writable: true, configurable: true });
  }
  return out;
}
