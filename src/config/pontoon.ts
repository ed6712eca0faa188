/**
 * pontoon.yml (block65/pontoon) → ProjectSpec, read as pontoon documents it:
 * `version`, `defaults` (kernel, alpine, mcp), `networks` (subnet,
 * internal, link), `services` (memory, cpus, layers, networks with
 * ipv4_address / gateway / masquerade, kernel_args, mcp) and a top-level
 * `mcp`, kept as it is for skiff's MCP server. Pontoon's networks are host bridges with a TAP per VM, which
 * needs root; between the VMs of one project a skiff "private" network
 * (rootless) carries the same traffic, so that is what they become, and a
 * `link: true` network a skiff "link" network. Layers are skiff layers of
 * the same name (the project's layers/ first), built on skiff's `debian`
 * base, so a service has no image.
 */
import { z } from "zod/v4";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { McpSettings, ProjectNetwork, ProjectSpec, ServiceNetwork, ServiceSpec } from "../project/types.js";
import { parseIpv4, parseSubnet } from "../network/ipam.js";
import { parseCpus } from "../util/units.js";
import { isKernelName } from "../kernel/built.js";
import { hostPath, type LoaderContext } from "./context.js";
import { asConfigError, configFail, guestMemoryMiB, serviceBlanks, sizeToMiB, Warnings } from "./foreign.js";
import { deepMerge, mergeDocs } from "./merge.js";
import type { YamlDoc, YamlPath } from "./yaml-doc.js";
import { configError } from "./zod-error.js";
import { safeParseUserKeys } from "../util/user-keys.js";

const attachment = z.union([
  z.null(),
  z.strictObject({
    ipv4_address: z.string().optional(),
    gateway: z.string().optional(),
    masquerade: z.boolean().optional(),
  }),
]);

const json: z.ZodType<unknown> = z.lazy(() => z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(json), z.record(z.string(), json)]));
/** An `mcp` block (under defaults, or a service): a map, read by skiff's MCP server (src/mcp/policy.ts checks its keys). */
const mcpBlock = z.record(z.string(), json);

const pontoonService = z.strictObject({
  memory: z.union([z.string(), z.number()]).optional(),
  cpus: z.union([z.string(), z.number()]).optional(),
  layers: z.array(z.string()).optional(),
  networks: z.union([z.record(z.string(), attachment), z.array(z.string())]).optional(),
  kernel_args: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).optional(),
  mcp: mcpBlock.optional(),
});

const pontoonFile = z.strictObject({
  version: z.union([z.string(), z.number()]).optional(),
  defaults: z.strictObject({ kernel: z.string().optional(), alpine: z.union([z.string(), z.number()]).optional(), mcp: mcpBlock.optional() }).optional(),
  networks: z
    .record(z.string(), z.union([z.null(), z.strictObject({ subnet: z.string().optional(), internal: z.boolean().optional(), link: z.boolean().optional() })]))
    .optional(),
  services: z.record(z.string(), pontoonService),
  mcp: z.unknown().optional(),
});
type PontoonFile = z.infer<typeof pontoonFile>;

const hint = "see pontoon's README (pontoon.yml) and docs/foreign-formats.md for what skiff reads";

export function pontoonToProject(docs: YamlDoc[], ctx: LoaderContext): ProjectSpec {
  const doc = mergeDocs(docs);
  const parsed = safeParseUserKeys(pontoonFile, doc.value);
  if (!parsed.success) throw configError(parsed.error, doc.placeOf, doc.keyPlaceOf, doc.file, hint);
  const file = parsed.data;
  const warnings = new Warnings();
  if (file.defaults?.alpine !== undefined) {
    warnings.add("defaults.alpine", doc.keyPlaceOf(["defaults", "alpine"]), "skiff builds layers on its Debian base; layer packages are installed with apt");
  }
  const networks = Object.entries(file.networks ?? {}).map(([name, n]) => network(name, n, doc));
  const given = file.defaults?.kernel;
  const kernel = given === undefined ? undefined : isKernelName(given) ? given : hostPath(ctx.dir, given, ctx.env ?? process.env);
  const c = { doc, warnings, kernel, networks, dir: ctx.dir, mcp: file.defaults?.mcp };
  const services = Object.entries(file.services).map(([name, svc]) => service(name, svc, c));
  for (const net of networks.filter((n) => n.driver === "link")) {
    const users = services.filter((s) => s.networks.some((a) => a.network === net.name));
    if (users.length > 2) configFail(`link network ${net.name} joins ${users.length} services (${users.map((s) => s.name).join(", ")})`, net.place, "a link network connects exactly two VMs; use a network without link: true");
  }
  return {
    name: ctx.projectName,
    dir: ctx.dir,
    format: "pontoon",
    files: ctx.files,
    services,
    networks,
    volumes: [],
    layerPaths: [],
    warnings: warnings.list(),
    ...(file.mcp === undefined ? {} : { mcp: file.mcp }),
  };
}

