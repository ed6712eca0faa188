/**
 * The parts of a skiff.yml service that refer to the rest of the project
 * (networks, volumes) or to host files (mounts, provision scripts), and the
 * healthcheck. Each pushes problems onto the service context and returns
 * what it could read.
 */
import { parseIpv4, parseSubnet, subnetContains } from "../network/ipam.js";
import { parseDuration } from "../util/units.js";
import type { HealthCheck, ProvisionStep, ServiceNetwork, ServiceVolume } from "../project/types.js";
import { fileOf, shellOf, type ServiceInput } from "./schema.js";
import { hostPath } from "./context.js";
import { placed } from "./item-place.js";
import type { ConfigProblem } from "./zod-error.js";
import type { YamlPath } from "./yaml-doc.js";

export interface ServiceContext {
  name: string;
  /** The service with `defaults` under it. */
  svc: ServiceInput;
  /** Whether the service itself (not `defaults`) sets `key`. */
  own(key: string): boolean;
  /** Place of a value below the service (the service's own, else the default's). */
  at(...rest: YamlPath): string;
  keyAt(...rest: YamlPath): string;
  dir: string;
  env: NodeJS.ProcessEnv;
  networks: ReadonlyMap<string, { subnet?: string }>;
  volumes: ReadonlySet<string>;
  problems: ConfigProblem[];
}

/**
 * No `networks` key: the user-networking NIC only (a VM can reach out, as
 * `skiff run` does). A `networks` key lists every NIC, so the user NIC is
 * there only if "user" is listed; "none" alone means no NIC at all.
 */
export function networksOf(c: ServiceContext): { userNetwork: boolean; networks: ServiceNetwork[] } {
  const given = c.svc.networks;
  if (given === undefined) return { userNetwork: true, networks: [] };
  const entries = Array.isArray(given) ? given.map((name, i) => ({ name, opts: null, path: i as string | number })) : Object.entries(given).map(([name, opts]) => ({ name, opts, path: name }));
  const msg = `services.${c.name}.networks: `;
  let userNetwork = false;
  const networks: ServiceNetwork[] = [];
  for (const { name, opts, path } of entries) {
    const place = Array.isArray(given) ? c.at("networks", path) : c.keyAt("networks", path);
    if (name === "user" || name === "none") {
      if (opts !== null) c.problems.push({ place, message: `${msg}"${name}" takes no settings` });
      if (name === "none" && entries.length > 1) c.problems.push({ place, message: `${msg}"none" cannot be listed with other networks` });
      userNetwork ||= name === "user";
      continue;
    }
    const declared = c.networks.get(name);
    if (declared === undefined) {
      c.problems.push({ place, message: `${msg}network ${JSON.stringify(name)} is not declared`, hint: `declare it under the top-level networks: key, or use "user" for user networking` });
      continue;
    }
    const net: ServiceNetwork = { network: name, masquerade: opts?.masquerade ?? false };
    for (const key of ["ipv4_address", "gateway"] as const) {
      const ip = opts?.[key];
      if (ip === undefined) continue;
      const at = c.at("networks", name, key);
      if (declared.subnet !== undefined && !subnetContains(parseSubnet(declared.subnet), parseIpv4(ip)!)) {
        c.problems.push({ place: at, message: `${msg}${ip} is outside ${name}'s subnet ${declared.subnet}` });
      }
      if (key === "ipv4_address" && (c.svc.replicas ?? 1) > 1) {
        c.problems.push({ place: at, message: `${msg}${c.svc.replicas} replicas cannot share one ipv4_address`, hint: "drop ipv4_address (addresses are then allocated), or set replicas: 1" });
      }
      if (key === "ipv4_address") net.ipv4Address = ip;
      else net.gateway = ip;
    }
    networks.push(net);
  }
  return { userNetwork, networks };
}

/**
 * `./src:/src[:ro]`: a source starting with '.', '/' or '~' is a host
 * directory (resolved against the project file); any other source is a named
 * volume, which must be declared at the top level.
 */
