/**
 * One compose service → a ServiceSpec: the keys that have a VM meaning are
 * translated (ports to user-net forwards, volumes to 9p shares and volume
 * disks, healthchecks to guest commands), the ones without are warned about.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import type { PortForward } from "../spec/machine.js";
import type { DependsOn, HealthCheck, RestartPolicy, ServiceNetwork, ServiceSpec, ServiceVolume } from "../project/types.js";
import { parsePublish } from "../network/ports.js";
import { parseIpv4 } from "../network/ipam.js";
import type { ComposeService } from "./compose-schema.js";
import { dependencyConditions, keysWithoutMeaning } from "./compose-schema.js";
import { parseDotenv } from "./compose-text.js";
import { composeDuration } from "./compose-values.js";
import { splitShellWords } from "./shell-words.js";
import { hostPath } from "./context.js";
import { placed } from "./item-place.js";
import { asConfigError, configFail, guestMemoryMiB, sizeToMiB, Warnings } from "./foreign.js";
import type { YamlDoc, YamlPath } from "./yaml-doc.js";
import { assignKeys, setKey } from "../util/user-keys.js";

export interface ServiceContext {
  doc: YamlDoc;
  dir: string;
  warnings: Warnings;
  /** The shell's environment over the project's .env (compose's precedence). */
  env: NodeJS.ProcessEnv;
  /** Top-level networks and volumes by name, to check references against. */
  networks: ReadonlySet<string>;
  internalNetworks: ReadonlySet<string>;
  volumes: ReadonlySet<string>;
  services: ReadonlySet<string>;
  /** The network a service without `networks` joins (compose's `default`). */
  defaultNetwork: string;
}

export function composeService(name: string, svc: ComposeService, c: ServiceContext): ServiceSpec {
  const path: YamlPath = ["services", name];
  const at = (...rest: YamlPath) => c.doc.placeOf([...path, ...rest]);
  const keyAt = (...rest: YamlPath) => c.doc.keyPlaceOf([...path, ...rest]);
  for (const key of Object.keys(svc)) {
    const why = keysWithoutMeaning[key];
    if (why !== undefined && !(key === "network_mode" && svc.network_mode === "none")) c.warnings.add(key, keyAt(key), why, name);
  }
  if (svc.image === undefined) {
    const hint = svc.build === undefined ? "give an image (an OCI reference or a local image such as base)" : keysWithoutMeaning.build;
    configFail(`service ${name} has no image`, keyAt(), hint);
  }
  const limits = svc.deploy?.resources?.limits;
  const memoryText = limits?.memory ?? svc.mem_limit;
  const memoryKey = limits?.memory !== undefined ? ["deploy", "resources", "limits", "memory"] : ["mem_limit"];
  const cpusText = limits?.cpus ?? svc.cpus;
  const cpusKey = limits?.cpus !== undefined ? ["deploy", "resources", "limits", "cpus"] : ["cpus"];
  warnDeploy(name, svc, c, keyAt);
  const networks = serviceNetworks(name, svc, c, at, keyAt);
  const memoryMiB = memoryText === undefined ? undefined : guestMemoryMiB(sizeToMiB(memoryText, at(...memoryKey), "bytes"), memoryKey.join("."), at(...memoryKey), c.warnings, name);
  const cpus = cpusText === undefined ? undefined : vcpus(cpusText, name, at(...cpusKey), c.warnings);
  return {
    name,
    image: svc.image,
    layers: [],
    kernelArgs: [],
    ...(memoryMiB === undefined ? {} : { memoryMiB }),
    ...(cpus === undefined ? {} : { cpus }),
    ...(svc.hostname === undefined ? {} : { hostname: svc.hostname }),
    environment: environment(name, svc, c, at),
    ...words("command", svc.command, at("command")),
    ...words("entrypoint", svc.entrypoint, at("entrypoint")),
    ...(svc.user === undefined ? {} : { user: String(svc.user) }),
    ...(svc.working_dir === undefined ? {} : { workingDir: svc.working_dir }),
    // A service only on internal networks has no way out, as in compose; `network_mode: none` has no network at all.
    userNetwork: svc.network_mode !== "none" && !(networks.length > 0 && networks.every((n) => c.internalNetworks.has(n.network))),
    networks,
    ports: (svc.ports ?? []).flatMap((p, i) => ports(p, at("ports", i), c.warnings, name)),
    dns: svc.dns === undefined ? [] : typeof svc.dns === "string" ? [svc.dns] : svc.dns,
    volumes: (svc.volumes ?? []).flatMap((v, i) => volume(v, name, c, at("volumes", i))),
    dependsOn: dependsOn(name, svc, c, at, keyAt),
    ...healthcheckOf(name, svc, c, at),
    restart: restart(svc.restart, name, at("restart"), c.warnings),
    replicas: svc.deploy?.replicas ?? svc.scale ?? 1,
    ...(svc.labels === undefined ? {} : { labels: labelPairs(svc.labels) }),
    provision: [],
    place: keyAt(),
  };
}

