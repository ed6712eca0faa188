/**
 * docker-compose.yml / compose.yaml → ProjectSpec. Read as docker compose
 * reads it (`${VAR}` from the shell and `.env`, `x-*` extensions ignored,
 * profiles), each service a microVM. Compose's networks are bridges between
 * containers on one host; what that means for VMs of one project is a
 * private network between them, so every compose network becomes a skiff
 * "private" network (rootless, QEMU socket netdevs), whatever its `driver`.
 */
import { join } from "node:path";
import type { ProjectNetwork, ProjectSpec, ProjectVolume, ServiceSpec } from "../project/types.js";
import { parseSubnet } from "../network/ipam.js";
import { parseIpv4 } from "../network/ipam.js";
import type { LoaderContext } from "./context.js";
import { composeFile, type ComposeFile } from "./compose-schema.js";
import { composeService } from "./compose-service.js";
import { prepareDoc, projectEnv } from "./compose-docs.js";
import { resolveExtends } from "./compose-extends.js";
import { expandIncludes } from "./compose-include.js";
import { mergeComposeDocs } from "./compose-merge.js";
import { asConfigError, configFail, Warnings } from "./foreign.js";
import type { YamlDoc } from "./yaml-doc.js";
import { configError } from "./zod-error.js";
import { safeParseUserKeys } from "../util/user-keys.js";

const hint = "see the Compose Specification (https://compose-spec.io) and docs/foreign-formats.md for what skiff reads";
const defaultVolumeBytes = 1024 ** 3;

export function composeToProject(docs: YamlDoc[], ctx: LoaderContext): ProjectSpec {
  const warnings = new Warnings();
  const shell = ctx.env ?? process.env;
  // Variables: the shell (ctx.env) over the project's .env.
  const env = projectEnv(ctx.dir, shell);
  const reader = { shell, projectDir: ctx.dir, warnings };
  // Each file as compose-go reads it (extensions dropped, interpolated, extends and include applied), then merged.
  const prepared = docs.flatMap((d, i) => {
    const file = ctx.files[i] ?? join(ctx.dir, d.file);
    return expandIncludes(resolveExtends(prepareDoc(d, env, warnings), file, env, reader), file, reader);
  });
  const doc = mergeComposeDocs(prepared);
  const parsed = safeParseUserKeys(composeFile, doc.value);
  if (!parsed.success) throw configError(parsed.error, doc.placeOf, doc.keyPlaceOf, doc.file, hint);
  const file = parsed.data;
  for (const key of ["configs", "secrets", "models"] as const) {
    if (file[key] !== undefined) warnings.add(key, doc.keyPlaceOf([key]), "skiff has no such objects; share files with a bind mount or a provision step");
  }

  const active = new Set((env.COMPOSE_PROFILES ?? "").split(",").filter((p) => p !== ""));
  const allServices = Object.entries(file.services ?? {});
  const services = allServices.filter(([name, svc]) => {
    if (svc.profiles === undefined || svc.profiles.some((p) => active.has(p))) return true;
    warnings.add("profiles", doc.keyPlaceOf(["services", name, "profiles"]), "not in an active profile (COMPOSE_PROFILES), so not started", name);
    return false;
  });
  const needsDefault = services.some(([, svc]) => svc.networks === undefined && svc.network_mode === undefined);
  const networks = composeNetworks(file, doc, warnings, needsDefault);
  const volumes = composeVolumes(file, doc, warnings);
  const context = {
    doc,
    dir: ctx.dir,
    warnings,
    env,
    networks: new Set(networks.map((n) => n.name)),
    internalNetworks: new Set(networks.filter((n) => n.internal).map((n) => n.name)),
    volumes: new Set(volumes.map((v) => v.name)),
    services: new Set(allServices.map(([name]) => name)),
    defaultNetwork: "default",
  };
  const specs: ServiceSpec[] = services.map(([name, svc]) => composeService(name, svc, context));
  return {
    name: ctx.projectName,
    dir: ctx.dir,
    format: "compose",
    files: ctx.files,
    services: specs,
    networks,
    volumes,
    layerPaths: [],
    warnings: warnings.list(),
  };
}

function composeNetworks(file: ComposeFile, doc: YamlDoc, warnings: Warnings, needsDefault: boolean): ProjectNetwork[] {
  const declared = Object.entries(file.networks ?? {});
  if (needsDefault && !declared.some(([name]) => name === "default")) declared.push(["default", null]);
  return declared.map(([name, n]) => {
    const path = ["networks", name];
    const keyAt = (...rest: string[]) => doc.keyPlaceOf([...path, ...rest]);
    const net: ProjectNetwork = {
      name,
      driver: "private",
      masquerade: false,
      internal: n?.internal ?? false,
      place: file.networks?.[name] === undefined && name === "default" ? doc.keyPlaceOf(["services"]) : keyAt(),
    };
    if (n === null || n === undefined) return net;
    if (n.driver !== undefined && n.driver !== "bridge") warnings.add(`networks driver ${n.driver}`, keyAt("driver"), "compose networks are skiff private networks between the project's VMs");
    for (const key of ["driver_opts", "attachable", "enable_ipv4", "enable_ipv6", "external", "labels", "name"] as const) {
      if (n[key] !== undefined) warnings.add(`networks.${key}`, keyAt(key), "a skiff network is named <project>_<name> and made by skiff; no driver options");
    }
    const ipam = n.ipam;
    for (const key of ["driver", "options"] as const) if (ipam?.[key] !== undefined) warnings.add(`networks.ipam.${key}`, keyAt("ipam", key), "skiff allocates addresses itself");
    const config = ipam?.config ?? [];
    if (config.length > 1) warnings.add("networks.ipam.config (more than one)", keyAt("ipam", "config"), "a skiff network has one IPv4 subnet; the first is used");
    const first = config[0];
    for (const key of ["ip_range", "aux_addresses"] as const) if (first?.[key] !== undefined) warnings.add(`networks.ipam.config.${key}`, keyAt("ipam", "config", "0", key), "skiff allocates from the whole subnet");
    if (first?.subnet !== undefined) {
      const place = doc.placeOf([...path, "ipam", "config", 0, "subnet"]);
      asConfigError(place, () => parseSubnet(first.subnet!, place));
      net.subnet = first.subnet;
    }
    if (first?.gateway !== undefined) {
      if (parseIpv4(first.gateway) === undefined) configFail(`not an IPv4 address: ${first.gateway}`, doc.placeOf([...path, "ipam", "config", 0, "gateway"]));
      net.gateway = first.gateway;
    }
    return net;
  });
}

function composeVolumes(file: ComposeFile, doc: YamlDoc, warnings: Warnings): ProjectVolume[] {
  return Object.entries(file.volumes ?? {}).map(([name, v]) => {
    for (const key of ["driver", "driver_opts", "external", "labels", "name"] as const) {
      if (v?.[key] !== undefined) warnings.add(`volumes.${key}`, doc.keyPlaceOf(["volumes", name, key]), "a skiff volume is a disk named <project>_<name>, made by skiff");
    }
    return { name, sizeBytes: defaultVolumeBytes, place: doc.keyPlaceOf(["volumes", name]) };
  });
}
