/**
 * The network verbs: create, ls, inspect, rm, up, down, and the sweep that
 * removes host-side debris (bridges, nft tables) a crash left behind.
 * Checks come first; a bridge is made before its record is written, so a
 * crash in between leaves a tagged orphan the next sweep removes.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { SkiffError } from "../errors.js";
import { bridgeStatus, ensureBridge, findOrphanBridges, forwardDropChains, removeBridge, sweepOrphanBridges, type BridgeStatus } from "../network/bridge.js";
import { defaultBridgeName, validateIfName } from "../network/ifnames.js";
import { checkNetworkGateway, firstHost, formatSubnet, parseSubnet, pickSubnet, subnetsOverlap, type Subnet } from "../network/ipam.js";
import { validateNetworkName } from "../network/store.js";
import { removeAbandonedTemps } from "../store/atomic.js";
import { tryLock } from "../store/lock.js";
import { isBrokenRecord } from "../store/record.js";
import type { NetworkDriver, NetworkRecord } from "../network/types.js";
import { networkDrivers } from "../network/types.js";
import { progress, warnBroken, type EngineContext } from "./context.js";
import { observeStatus, type RunState } from "./status.js";
import type { NetworkStore } from "../network/store.js";
import { networkStore } from "./vm-network.js";

export interface NetworkCreateOptions {
  name: string;
  driver?: NetworkDriver;
  subnet?: string;
  gateway?: string;
  masquerade?: boolean;
  internal?: boolean;
  /** bridge: the Linux bridge's name (default skb-NAME). */
  bridgeName?: string;
  labels?: Record<string, string>;
}

export interface NetworkMember {
  vm: string;
  ip: string;
  mac: string;
  state: RunState;
}

export interface NetworkInfo extends NetworkRecord {
  members: NetworkMember[];
  /** bridge networks: whether the bridge exists on the host, and its addresses. */
  host?: BridgeStatus;
}

function needsRoot(what: string): SkiffError {
  return new SkiffError("ERR_SKIFF_NEEDS_ROOT", `${what} needs root (CAP_NET_ADMIN)`, {
    place: "driver",
    hint: "run skiff as root, or use the private (rootless) or link driver",
  });
}

/** The multicast group and port of a private network: from its id, unique among this home's networks. */
function mcastFor(id: string, taken: readonly NetworkRecord[]): { group: string; port: number } {
  for (let salt = 0; ; salt++) {
    const h = createHash("sha256").update(`${id}/${salt}`).digest();
    // 239.255.0.0/16 is the organisation-local scope: never routed off a site, and here it never leaves loopback.
    const candidate = { group: `239.255.${h[0]!}.${Math.max(1, h[1]!)}`, port: 40000 + (h.readUInt16BE(2) % 20000) };
    if (!taken.some((n) => n.mcast?.group === candidate.group && n.mcast.port === candidate.port)) return candidate;
  }
}

/** The host's IPv4 routes to subnets (default routes and host routes left out), parsed. */
async function hostRoutes(ctx: EngineContext): Promise<{ dst: string; dev: string; subnet: Subnet }[]> {
  const r = await ctx.runner.run("ip", ["-j", "-4", "route", "show", "table", "all"], { debianPackage: "iproute2" });
  if (r.code !== 0) return [];
  let entries: { dst?: string; dev?: string }[];
  try {
    entries = JSON.parse(r.stdout) as { dst?: string; dev?: string }[];
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    if (e.dst === undefined || !e.dst.includes("/")) return [];
    try {
      return [{ dst: e.dst, dev: e.dev ?? "", subnet: parseSubnet(e.dst, "route") }];
    } catch {
      return []; // a /31, /32 or a route with host bits: not a subnet a network could collide with
    }
  });
}