function warnDeploy(name: string, svc: ComposeService, c: ServiceContext, keyAt: (...p: YamlPath) => string): void {
  const deploy = svc.deploy ?? {};
  for (const key of Object.keys(deploy)) {
    if (key === "replicas" || key === "resources") continue;
    c.warnings.add(`deploy.${key}`, keyAt("deploy", key), "skiff runs services on one host; only deploy.replicas and deploy.resources.limits are read", name);
  }
  const resources = deploy.resources ?? {};
  if (resources.reservations !== undefined) c.warnings.add("deploy.resources.reservations", keyAt("deploy", "resources", "reservations"), "a VM's memory and vCPUs are its limits; nothing is reserved apart", name);
  for (const key of Object.keys(resources.limits ?? {})) {
    if (key !== "memory" && key !== "cpus") c.warnings.add(`deploy.resources.limits.${key}`, keyAt("deploy", "resources", "limits", key), "only memory and cpus limit a VM", name);
  }
}

function words(key: "command" | "entrypoint", v: string | string[] | null | undefined, place: string): Partial<ServiceSpec> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "string") return { [key]: v };
  const split = splitShellWords(v);
  if ("error" in split) configFail(`${key} ${JSON.stringify(v)} ${split.error}`, place, "close the quote, or give the command as a list");
  return { [key]: split.words };
}

function vcpus(v: string | number, name: string, place: string, warnings: Warnings): number | undefined {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) configFail(`not a CPU count: ${JSON.stringify(v)}`, place, "give a number of CPUs such as 1 or 2");
  if (n === 0) return undefined; // compose: 0 is no limit
  if (!Number.isInteger(n)) warnings.add("cpus (a fraction)", place, "a VM has whole vCPUs; the count is rounded up", name);
  return Math.ceil(n);
}

/** labels: a map, or KEY=VALUE items (a KEY alone is an empty label). */
function labelPairs(v: Record<string, unknown> | string[]): Record<string, string> {
  if (!Array.isArray(v)) return Object.fromEntries(Object.entries(v).map(([k, val]) => [k, val === null ? "" : String(val)]));
  return Object.fromEntries(v.map((item) => (item.includes("=") ? [item.slice(0, item.indexOf("=")), item.slice(item.indexOf("=") + 1)] : [item, ""])));
}

/**
 * environment: a map, or KEY=VALUE items; a KEY with no value takes the
 * shell's (or .env's) value, or is left out, as compose does. Compose takes
 * any name without `=` or blanks (`discovery.type`, `node.name`: programs
 * read such names from their environment, though a shell cannot set them).
 */
