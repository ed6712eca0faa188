/**
 * One skiff.yml service (defaults already applied, schema already passed) →
 * ServiceSpec. Problems are collected, not thrown, so one run reports every
 * bad value; the caller throws them together. Mounts, networks, steps and
 * healthcheck live in skiff-parts.ts.
 */
import { parseDiskSize } from "../util/units.js";
import { parsePublish } from "../network/ports.js";
import { parseCpus, parseEnv, parseMemory } from "../util/units.js";
import type { ServiceSpec } from "../project/types.js";
import type { ServiceInput } from "./schema.js";
import { splitShellWords } from "./shell-words.js";
import { attempt } from "./zod-error.js";
import { isKernelName } from "../kernel/built.js";
import { hostPath } from "./context.js";
import { healthcheckOf, networksOf, provisionOf, volumesOf, type ServiceContext } from "./skiff-parts.js";
import { setKey } from "../util/user-keys.js";

const defaultBase = "debian";
const layerName = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const hostnamePattern = /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

export function serviceFrom(c: ServiceContext, place: string): ServiceSpec {
  const { svc, problems } = c;
  const p = (key: string) => `services.${c.name}.${key}: `;
  const { userNetwork, networks } = networksOf(c);
  const spec: ServiceSpec = {
    name: c.name,
    layers: svc.layers ?? [],
    kernelArgs: kernelArgsOf(svc.kernel_args),
    environment: environmentOf(c),
    userNetwork,
    networks,
    ports: (svc.ports ?? []).flatMap((port, i) => attempt(problems, c.at("ports", i), p("ports"), () => parsePublish(String(port))) ?? []),
    dns: svc.dns === undefined ? [] : typeof svc.dns === "string" ? [svc.dns] : svc.dns,
    volumes: volumesOf(c),
    dependsOn: dependsOnOf(svc.depends_on),
    restart: svc.restart ?? "no",
    ...egressOf(svc, place),
    replicas: svc.replicas ?? 1,
    provision: provisionOf(c),
    ...(svc.mcp === undefined ? {} : { mcp: svc.mcp }),
    place,
  };
  imageOf(c, spec);
  for (const [i, layer] of spec.layers.entries()) {
    if (!layerName.test(layer)) problems.push({ place: c.at("layers", i), message: `${p("layers")}invalid layer name ${JSON.stringify(layer)}`, hint: "a layer is named by its directory: letters, digits, '_', '.', '-'" });
  }
  if (svc.kernel !== undefined) spec.kernel = isKernelName(svc.kernel) ? svc.kernel : hostPath(c.dir, svc.kernel, c.env);
  if (svc.memory !== undefined) spec.memoryMiB = parseMemory(String(svc.memory));
  if (svc.cpus !== undefined) spec.cpus = parseCpus(String(svc.cpus));
  if (svc.disk !== undefined) spec.diskBytes = parseDiskSize(svc.disk);
  if (svc.hostname !== undefined) {
    if (hostnamePattern.test(svc.hostname)) spec.hostname = svc.hostname;
    else problems.push({ place: c.at("hostname"), message: `${p("hostname")}invalid hostname ${JSON.stringify(svc.hostname)}`, hint: "letters, digits and '-', dot-separated labels of at most 63" });
  }
  const command = argvOf(c, "command");
  if (command !== undefined) spec.command = command;
  const entrypoint = argvOf(c, "entrypoint");
  if (entrypoint !== undefined) spec.entrypoint = entrypoint;
  if (svc.user !== undefined) spec.user = svc.user;
  if (svc.working_dir !== undefined) {
    if (svc.working_dir.startsWith("/")) spec.workingDir = svc.working_dir;
    else problems.push({ place: c.at("working_dir"), message: `${p("working_dir")}must be an absolute path in the guest, not ${JSON.stringify(svc.working_dir)}` });
  }
  const healthcheck = healthcheckOf(c);
  if (healthcheck !== undefined) spec.healthcheck = healthcheck;
  if (spec.ports.length > 0 && !spec.userNetwork) {
    problems.push({ place: c.at("ports"), message: `${p("ports")}ports are forwarded over user networking, which this service does not have`, hint: 'add "user" to its networks list' });
  }
  cloudOf(c, spec);
  return spec;
}

