/**
 * Checks on a finished ProjectSpec, whatever format it came from: what `up`
 * would refuse later (names skiff's objects cannot have, too many mounts, a
 * single-file bind, a cloud VM on a named network, what skiff-init could
 * not take — too many NICs, a command too long —, an address outside its
 * subnet) and what would leave `up` waiting forever (a dependency cycle, a
 * dependency that is not started, `service_healthy` on a service without a
 * healthcheck). Each check is the engine's own function, run here on the
 * file's data, so `skiff config` and `up` cannot disagree; every problem is
 * reported together, at the place that wrote it.
 */
import { statSync } from "node:fs";
import { checkCloudRequest } from "../engine/create.js";
import { checkMainCommand } from "../guest/exec-request.js";
import { checkGuestInput } from "../guest/limits.js";
import { checkBindSource, checkMountRequests, type SourceKind } from "../engine/volumes.js";
import { checkGateway, checkNetworkGateway, checkRequestedAddress, parseSubnet } from "../network/ipam.js";
import { validateNetworkName } from "../network/store.js";
import { networkName, vmName, volumeName } from "../project/names.js";
import type { ProjectSpec, ServiceSpec } from "../project/types.js";
import { validateName } from "../util/names.js";
import { validateVolumeName } from "../volume/store.js";
import { findCycle } from "./depends.js";
import { itemPlace } from "./item-place.js";
import { attempt, problemsError, type ConfigProblem } from "./zod-error.js";

export function validateProject(spec: ProjectSpec): void {
  const problems: ConfigProblem[] = [];
  // The name as written, then what skiff makes of it (`<project>_<name>`, `<project>-<service>-<n>`), as `up` would check it.
  const named = (what: string, name: string, place: string, full: () => unknown) =>
    attempt(problems, place, `${what} ${name}: `, () => validateName(name, place, what)) !== undefined && attempt(problems, place, `${what} ${name}: `, full);
  for (const n of spec.networks) {
    named("network", n.name, n.place, () => validateNetworkName(networkName(spec.name, n.name), n.place));
    const { subnet, gateway } = n;
    if (subnet !== undefined && gateway !== undefined) attempt(problems, n.place, `network ${n.name}: `, () => checkNetworkGateway(gateway, parseSubnet(subnet), n.place));
  }
  for (const v of spec.volumes) named("volume", v.name, v.place, () => validateVolumeName(volumeName(spec.name, v.name), v.place));
  for (const s of spec.services) {
    // The last replica's VM name is the longest.
    named("service", s.name, s.place, () => validateName(vmName(spec.name, s.name, s.replicas), s.place));
    checkMounts(s, problems);
    checkAddresses(spec, s, problems);
    if (s.imageUrl !== undefined) checkCloud(spec, s, problems);
    else checkGuest(s, problems);
  }
  checkDependencies(spec.services, problems);
  if (problems.length > 0) throw problemsError(problems, spec.files[0] ?? spec.dir, "see docs/foreign-formats.md and docs/skiff-yml.md for what skiff runs");
}

function checkMounts(s: ServiceSpec, problems: ConfigProblem[]): void {
  const requests = s.volumes.map((v) => ({ ...v, place: itemPlace(v, s.place) }));
  if (attempt(problems, s.place, `service ${s.name}: `, () => checkMountRequests(requests)) === undefined) return;
  for (const m of requests) {
    // A missing directory is left to `up`: it may well be made before then.
    if (m.kind === "bind" && sourceKind(m.source) !== "missing") attempt(problems, m.place, `service ${s.name}: `, () => checkBindSource(m.source, m.place, sourceKind(m.source)));
  }
}

/** What create would refuse as more than skiff-init takes (src/guest/limits.ts), at the service's place. */
function checkGuest(s: ServiceSpec, problems: ConfigProblem[]): void {
  const prefix = `service ${s.name}: `;
  const networks = s.networks.map((n) => ({ place: itemPlace(n, s.place) }));
  attempt(problems, s.place, prefix, () => checkGuestInput({ env: s.environment, network: { mode: s.userNetwork ? "user" : "none" }, networks }));
  const argv = [...(s.entrypoint ?? []), ...(s.command ?? [])];
  attempt(problems, s.place, prefix, () =>
    checkMainCommand({ argv, ...(s.user === undefined ? {} : { user: s.user }), ...(s.workingDir === undefined ? {} : { cwd: s.workingDir }) }),
  );
}

function sourceKind(path: string): SourceKind {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    return st === undefined ? "missing" : st.isDirectory() ? "directory" : "other";
  } catch {
    // Not reachable now (a file on the way, no permission): `up` says why, if it still is not.
    return "missing";
  }
}

function checkAddresses(spec: ProjectSpec, s: ServiceSpec, problems: ConfigProblem[]): void {
  for (const a of s.networks) {
    const net = spec.networks.find((n) => n.name === a.network);
    if (net?.subnet === undefined) continue;
    const subnet = parseSubnet(net.subnet);
    const prefix = `service ${s.name}, network ${a.network}: `;
    if (a.ipv4Address !== undefined) {
      const ip = a.ipv4Address;
      attempt(problems, s.place, prefix, () => checkRequestedAddress({ ip, subnet, taken: new Map(), ...(net.gateway === undefined ? {} : { gateway: net.gateway }), network: a.network, place: s.place }));
    }
    if (a.gateway !== undefined) attempt(problems, s.place, prefix, () => checkGateway(a.gateway!, subnet, a.network, s.place));
  }
}

function checkCloud(spec: ProjectSpec, s: ServiceSpec, problems: ConfigProblem[]): void {
  const first = s.networks[0];
  // A named network is refused where it was written (VMFile: the network node).
  const place = first === undefined ? s.place : (spec.networks.find((n) => n.name === first.network)?.place ?? s.place);
  attempt(problems, first === undefined ? s.place : place, `service ${s.name}: `, () => checkCloudRequest({ mounts: s.volumes, kernel: s.kernel, networks: s.networks }));
}

/**
 * `up` starts a service once what it depends on is started (or healthy):
 * a dependency that is not started (a profile leaves it out), a healthy
 * condition nothing can meet, or a cycle would leave it waiting.
 */
function checkDependencies(services: readonly ServiceSpec[], problems: ConfigProblem[]): void {
  const byName = new Map(services.map((s) => [s.name, s]));
  for (const s of services) {
    for (const d of s.dependsOn) {
      const place = itemPlace(d, s.place);
      const dep = byName.get(d.service);
      if (dep === undefined) {
        problems.push({ place, message: `service ${s.name} depends on ${d.service}, which is not started with this project`, hint: `a service with profiles: runs only when one of them is active (COMPOSE_PROFILES); enable one, or remove this dependency` });
      } else if (d.condition === "service_healthy" && dep.healthcheck === undefined) {
        problems.push({ place, message: `service ${s.name} waits for ${d.service} to be healthy, but ${d.service} has no healthcheck`, hint: `give ${d.service} a healthcheck, or use condition: service_started` });
      }
    }
  }
  const cycle = findCycle(new Map(services.map((s) => [s.name, s.dependsOn.map((d) => d.service).filter((n) => byName.has(n))])));
  if (cycle !== undefined) {
    const s = byName.get(cycle[0]!)!;
    const d = s.dependsOn.find((x) => x.service === cycle[1]);
    problems.push({ place: d === undefined ? s.place : itemPlace(d, s.place), message: `services depend on each other in a cycle: ${cycle.join(" -> ")}`, hint: "remove one of these depends_on entries; services start in dependency order" });
  }
}