function envPairs(v: Record<string, unknown> | string[], env: NodeJS.ProcessEnv, place: (i: number | string) => string): Record<string, string> {
  const items: [string, string | undefined, number | string][] = Array.isArray(v)
    ? v.map((item, i) => (item.includes("=") ? [item.slice(0, item.indexOf("=")), item.slice(item.indexOf("=") + 1), i] : [item, undefined, i]))
    : Object.entries(v).map(([k, val]) => [k, val === null ? undefined : String(val), k]);
  const out: Record<string, string> = {};
  for (const [key, value, at] of items) {
    if (!/^[^=\s]+$/.test(key)) configFail(`invalid environment variable name ${JSON.stringify(key)}`, place(at), "write KEY=VALUE (no blanks in KEY), or KEY to pass on the shell's value");
    const v = value ?? env[key];
    if (v !== undefined) setKey(out, key, v);
  }
  return out;
}

function environment(name: string, svc: ComposeService, c: ServiceContext, at: (...p: YamlPath) => string): Record<string, string> {
  const out: Record<string, string> = {};
  const files = svc.env_file === undefined ? [] : typeof svc.env_file === "string" ? [svc.env_file] : svc.env_file;
  files.forEach((f, i) => {
    const entry = typeof f === "string" ? { path: f, required: true } : f;
    const place = at("env_file", ...(typeof svc.env_file === "string" ? [] : [i]));
    const file = hostPath(c.dir, entry.path, c.env);
    if (!existsSync(file)) {
      if (entry.required === false) return;
      configFail(`env_file ${file} does not exist`, place, "create it, or mark it `required: false`");
    }
    if (!statSync(file).isFile()) configFail(`env_file ${file} is a directory, not a file`, place, "name a file of KEY=VALUE lines (a .env directory is often a Python virtualenv)");
    assignKeys(out, parseDotenv(readFileSync(file, "utf8"), file, (k) => c.env[k]));
  });
  if (svc.environment !== undefined) assignKeys(out, envPairs(svc.environment, c.env, (k) => (Array.isArray(svc.environment) ? at("environment", k) : c.doc.keyPlaceOf(["services", name, "environment", k]))));
  return out;
}

/** One `ports` entry: short syntax (ranges expanded) or long syntax. */
function ports(p: NonNullable<ComposeService["ports"]>[number], place: string, warnings: Warnings, service: string): PortForward[] {
  if (typeof p === "object") {
    for (const key of ["mode", "name", "app_protocol"] as const) {
      if (p[key] !== undefined) warnings.add(`ports.${key}`, place, "a forward is a host port to a guest port, no more", service);
    }
    const host = p.published === undefined ? "" : String(p.published);
    const ip = p.host_ip === "" ? undefined : p.host_ip; // compose: an empty host IP is unset
    const text = `${ip === undefined ? "" : `${ip}:`}${host === "" && ip === undefined ? "" : `${host}:`}${p.target}`;
    return shortPorts(p.protocol === undefined ? text : `${text}/${p.protocol}`, place);
  }
  return shortPorts(String(p), place);
}

function shortPorts(text: string, place: string): PortForward[] {
  const slash = text.indexOf("/");
  const spec = slash < 0 ? text : text.slice(0, slash);
  const proto = slash < 0 ? "" : text.slice(slash);
  const parts = spec.split(":");
  const guest = range(parts.pop()!, text, place);
  const host = parts.length > 0 ? parts.pop()! : undefined;
  // "${BIND}:80:80" with BIND empty: compose reads an empty host IP as unset.
  const ip = parts.length > 0 && parts.join(":") !== "" ? parts.join(":") : undefined;
  const hosts = host === undefined || host === "" ? undefined : range(host, text, place);
  if (hosts !== undefined && hosts.length > 1 && hosts.length !== guest.length && guest.length > 1) {
    configFail(`port ranges of different lengths in ${JSON.stringify(text)}`, place, "give host and guest ranges of the same length, e.g. 8000-8001:80-81");
  }
  return guest.map((g, i) => {
    const h = hosts === undefined ? "" : String(hosts.length === guest.length ? hosts[i] : hosts[0]);
    const one = ip !== undefined ? `${ip}:${h}:${g}` : h !== "" ? `${h}:${g}` : `${g}`;
    return asConfigError(place, () => parsePublish(`${one}${proto}`, place));
  });
}