/** Exactly one image source: image, image-url, or layers (on `image`, else on the debian base). */
function imageOf(c: ServiceContext, spec: ServiceSpec): void {
  const { svc } = c;
  const msg = `services.${c.name}: `;
  if (svc["image-url"] !== undefined && svc.image_url !== undefined) {
    c.problems.push({ place: c.keyAt("image_url"), message: `${msg}image-url and image_url are the same key; give one` });
  }
  const imageUrl = svc["image-url"] ?? svc.image_url;
  const urlKey = svc["image-url"] !== undefined ? "image-url" : "image_url";
  if (imageUrl !== undefined && svc.image !== undefined) {
    c.problems.push({ place: c.keyAt(urlKey), message: `${msg}takes one image source, not both image and ${urlKey}`, hint: "image: an OCI image booted as a microVM; image-url: a cloud image with its own bootloader" });
  } else if (imageUrl !== undefined && spec.layers.length > 0) {
    c.problems.push({ place: c.keyAt("layers"), message: `${msg}layers build on an OCI base image, not on a cloud image (${urlKey})`, hint: "use provision steps to change a cloud image" });
  } else if (imageUrl === undefined && svc.image === undefined && spec.layers.length === 0) {
    c.problems.push({ place: c.keyAt(), message: `${msg}has no image`, hint: "give image (an OCI reference), image-url (a cloud image) or layers (built on the debian base)" });
  }
  if (imageUrl !== undefined) spec.imageUrl = imageUrl;
  else if (svc.image !== undefined || spec.layers.length > 0) spec.image = svc.image ?? defaultBase;
}

function cloudOf(c: ServiceContext, spec: ServiceSpec): void {
  const { svc } = c;
  // Only a service's own keys are refused on a microVM: `defaults` may carry them for the cloud services among many.
  for (const key of ["disk", "ssh", "cloud-init"]) {
    if (spec.imageUrl === undefined && c.own(key)) {
      c.problems.push({ place: c.keyAt(key), message: `services.${c.name}.${key}: applies to cloud images (image-url) only` });
    }
  }
  if (spec.imageUrl === undefined) {
    delete spec.diskBytes;
    return;
  }
  if (svc.ssh !== undefined) spec.ssh = svc.ssh.user === undefined ? {} : { user: svc.ssh.user };
  const ci = svc["cloud-init"];
  if (ci === undefined) return;
  const userData = ci["user-data"];
  spec.cloudInit = {
    // A block scalar (several lines) is the user-data itself; one line is a file.
    ...(userData === undefined ? {} : userData.includes("\n") ? { userData } : { userDataPath: hostPath(c.dir, userData, c.env) }),
    ...(ci.hostname === undefined ? {} : { hostname: ci.hostname }),
  };
}

function kernelArgsOf(args: ServiceInput["kernel_args"]): string[] {
  if (args === undefined) return [];
  if (Array.isArray(args)) return args;
  return Object.entries(args).map(([k, v]) => (v === null ? k : `${k}=${String(v)}`));
}

/** compose's rules: a list of K=V or K, or a map; K alone or a null value takes the host's value (left out if unset). */
function environmentOf(c: ServiceContext): Record<string, string> {
  const env = c.svc.environment;
  if (env === undefined) return {};
  const entries = Array.isArray(env) ? env.map((e, i) => ({ text: e, i })) : Object.entries(env).map(([k, v]) => ({ text: v === null ? k : `${k}=${String(v)}`, i: k }));
  const out: Record<string, string> = {};
  for (const { text, i } of entries) {
    const pair = attempt(c.problems, Array.isArray(env) ? c.at("environment", i) : c.keyAt("environment", i), `services.${c.name}.environment: `, () => parseEnv(text, c.env));
    if (pair !== undefined) setKey(out, pair[0], pair[1]);
  }
  return out;
}

function argvOf(c: ServiceContext, key: "command" | "entrypoint"): string[] | undefined {
  const value = c.svc[key];
  if (value === undefined || Array.isArray(value)) return value;
  const split = splitShellWords(value);
  if ("words" in split) return split.words;
  c.problems.push({ place: c.at(key), message: `services.${c.name}.${key}: ${JSON.stringify(value)} ${split.error}`, hint: "close the quote, or write the command as a list of words" });
  return undefined;
}

function dependsOnOf(deps: ServiceInput["depends_on"]): ServiceSpec["dependsOn"] {
  if (deps === undefined) return [];
  if (Array.isArray(deps)) return deps.map((service) => ({ service, condition: "service_started" }));
  return Object.entries(deps).map(([service, d]) => ({ service, condition: d?.condition ?? "service_started" }));
}

/** `egress:` and `host_loopback:` as the engine takes them (host names are resolved when the VM is made). */
function egressOf(svc: Pick<ServiceContext["svc"], "egress" | "host_loopback">, place: string): Pick<ServiceSpec, "egress"> {
  if (svc.egress === undefined && svc.host_loopback === undefined) return {};
  const policy = svc.egress === undefined ? "all" : typeof svc.egress === "string" ? svc.egress : "allow";
  const allow = typeof svc.egress === "object" ? svc.egress.allow : [];
  return { egress: { policy, allow, hostLoopback: svc.host_loopback ?? false, place } };
}