export async function createNetwork(ctx: EngineContext, opts: NetworkCreateOptions): Promise<NetworkInfo> {
  const name = validateNetworkName(opts.name);
  const driver = opts.driver ?? "private";
  if (!networkDrivers.includes(driver)) {
    throw new SkiffError("ERR_SKIFF_USAGE", `unknown network driver: ${String(driver)}`, { place: "driver", hint: "use private, bridge or link" });
  }
  if (driver !== "bridge" && (opts.masquerade === true || opts.internal === true || opts.bridgeName !== undefined)) {
    throw new SkiffError("ERR_SKIFF_USAGE", "masquerade, internal and a bridge name are for the bridge driver", {
      place: opts.masquerade === true ? "masquerade" : opts.internal === true ? "internal" : "bridgeName",
      hint: "use the bridge driver (root), or leave them out",
    });
  }
  if (opts.masquerade === true && opts.internal === true) {
    throw new SkiffError("ERR_SKIFF_USAGE", "a network cannot be both internal and masqueraded", { place: "internal", hint: "choose one" });
  }
  if (driver === "bridge" && process.getuid?.() !== 0) throw needsRoot("a bridge network");
  const bridge = driver === "bridge" ? (opts.bridgeName === undefined ? defaultBridgeName(name) : validateIfName(opts.bridgeName)) : undefined;
  const store = networkStore(ctx);
  return store.locked(`create network ${name}`, async () => {
    const { records: existing, broken } = await store.scan();
    const brokenTaken = broken.find((n) => n.name === name);
    if (brokenTaken !== undefined) throw brokenTaken.error;
    if (existing.some((n) => n.name === name)) {
      throw new SkiffError("ERR_SKIFF_NETWORK_CONFLICT", `a network named "${name}" already exists`, {
        place: name,
        hint: `see \`skiff network inspect ${name}\`, or remove it with \`skiff network rm ${name}\``,
      });
    }
    const clashBridge = bridge === undefined ? undefined : existing.find((n) => n.bridge === bridge);
    if (clashBridge !== undefined) {
      throw new SkiffError("ERR_SKIFF_NETWORK_CONFLICT", `network ${clashBridge.name} already uses bridge ${bridge}`, {
        place: "bridgeName",
        hint: "give this network another bridge name",
      });
    }
    const used = existing.map((n) => ({ net: n, subnet: parseSubnet(n.subnet, `network ${n.name}`) }));
    let subnet: Subnet;
    if (opts.subnet === undefined) {
      // Stay clear of the host's own routes too, as Docker's default pools do.
      const routes = (await hostRoutes(ctx)).map((r) => r.subnet);
      subnet = pickSubnet([...used.map((u) => u.subnet), ...routes]);
    } else {
      subnet = parseSubnet(opts.subnet);
      const overlap = used.find((u) => subnetsOverlap(u.subnet, subnet));
      if (overlap !== undefined) {
        throw new SkiffError("ERR_SKIFF_NETWORK_CONFLICT", `subnet ${formatSubnet(subnet)} overlaps network ${overlap.net.name} (${overlap.net.subnet})`, {
          place: "subnet",
          hint: "choose a subnet that overlaps no other network's (`skiff network ls`)",
        });
      }
      if (driver === "bridge") {
        const route = (await hostRoutes(ctx)).find((r) => r.dev !== bridge && subnetsOverlap(r.subnet, subnet));
        if (route !== undefined) {
          throw new SkiffError("ERR_SKIFF_NETWORK_CONFLICT", `subnet ${formatSubnet(subnet)} overlaps the host's route ${route.dst} on ${route.dev}`, {
            place: "subnet",
            hint: "a bridge's subnet must be new to the host; choose another",
          });
        }
      }
    }
    let gateway: string | undefined;
    if (opts.gateway !== undefined) {
      gateway = checkNetworkGateway(opts.gateway, subnet, "gateway");
    } else if (driver === "bridge") {
      gateway = firstHost(subnet);
    }
    const id = randomBytes(6).toString("hex");
    const record: NetworkRecord = {
      schemaVersion: 1,
      name,
      id,
      driver,
      subnet: formatSubnet(subnet),
      ...(gateway === undefined ? {} : { gateway }),
      masquerade: opts.masquerade === true,
      internal: opts.internal === true,
      ...(bridge === undefined ? {} : { bridge }),
      ...(driver === "private" ? { mcast: mcastFor(id, existing) } : {}),
      labels: opts.labels ?? {},
      createdAt: new Date().toISOString(),
    };
    if (driver === "bridge") {
      // The sweep's sign that this home may have host objects: it is made before any of them (sweepNetworks).
      await store.ensureDir();
      // What a killed create left must not stand in the way of this one (`network create` runs no reconcile).
      if (broken.length === 0) await sweepOrphanBridges({ home: ctx.home, runner: ctx.runner, liveNetworkIds: new Set(existing.map((n) => n.id)) });
      try {
        await ensureBridge(record, { home: ctx.home, runner: ctx.runner });
      } catch (err) {
        await removeBridge(record, { home: ctx.home, runner: ctx.runner }).catch(() => undefined);
        throw err;
      }
    }
    await store.write(record);
    if (record.masquerade) {
      // An accept in skiff's table cannot overrule another table's drop on the same hook (Docker's FORWARD policy).
      for (const chain of await forwardDropChains(ctx.runner)) {
        progress(ctx, name, "warning", `the host's ${chain} chain drops forwarded traffic by default; allow ${record.subnet} there (e.g. Docker's DOCKER-USER) or VMs on ${name} cannot reach out`, Date.now());
      }
    }
    return describe(ctx, record);
  });
}

async function describe(ctx: EngineContext, net: NetworkRecord): Promise<NetworkInfo> {
  const members: NetworkMember[] = [];
  for (const vm of await ctx.store.list()) {
    for (const a of vm.config.spec.networks ?? []) {
      if (a.network !== net.name) continue;
      const status = await observeStatus(vm, await ctx.store.readState(vm.id));
      members.push({ vm: vm.name, ip: a.ip, mac: a.mac, state: status.state });
    }
  }
  const host = net.driver === "bridge" ? await bridgeStatus(net, { home: ctx.home, runner: ctx.runner }) : undefined;
  return { ...net, members, ...(host === undefined ? {} : { host }) };
}

/** Every sound network; each broken one (its record fails its check) is a warning. */
export async function listNetworks(ctx: EngineContext): Promise<NetworkInfo[]> {
  await sweepNetworks(ctx);
  const { records, broken } = await networkStore(ctx).scan();
  warnBroken(ctx, broken);
  return Promise.all(records.map((n) => describe(ctx, n)));
}