function range(text: string, whole: string, place: string): string[] {
  const m = /^(\d+)-(\d+)$/.exec(text);
  if (m === null) return [text];
  const [from, to] = [Number(m[1]), Number(m[2])];
  if (to < from || to - from > 1024) configFail(`bad port range ${text} in ${JSON.stringify(whole)}`, place, "write low-high, at most 1024 ports");
  return Array.from({ length: to - from + 1 }, (_, i) => String(from + i));
}

const hostKernelFs = ["/proc", "/sys", "/dev"];

function volume(v: NonNullable<ComposeService["volumes"]>[number], service: string, c: ServiceContext, place: string): ServiceVolume[] {
  let type: string;
  let source: string | undefined;
  let target: string;
  let readOnly = false;
  if (typeof v === "string") {
    const parts = v.split(":");
    if (parts.length > 3 || parts.some((p) => p === "")) configFail(`cannot read volume ${JSON.stringify(v)}`, place, "write SOURCE:TARGET[:ro], e.g. ./src:/src:ro or data:/var/lib/data");
    if (parts.length === 1) [target] = parts as [string];
    else [source, target] = parts as [string, string];
    for (const mode of (parts[2] ?? "").split(",").filter((m) => m !== "")) {
      if (mode === "ro") readOnly = true;
      else if (mode !== "rw") c.warnings.add(`volumes mode ${mode}`, place, "only ro and rw mean something for a VM's shares", service);
    }
    type = source === undefined ? "volume" : /^[./~]/.test(source) ? "bind" : "volume";
  } else {
    ({ type, source, target } = v);
    readOnly = v.read_only ?? false;
    for (const key of ["bind", "volume", "tmpfs", "image", "consistency"] as const) {
      if (v[key] !== undefined) c.warnings.add(`volumes.${key}`, place, "a share or volume disk has no such options in skiff", service);
    }
  }
  if (type === "bind") {
    if (source === undefined) configFail(`bind mount to ${target} has no source`, place);
    const host = hostPath(c.dir, source, c.env);
    // cAdvisor, node-exporter and the like bind the host's kernel filesystems to look at the host: a VM
    // has its own, and a 9p share of /proc or /sys would show nothing of the host's anyway.
    if (hostKernelFs.some((fs) => host === fs || host.startsWith(`${fs}/`))) {
      c.warnings.add(`volumes ${source}`, place, "the host's /proc, /sys and /dev are not shared into a VM; the guest has its own", service);
      return [];
    }
    return [placed({ kind: "bind", source: host, target, readOnly }, place)];
  }
  if (type !== "volume") {
    c.warnings.add(`volumes type ${type}`, place, "skiff mounts host directories (bind) and volumes only", service);
    return [];
  }
  if (source === undefined) {
    c.warnings.add("anonymous volumes", place, "the path lives on the VM's own disk, which persists until the VM is removed", service);
    return [];
  }
  if (!c.volumes.has(source)) configFail(`service ${service} uses volume ${source}, which is not declared`, place, `declare it under the top-level volumes: key, or write ./${source} for a host directory`);
  return [placed({ kind: "volume", volume: source, target, readOnly }, place)];
}

function serviceNetworks(name: string, svc: ComposeService, c: ServiceContext, at: (...p: YamlPath) => string, keyAt: (...p: YamlPath) => string): ServiceNetwork[] {
  if (svc.network_mode !== undefined && svc.networks === undefined) return [];
  const list = svc.networks ?? [c.defaultNetwork];
  const entries: [string, Record<string, unknown> | null][] = Array.isArray(list) ? list.map((n) => [n, null]) : Object.entries(list);
  return entries.map(([network, opts], i) => {
    const place = Array.isArray(list) ? at("networks", i) : keyAt("networks", network);
    if (!c.networks.has(network)) configFail(`service ${name} is on network ${network}, which is not declared`, place, "declare it under the top-level networks: key");
    const out: ServiceNetwork = { network, masquerade: false };
    for (const [key, value] of Object.entries(opts ?? {})) {
      if (key === "ipv4_address" && typeof value === "string") {
        if (parseIpv4(value) === undefined) configFail(`not an IPv4 address: ${value}`, at("networks", network, key), "give an address such as 10.0.0.5");
        out.ipv4Address = value;
      } else {
        c.warnings.add(`networks.${key}`, keyAt("networks", network, key), "a VM's address on a network is set with ipv4_address only", name);
      }
    }
    return out;
  });
}

