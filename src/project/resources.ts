/**
 * A project's networks and volumes: made when `up` needs them, labelled with
 * the project, removed by `down` (volumes only with `down -v`). A network of
 * the same name that is not the project's, or whose definition changed while
 * VMs still use it, is an error that says what to do, never silently reused.
 */
import { SkiffError } from "../pure.js";
import type { NetworkRecord, Skiff } from "../index.js";
import { labels, networkName, projectLabels, volumeName } from "./names.js";
import type { ProjectNetwork, ProjectSpec, ServiceSpec } from "./types.js";

/** Make the project networks `services` use; returns the names of those made now. */
export async function ensureNetworks(skiff: Skiff, project: ProjectSpec, services: readonly ServiceSpec[]): Promise<string[]> {
  const used = new Set(services.flatMap((s) => s.networks.map((n) => n.network)));
  const made: string[] = [];
  for (const net of project.networks.filter((n) => used.has(n.name))) {
    const name = networkName(project.name, net.name);
    const existing = await skiff.networks.find(name);
    if (existing !== undefined) {
      checkSame(project, net, existing);
      continue;
    }
    await skiff.networks.create({
      name,
      driver: net.driver,
      ...(net.subnet === undefined ? {} : { subnet: net.subnet }),
      ...(net.gateway === undefined ? {} : { gateway: net.gateway }),
      ...(net.driver === "bridge" ? { masquerade: net.masquerade, internal: net.internal } : {}),
      labels: projectLabels(project.name, { "skiff.network": net.name }),
    }).catch((err: unknown) => {
      if (err instanceof SkiffError && err.place !== undefined && err.place.startsWith("--")) {
        throw new SkiffError(err.code, `network ${net.name}: ${err.message}`, { place: net.place, ...(err.hint === undefined ? {} : { hint: err.hint }) });
      }
      throw err;
    });
    made.push(name);
  }
  return made;
}

function checkSame(project: ProjectSpec, net: ProjectNetwork, existing: NetworkRecord): void {
  const name = existing.name;
  if (existing.labels[labels.project] !== project.name) {
    throw new SkiffError("ERR_SKIFF_NETWORK_CONFLICT", `network ${name} exists and does not belong to project ${project.name}`, {
      place: net.place,
      hint: `remove it (\`skiff network rm ${name}\`) or give the project another name (-p)`,
    });
  }
  const changed =
    existing.driver !== net.driver ||
    (net.subnet !== undefined && existing.subnet !== net.subnet) ||
    (net.gateway !== undefined && existing.gateway !== net.gateway);
  if (changed) {
    throw new SkiffError("ERR_SKIFF_NETWORK_CONFLICT", `network ${net.name} changed (now ${existing.driver} ${existing.subnet}), and skiff does not change a network under running VMs`, {
      place: net.place,
      hint: "run `skiff down`, then `skiff up` to make it again",
    });
  }
}

/** Remove the project's networks no VM uses any more; returns their names. */
export async function removeProjectNetworks(skiff: Skiff, project: string): Promise<string[]> {
  const removed: string[] = [];
  for (const net of await skiff.networks.records()) {
    if (net.labels[labels.project] !== project) continue;
    await skiff.networks.remove(net.name);
    removed.push(net.name);
  }
  return removed;
}

/** Make the project volumes `services` mount; returns the names of those made now. */
export async function ensureVolumes(skiff: Skiff, project: ProjectSpec, services: readonly ServiceSpec[]): Promise<string[]> {
  const used = new Set(services.flatMap((s) => s.volumes.flatMap((v) => (v.kind === "volume" ? [v.volume] : []))));
  const existing = new Set((await skiff.listVolumes()).map((v) => v.name));
  const made: string[] = [];
  for (const vol of project.volumes.filter((v) => used.has(v.name))) {
    const name = volumeName(project.name, vol.name);
    if (existing.has(name)) continue;
    await skiff.createVolume({ name, sizeBytes: vol.sizeBytes, labels: projectLabels(project.name, { "skiff.volume": vol.name }) });
    made.push(name);
  }
  return made;
}

/** `down -v`: remove the project's volumes; returns their names. */
export async function removeProjectVolumes(skiff: Skiff, project: string): Promise<string[]> {
  const removed: string[] = [];
  for (const vol of await skiff.listVolumes()) {
    if (vol.labels[labels.project] !== project) continue;
    await skiff.removeVolume(vol.name);
    removed.push(vol.name);
  }
  return removed;
}