export function volumesOf(c: ServiceContext): ServiceVolume[] {
  const out: ServiceVolume[] = [];
  for (const [i, entry] of (c.svc.volumes ?? []).entries()) {
    const place = c.at("volumes", i);
    const msg = `services.${c.name}.volumes: `;
    let m: { type: "bind" | "volume"; source: string; target: string; readOnly: boolean };
    if (typeof entry === "string") {
      const parts = entry.split(":");
      const mode = parts.length === 3 ? parts[2] : "rw";
      if (parts.length < 2 || parts.length > 3 || parts[0] === "" || (mode !== "ro" && mode !== "rw")) {
        c.problems.push({ place, message: `${msg}cannot read ${JSON.stringify(entry)}`, hint: "write SOURCE:TARGET[:ro] — ./dir:/guest/dir for a host directory, NAME:/guest/dir for a named volume" });
        continue;
      }
      const source = parts[0]!;
      m = { type: /^[./~]/.test(source) ? "bind" : "volume", source, target: parts[1]!, readOnly: mode === "ro" };
    } else {
      m = { type: entry.type, source: entry.source, target: entry.target, readOnly: entry.read_only ?? false };
    }
    if (!m.target.startsWith("/")) {
      c.problems.push({ place, message: `${msg}the target ${JSON.stringify(m.target)} must be an absolute path in the guest` });
      continue;
    }
    if (m.type === "bind") {
      out.push(placed({ kind: "bind", source: hostPath(c.dir, m.source, c.env), target: m.target, readOnly: m.readOnly }, place));
    } else if (!c.volumes.has(m.source)) {
      c.problems.push({ place, message: `${msg}volume ${JSON.stringify(m.source)} is not declared`, hint: "declare it under the top-level volumes: key, or start a host path with ./ or /" });
    } else {
      out.push(placed({ kind: "volume", volume: m.source, target: m.target, readOnly: m.readOnly }, place));
    }
  }
  return out;
}

/** Shorter than compose's 30 s: `up` waits on the first passing check of a health-gated dependency. */
const healthDefaults = { intervalMs: 10_000, timeoutMs: 10_000, retries: 3, startPeriodMs: 0 };

export function healthcheckOf(c: ServiceContext): HealthCheck | undefined {
  const h = c.svc.healthcheck;
  if (h === undefined) return undefined;
  let test: string[];
  if (typeof h.test === "string") test = ["sh", "-c", h.test];
  else if (h.test[0] === "NONE") return undefined;
  else if (h.test[0] === "CMD" && h.test.length > 1) test = h.test.slice(1);
  else if (h.test[0] === "CMD-SHELL" && h.test.length === 2) test = ["sh", "-c", h.test[1]!];
  else {
    c.problems.push({ place: c.at("healthcheck", "test"), message: `services.${c.name}.healthcheck.test: a list starts with "CMD" (then the argv) or "CMD-SHELL" (then one command line)`, hint: 'e.g. ["CMD", "redis-cli", "ping"] or ["CMD-SHELL", "curl -f localhost"]' });
    return undefined;
  }
  const ms = (v: string | number | undefined, dflt: number) => (v === undefined ? dflt : parseDuration(String(v)));
  return {
    test,
    intervalMs: ms(h.interval, healthDefaults.intervalMs),
    timeoutMs: ms(h.timeout, healthDefaults.timeoutMs),
    retries: h.retries ?? healthDefaults.retries,
    startPeriodMs: ms(h.start_period, healthDefaults.startPeriodMs),
  };
}

export function provisionOf(c: ServiceContext): ProvisionStep[] {
  return (c.svc.provision ?? []).map((step, i): ProvisionStep => {
    const place = c.at("provision", i);
    const shell = shellOf(step);
    if (shell !== undefined) {
      // The schema made sure exactly one of inline and script is there.
      return shell.script !== undefined ? { kind: "shell", script: hostPath(c.dir, shell.script, c.env), place } : { kind: "shell", inline: shell.inline ?? "", place };
    }
    const file = fileOf(step)!;
    return { kind: "file", source: hostPath(c.dir, file.source, c.env), destination: file.destination, place };
  });
}