export async function inspectNetwork(ctx: EngineContext, name: string): Promise<NetworkInfo> {
  return describe(ctx, await networkStore(ctx).get(name));
}

/** Remove a network: refused while VMs are on it (their addresses and NICs are part of them). */
export async function removeNetwork(ctx: EngineContext, name: string): Promise<void> {
  const store = networkStore(ctx);
  await store.locked(`remove network ${name}`, async () => {
    // A broken record goes too; its bridge, if it has one, is an orphan the next sweep removes.
    const net = (await store.lookup(name)) ?? (await store.get(name));
    const users = (await ctx.store.list({ includeIncomplete: true })).filter((vm) => (vm.config.spec.networks ?? []).some((a) => a.network === name));
    if (users.length > 0) {
      throw new SkiffError("ERR_SKIFF_NETWORK_CONFLICT", `network ${name} is used by ${users.map((vm) => vm.name).join(", ")}`, {
        place: name,
        hint: `remove those VMs first (\`skiff rm -f ${users.map((vm) => vm.name).join(" ")}\`)`,
      });
    }
    if (!isBrokenRecord(net) && net.driver === "bridge") await removeBridge(net, { home: ctx.home, runner: ctx.runner });
    await store.remove(name);
  });
}

/** Make the host side of bridge networks (all, or those named) exist: after a reboot, or a `down`. */
export async function networksUp(ctx: EngineContext, names: readonly string[] = []): Promise<NetworkRecord[]> {
  return networkStore(ctx).locked("bring bridges up", async () => {
    const nets = await selected(ctx, names);
    for (const net of nets) if (net.driver === "bridge") await ensureBridge(net, { home: ctx.home, runner: ctx.runner });
    return nets;
  });
}

/** Take the host side of bridge networks away (records stay); refused while a running VM uses one. */
export async function networksDown(ctx: EngineContext, names: readonly string[] = []): Promise<NetworkRecord[]> {
  return networkStore(ctx).locked("take bridges down", () => bridgesDown(ctx, names));
}

async function bridgesDown(ctx: EngineContext, names: readonly string[]): Promise<NetworkRecord[]> {
  const nets = await selected(ctx, names);
  for (const net of nets) {
    if (net.driver !== "bridge") continue;
    const running = (await describe(ctx, net)).members.filter((m) => m.state === "running");
    if (running.length > 0) {
      throw new SkiffError("ERR_SKIFF_NETWORK_CONFLICT", `network ${net.name} has running VMs: ${running.map((m) => m.vm).join(", ")}`, {
        place: net.name,
        hint: `stop them first (\`skiff stop ${running.map((m) => m.vm).join(" ")}\`)`,
      });
    }
    await removeBridge(net, { home: ctx.home, runner: ctx.runner });
  }
  return nets;
}

async function selected(ctx: EngineContext, names: readonly string[]): Promise<NetworkRecord[]> {
  const store = networkStore(ctx);
  return names.length === 0 ? store.list() : Promise.all(names.map((n) => store.get(n)));
}

/**
 * What crashed network verbs left: bridges and nft tables of this home
 * whose network record is gone (a kill mid-create or mid-rm), and record
 * temp files whose writer died. Returns what it removed.
 *
 * Every command reconciles, so this must not make every command queue on
 * one lock: it looks first without the networks lock (two listings) and
 * takes the lock only when it finds something, and then only if it is free.
 * Whoever holds it is a create (whose bridge may be the very thing found:
 * made, its record not yet written), an rm or another sweep; waiting for it
 * would put every concurrent command in one line again, and gain nothing a
 * later command will not do. Under the lock it looks again before removing.
 */
export async function sweepNetworks(ctx: EngineContext): Promise<string[]> {
  const store = networkStore(ctx);
  // A create makes the directory before any host object, so a home without one has nothing on the host.
  if (!existsSync(store.dir)) return [];
  const removed = (await removeAbandonedTemps(store.dir)).map((path) => `file ${path}`);
  if (process.getuid?.() !== 0) return removed;
  const live = await liveNetworkIds(store);
  if (live === undefined) return removed;
  const seen = await findOrphanBridges({ home: ctx.home, runner: ctx.runner, liveNetworkIds: live });
  if (seen.bridges.length === 0 && seen.tables.length === 0) return removed;
  const lock = await tryLock("networks", { home: ctx.home, purpose: "sweep orphaned bridges" });
  if (lock === undefined) return removed;
  try {
    const now = await liveNetworkIds(store);
    if (now !== undefined) removed.push(...(await sweepOrphanBridges({ home: ctx.home, runner: ctx.runner, liveNetworkIds: now })));
  } finally {
    await lock.release();
  }
  return removed;
}

/** The ids of every network record; undefined while one is broken (its bridge cannot be told from an orphan). */
async function liveNetworkIds(store: NetworkStore): Promise<Set<string> | undefined> {
  const { records, broken } = await store.scan();
  return broken.length > 0 ? undefined : new Set(records.map((n) => n.id));
}