function network(name: string, n: NonNullable<PontoonFile["networks"]>[string], doc: YamlDoc): ProjectNetwork {
  const net: ProjectNetwork = {
    name,
    driver: n?.link === true ? "link" : "private",
    masquerade: false,
    internal: n?.internal ?? false,
    place: doc.keyPlaceOf(["networks", name]),
  };
  if (n?.subnet !== undefined) {
    const place = doc.placeOf(["networks", name, "subnet"]);
    asConfigError(place, () => parseSubnet(n.subnet!, place));
    net.subnet = n.subnet;
  }
  return net;
}

interface ServiceContext {
  doc: YamlDoc;
  warnings: Warnings;
  kernel: string | undefined;
  networks: ProjectNetwork[];
  /** The project directory: its layers/ may hold a layer of any name. */
  dir: string;
  /** `defaults.mcp`, under each service's own. */
  mcp: McpSettings | undefined;
}

/**
 * Pontoon's standard layers that skiff's library has under another name and
 * with other software (squid listens on 3128, skiff's tinyproxy on 8888), so
 * a file naming them is refused with the name to write rather than silently
 * given a proxy on another port.
 */
const renamedLayers: Readonly<Record<string, string>> = Object.freeze(
  Object.assign(Object.create(null) as Record<string, string>, {
    squid: "http-proxy (tinyproxy on port 8888; pontoon's squid listens on 3128)",
    dante: "socks-proxy (a SOCKS5 proxy on port 1080)",
  }),
);

function layersOf(name: string, svc: z.infer<typeof pontoonService>, c: ServiceContext): string[] {
  const layers = svc.layers ?? [];
  layers.forEach((layer, i) => {
    const skiffs = renamedLayers[layer];
    if (skiffs === undefined || existsSync(join(c.dir, "layers", layer, "layer.yml"))) return;
    configFail(`layer ${layer} is pontoon's; skiff's library has no layer of that name`, c.doc.placeOf(["services", name, "layers", i]), `use skiff's ${skiffs}, or put a layer of your own in layers/${layer}/ (docs/layers.md)`);
  });
  return layers;
}

function service(name: string, svc: z.infer<typeof pontoonService>, c: ServiceContext): ServiceSpec {
  const at = (...rest: YamlPath) => c.doc.placeOf(["services", name, ...rest]);
  const memoryMiB = svc.memory === undefined ? undefined : guestMemoryMiB(sizeToMiB(svc.memory, at("memory"), "MiB"), "memory", at("memory"), c.warnings, name);
  const cpus = svc.cpus === undefined ? undefined : asConfigError(at("cpus"), () => parseCpus(String(svc.cpus), at("cpus")));
  const networks = attachments(name, svc, c);
  const mcp = c.mcp === undefined && svc.mcp === undefined ? undefined : (deepMerge(c.mcp ?? {}, svc.mcp ?? {}) as McpSettings);
  const internalOnly = networks.length > 0 && networks.every((a) => c.networks.find((n) => n.name === a.network)?.internal);
  return {
    name,
    ...serviceBlanks(),
    layers: layersOf(name, svc, c),
    ...(c.kernel === undefined ? {} : { kernel: c.kernel }),
    kernelArgs: Object.entries(svc.kernel_args ?? {}).map(([k, v]) => (v === null || v === true ? k : `${k}=${String(v)}`)),
    ...(memoryMiB === undefined ? {} : { memoryMiB }),
    ...(cpus === undefined ? {} : { cpus }),
    // Pontoon VMs have no NIC of their own to the outside: a VM with a
    // gateway goes out through its router, and one only on internal networks
    // does not go out. Every other VM keeps skiff's user-net NIC, standing in
    // for the host routing pontoon's bridges get.
    userNetwork: !internalOnly && !networks.some((a) => a.gateway !== undefined),
    networks,
    ...(mcp === undefined ? {} : { mcp }),
    place: c.doc.keyPlaceOf(["services", name]),
  };
}

function attachments(name: string, svc: z.infer<typeof pontoonService>, c: ServiceContext): ServiceNetwork[] {
  const list = svc.networks ?? {};
  const entries = Array.isArray(list) ? list.map((n) => [n, null] as const) : Object.entries(list);
  return entries.map(([network, opts], i) => {
    const place = Array.isArray(list) ? c.doc.placeOf(["services", name, "networks", i]) : c.doc.keyPlaceOf(["services", name, "networks", network]);
    if (!c.networks.some((n) => n.name === network)) configFail(`service ${name} is on network ${network}, which is not declared`, place, "declare it under the top-level networks: key");
    const address = (key: "ipv4_address" | "gateway"): string | undefined => {
      const v = opts?.[key];
      if (v !== undefined && parseIpv4(v) === undefined) configFail(`not an IPv4 address: ${v}`, c.doc.placeOf(["services", name, "networks", network, key]), "give an address such as 10.0.0.1");
      return v;
    };
    const ipv4Address = address("ipv4_address");
    const gateway = address("gateway");
    return {
      network,
      ...(ipv4Address === undefined ? {} : { ipv4Address }),
      ...(gateway === undefined ? {} : { gateway }),
      masquerade: opts?.masquerade ?? false,
    };
  });
}
