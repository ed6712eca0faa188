/**
 * What a service's VM should be, pure: the engine's CreateOptions for one
 * replica, and the hash of everything that defines it. `up` compares the
 * hash with the one a running VM carries in its labels: equal means leave it
 * alone, different means recreate it. Healthchecks, depends_on and
 * provisioners are not in the hash: they change what `up` does, not what the
 * VM is (`skiff provision` re-runs provisioners).
 */
import { createHash } from "node:crypto";
import { restrictUserNetByDefault } from "../pure.js";
import type { CreateOptions } from "../index.js";
import type { ProjectNetwork, ProjectSpec, ServiceSpec } from "./types.js";
import { labels, networkName, projectLabels, vmName, volumeName } from "./names.js";

/** What `up` worked out before creating: the image to boot and its content digest. */
export interface ResolvedImage {
  /** What CreateOptions.image gets: the service's image, or the image its layers were built into. */
  ref: string;
  /** Content digest (or, for cloud images, the cached file's digest); part of the hash. */
  digest: string;
}

export interface DesiredVm {
  name: string;
  service: string;
  replica: number;
  options: CreateOptions;
  hash: string;
}

/** Bump when what the hash covers changes meaning: every VM is then recreated once. */
const hashVersion = 1;

export function desiredVm(project: ProjectSpec, service: ServiceSpec, replica: number, image: ResolvedImage): DesiredVm {
  const name = vmName(project.name, service.name, replica);
  const restrict = restrictUserNetByDefault();
  const networks = new Map(project.networks.map((n) => [n.name, n]));
  const defining = {
    hashVersion,
    image: image.digest,
    cloud: service.imageUrl !== undefined,
    kernel: service.kernel ?? null,
    kernelArgs: service.kernelArgs,
    memoryMiB: service.memoryMiB ?? null,
    cpus: service.cpus ?? null,
    diskBytes: service.diskBytes ?? null,
    hostname: hostnameOf(service, replica),
    environment: service.environment,
    command: service.command ?? null,
    entrypoint: service.entrypoint ?? null,
    user: service.user ?? null,
    workingDir: service.workingDir ?? null,
    userNetwork: service.userNetwork,
    networks: service.networks.map((n) => ({ ...n, definition: definitionOf(networks.get(n.network)) })),
    ports: service.ports,
    dns: service.dns,
    volumes: service.volumes,
    restart: service.restart,
    egress: service.egress === undefined ? null : { ...service.egress, place: null },
    cloudInit: service.cloudInit ?? null,
    ssh: service.ssh ?? null,
  };
  const hash = createHash("sha256").update(canonicalJson(defining)).digest("hex").slice(0, 16);
  const options: CreateOptions = {
    image: image.ref,
    name,
    hostname: hostnameOf(service, replica),
    ...(service.memoryMiB === undefined ? {} : { memoryMiB: service.memoryMiB }),
    ...(service.cpus === undefined ? {} : { cpus: service.cpus }),
    env: service.environment,
    ...(service.command === undefined ? {} : { command: service.command }),
    ...(service.entrypoint === undefined ? {} : { entrypoint: service.entrypoint }),
    ...(service.user === undefined ? {} : { user: service.user }),
    ...(service.workingDir === undefined ? {} : { workingDir: service.workingDir }),
    network: service.userNetwork ? { mode: "user", restrict, forwards: service.ports } : { mode: "none" },
    networks: service.networks.map((n) => ({
      network: networkName(project.name, n.network),
      ...(n.ipv4Address === undefined ? {} : { ip: n.ipv4Address }),
      ...(n.gateway === undefined ? {} : { gateway: n.gateway }),
      place: service.place,
    })),
    ...(service.dns.length === 0 ? {} : { dns: service.dns }),
    labels: projectLabels(project.name, {
      [labels.service]: service.name,
      [labels.replica]: String(replica),
      [labels.specHash]: hash,
      [labels.files]: project.files.join(","),
    }),
    mounts: service.volumes.map((v) =>
      v.kind === "bind"
        ? { kind: "bind" as const, source: v.source, target: v.target, readOnly: v.readOnly, place: service.place }
        : { kind: "volume" as const, volume: volumeName(project.name, v.volume), target: v.target, readOnly: v.readOnly, place: service.place },
    ),
    ...(service.kernel === undefined && service.kernelArgs.length === 0
      ? {}
      : { kernel: { ...(service.kernel === undefined ? {} : { path: service.kernel }), args: service.kernelArgs } }),
    // skiff's init runs the main command (the service's, else the image's) under the restart policy; a cloud image has its own init.
    ...(service.imageUrl === undefined ? { init: { restart: service.restart } } : {}),
    // The same policy for the VM itself, when its QEMU ends.
    ...(service.restart === "no" ? {} : { restart: service.restart }),
    ...(service.egress === undefined ? {} : { egress: service.egress }),
    ...(service.imageUrl === undefined ? {} : { imageUrl: service.imageUrl }),
    ...(service.diskBytes === undefined ? {} : { diskBytes: service.diskBytes }),
    ...(service.cloudInit?.userDataPath === undefined ? {} : { userDataPath: service.cloudInit.userDataPath }),
    ...(service.ssh?.user === undefined ? {} : { sshUser: service.ssh.user }),
  };
  return { name, service: service.name, replica, options, hash };
}

/** One replica answers to the service's name; several to `<service>-<n>`. */
export function hostnameOf(service: ServiceSpec, replica: number): string {
  return service.hostname ?? service.cloudInit?.hostname ?? (service.replicas > 1 ? `${service.name}-${replica}` : service.name);
}

function definitionOf(net: ProjectNetwork | undefined): unknown {
  if (net === undefined) return null;
  const { place: _place, ...rest } = net;
  return rest;
}

/** JSON with object keys sorted: equal data, equal text, whatever order the file had. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