function dependsOn(name: string, svc: ComposeService, c: ServiceContext, at: (...p: YamlPath) => string, keyAt: (...p: YamlPath) => string): DependsOn[] {
  const d = svc.depends_on;
  if (d === undefined) return [];
  type Options = { condition?: (typeof dependencyConditions)[number]; restart?: boolean; required?: boolean };
  const entries: [string, Options][] = Array.isArray(d) ? d.map((s) => [s, {}]) : Object.entries(d);
  return entries.map(([service, opts], i) => {
    const place = Array.isArray(d) ? at("depends_on", i) : keyAt("depends_on", service);
    if (!c.services.has(service)) configFail(`service ${name} depends on ${service}, which is not a service here`, place);
    let condition = opts.condition ?? "service_started";
    if (condition === "service_completed_successfully") {
      c.warnings.add("depends_on condition service_completed_successfully", place, "a VM runs until it is stopped; treated as service_started", name);
      condition = "service_started";
    }
    for (const key of ["restart", "required"] as const) {
      if (opts[key] !== undefined) c.warnings.add(`depends_on.${key}`, place, "skiff starts dependencies in order and no more", name);
    }
    return placed({ service, condition }, place);
  });
}

const composeDefaults = { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 };

function healthcheckOf(name: string, svc: ComposeService, c: ServiceContext, at: (...p: YamlPath) => string): { healthcheck?: HealthCheck } {
  const h = svc.healthcheck;
  if (h === undefined || h.disable === true) return {};
  if (h.test === undefined) {
    c.warnings.add("healthcheck without test", at("healthcheck"), "skiff does not read an image's HEALTHCHECK; no check is run", name);
    return {};
  }
  const place = at("healthcheck", "test");
  let test: string[];
  if (typeof h.test === "string") test = ["sh", "-c", h.test];
  else if (h.test[0] === "NONE") return {};
  else if (h.test[0] === "CMD" && h.test.length > 1) test = h.test.slice(1);
  else if (h.test[0] === "CMD-SHELL" && h.test.length > 1) test = ["sh", "-c", h.test.slice(1).join(" ")];
  else return configFail(`healthcheck test must start with CMD, CMD-SHELL or NONE`, place, 'write ["CMD", "redis-cli", "ping"] or ["CMD-SHELL", "curl -f http://localhost/"]');
  if (h.start_interval !== undefined) c.warnings.add("healthcheck.start_interval", at("healthcheck", "start_interval"), "skiff checks at interval from the start", name);
  const ms = (key: "interval" | "timeout" | "start_period", fallback: number) =>
    h[key] === undefined ? fallback : composeDuration(h[key], at("healthcheck", key));
  return {
    healthcheck: {
      test,
      intervalMs: ms("interval", composeDefaults.intervalMs),
      timeoutMs: ms("timeout", composeDefaults.timeoutMs),
      retries: h.retries ?? composeDefaults.retries,
      startPeriodMs: ms("start_period", composeDefaults.startPeriodMs),
    },
  };
}

function restart(v: string | undefined, name: string, place: string, warnings: Warnings): RestartPolicy {
  if (v === undefined) return "no";
  if (v === "no" || v === "always" || v === "on-failure" || v === "unless-stopped") return v;
  if (/^on-failure:\d+$/.test(v)) {
    warnings.add("restart on-failure with a count", place, "skiff restarts on failure without a count", name);
    return "on-failure";
  }
  return configFail(`unknown restart policy ${JSON.stringify(v)}`, place, "use no, always, on-failure or unless-stopped");
}
