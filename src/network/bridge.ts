/**
 * The host side of a `bridge` network: a Linux bridge holding the gateway
 * address, its nftables table (nft.ts) and, for masquerade, IPv4
 * forwarding (ip-forward.ts). Everything skiff makes carries this home's tag
 * (the bridge in its alias, the table in its name), so skiff only ever
 * changes or removes what it can prove is its own, and can find what a
 * crash left behind without a record of it.
 *
 * Every command goes through the Runner, so a test (or a caller) can run
 * skiff's view of the host inside a network namespace. Callers hold the
 * networks lock around ensure, remove and sweep.
 */
import { isSkiffError, SkiffError } from "../errors.js";
import type { Runner } from "../process/runner.js";
import { crashPoint } from "../util/crash-point.js";
import { bridgeAlias, checkNetworkId, homeTag, isPendingBridgeName, parseBridgeAlias, pendingBridgeName, validateIfName } from "./ifnames.js";
import { claimIpForward, releaseIpForward } from "./ip-forward.js";
import { firstHost, parseSubnet } from "./ipam.js";
import { applyNftTable, deleteNftTable, listNftTables, masqueradingSkiffTables, networkIdOfTable, nftFamily, nftTableName } from "./nft.js";
import type { NetworkRecord } from "./types.js";

export { bridgeAlias, defaultBridgeName, homeTag, validateIfName as validateBridgeName } from "./ifnames.js";
export { forwardDropChains } from "./nft.js";
export { tapName } from "./tap.js";

export interface BridgeHostOptions {
  home: string;
  runner: Runner;
}

/** What `ip -j -d addr show` says about one interface. */
export interface LinkState {
  name: string;
  alias: string | undefined;
  /** e.g. "bridge"; undefined for a plain device. */
  kind: string | undefined;
  /** Administratively up. */
  up: boolean;
  /** The kernel's operstate: a bridge with no port up is "DOWN" even when `up`. */
  operstate: string;
  /** "10.90.0.1/24", "fe80::1/64", … */
  addresses: string[];
}

export interface BridgeStatus extends LinkState {
  /** The alias says this home's network `net.id` made it. */
  ours: boolean;
  /** This network's nft table is loaded. */
  firewall: boolean;
}

interface IpAddrJson {
  ifname: string;
  ifalias?: string;
  flags?: string[];
  operstate?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: { local?: string; prefixlen?: number }[];
}

function toLinkState(entry: IpAddrJson): LinkState {
  return {
    name: entry.ifname,
    alias: entry.ifalias || undefined,
    kind: entry.linkinfo?.info_kind,
    up: entry.flags?.includes("UP") ?? false,
    operstate: entry.operstate ?? "UNKNOWN",
    addresses: (entry.addr_info ?? []).flatMap((a) => (a.local === undefined ? [] : [`${a.local}/${a.prefixlen}`])),
  };
}

function needsRoot(what: string, cause?: unknown): SkiffError {
  return new SkiffError("ERR_SKIFF_NEEDS_ROOT", `${what} needs root (CAP_NET_ADMIN)`, {
    place: what,
    hint: "run skiff as root (sudo), or use a `private` network, which needs no root",
    ...(cause === undefined ? {} : { cause }),
  });
}

/** A permission failure of a host tool is a missing privilege, not a broken tool. */
function rootFailure(err: unknown, what: string): unknown {
  const denied = isSkiffError(err) && err.code === "ERR_SKIFF_TOOL_FAILED" && /Operation not permitted/.test(String(err.details?.stderr));
  return denied ? needsRoot(what, err) : err;
}

async function ip(runner: Runner, args: readonly string[]): Promise<void> {
  await runner.run("ip", args, { check: true, debianPackage: "iproute2" });
}

function requireRoot(what: string): void {
  if (process.geteuid !== undefined && process.geteuid() !== 0) throw needsRoot(what);
}

/** The interface's state, or undefined when there is none of that name. */
export async function readLink(name: string, runner: Runner): Promise<LinkState | undefined> {
  const result = await runner.run("ip", ["-j", "-d", "addr", "show", "dev", name], { debianPackage: "iproute2" });
  if (result.code !== 0 && /does not exist/.test(result.stderr)) return undefined;
  if (result.code !== 0) {
    throw new SkiffError("ERR_SKIFF_TOOL_FAILED", `ip could not show interface ${name}: ${result.stderr.trim()}`, {
      details: { cmd: "ip", code: result.code, stderr: result.stderr.trim() },
    });
  }
  const entry = (JSON.parse(result.stdout) as IpAddrJson[])[0];
  return entry === undefined ? undefined : toLinkState(entry);
}

/** The bridge name and gateway CIDR of a bridge network, checked. */
export function bridgeFacts(net: NetworkRecord): { bridge: string; gatewayCidr: string } {
  if (net.driver !== "bridge" || net.bridge === undefined) {
    throw new SkiffError("ERR_SKIFF_INTERNAL", `network ${net.name} is not a bridge network with a bridge name`);
  }
  checkNetworkId(net.id, net.name);
  const subnet = parseSubnet(net.subnet, net.name);
  return { bridge: validateIfName(net.bridge), gatewayCidr: `${net.gateway ?? firstHost(subnet)}/${subnet.prefix}` };
}

/** Refuse an existing interface of the bridge's name that is not this network's bridge. */
export function checkBridgeOwner(net: NetworkRecord, tag: string, link: LinkState): void {
  const owner = parseBridgeAlias(link.alias);
  if (owner?.tag === tag && owner.networkId === net.id) return;
  const whose =
    owner === undefined
      ? "a host interface not made by skiff"
      : owner.tag === tag
        ? `the bridge of another network of this skiff home (id ${owner.networkId})`
        : "a bridge of another skiff home";
  throw new SkiffError("ERR_SKIFF_NETWORK_CONFLICT", `bridge name ${link.name} of network ${net.name} is taken by ${whose}`, {
    place: "bridgeName",
    hint: "choose another bridge name for the network",
    details: { bridge: link.name, alias: link.alias ?? null },
  });
}

/**
 * The `ip` commands (argv after `ip`) that bring the bridge from `current`
 * (undefined: no such interface) to what `net` wants; pure. Empty when it is
 * already there, which is what makes ensureBridge idempotent. A new bridge
 * is made under a name that carries the home's tag, tagged, and only then
 * renamed to its own (see pendingBridgeName): at every moment it is
 * provably this home's.
 */
export function bridgeIpCommands(net: NetworkRecord, opts: { homeTag: string; current: LinkState | undefined }): string[][] {
  const { bridge, gatewayCidr } = bridgeFacts(net);
  const commands: string[][] = [];
  if (opts.current === undefined) {
    const pending = pendingBridgeName(opts.homeTag, net.id);
    commands.push(["link", "add", "name", pending, "type", "bridge"]);
    commands.push(["link", "set", "dev", pending, "alias", bridgeAlias(opts.homeTag, net.id)]);
    if (pending !== bridge) commands.push(["link", "set", "dev", pending, "name", bridge]);
  }
  if (!opts.current?.addresses.includes(gatewayCidr)) commands.push(["addr", "add", gatewayCidr, "brd", "+", "dev", bridge]);
  if (!opts.current?.up) commands.push(["link", "set", "dev", bridge, "up"]);
  return commands;
}

/**
 * Make the host side of a bridge network exist: its nft table (replaced
 * with the current rules each time), the bridge with its alias, gateway
 * address and link up, and IPv4 forwarding for masquerade. Safe to repeat
 * (a second call changes nothing but swapping the table for an identical
 * one); if it fails after making the bridge, it takes everything away
 * again. Two calls for one network must not overlap: hold the networks lock.
 */
export async function ensureBridge(net: NetworkRecord, opts: BridgeHostOptions): Promise<void> {
  const { bridge } = bridgeFacts(net);
  const what = `bridge network ${net.name}`;
  requireRoot(what);
  const tag = homeTag(opts.home);
  const current = await readLink(bridge, opts.runner);
  if (current !== undefined) checkBridgeOwner(net, tag, current);
  let created = false;
  try {
    // The table first: with nft missing nothing is made, and no VM traffic crosses the bridge before its rules are in.
    await applyNftTable(net, { homeTag: tag, runner: opts.runner });
    crashPoint("bridge:table");
    // An earlier ensure of this network that was killed half-way may have left its pending bridge; under the lock it is debris.
    if (current === undefined) await deleteLink(pendingBridgeName(tag, net.id), opts.runner, what);
    for (const args of bridgeIpCommands(net, { homeTag: tag, current })) {
      await ip(opts.runner, args);
      if (args[0] === "link" && args[1] === "add") created = true;
      crashPoint(`bridge:${ipStep(args)}`);
    }
    if (net.masquerade && !net.internal) {
      await claimIpForward(opts);
      crashPoint("bridge:ip-forward");
    }
  } catch (err) {
    // Only what this call made is taken back: a bridge that was there may carry running VMs.
    if (created) await removeBridge(net, opts).catch(() => {});
    throw rootFailure(err, what);
  }
}

/** A short name for one of bridgeIpCommands' commands, for crash points: add, alias, name, addr, up. */
function ipStep(args: readonly string[]): string {
  return args[0] === "addr" ? "addr" : args[1] === "add" ? "add" : args[4]!;
}

/** nft's absence means skiff cannot have a table loaded by this host's tools: treat it as no tables. */
async function withoutNft<T>(fn: () => Promise<T>, fallback: T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isSkiffError(err) && err.code === "ERR_SKIFF_TOOL_MISSING") return fallback;
    throw err;
  }
}

async function releaseForwarding(opts: BridgeHostOptions): Promise<void> {
  await releaseIpForward({
    ...opts,
    stillNeeded: async () => (await withoutNft(() => masqueradingSkiffTables(opts.runner), [])).length > 0,
  });
}

async function deleteLink(name: string, runner: Runner, what: string): Promise<void> {
  try {
    await ip(runner, ["link", "del", "dev", name]);
  } catch (err) {
    // Gone in the meantime is what we wanted.
    if (!(isSkiffError(err) && /Cannot find device/.test(String(err.details?.stderr)))) throw rootFailure(err, what);
  }
}

/**
 * Take away the host side of a bridge network: its table, its bridge (only
 * if the alias says it is this network's), and IPv4 forwarding if this was
 * the last masquerade network on the host and skiff turned it on. Pieces
 * already gone are fine; every step is tried, and the first failure thrown.
 */
export async function removeBridge(net: NetworkRecord, opts: BridgeHostOptions): Promise<void> {
  const { bridge } = bridgeFacts(net);
  const what = `bridge network ${net.name}`;
  requireRoot(what);
  const tag = homeTag(opts.home);
  const failures: unknown[] = [];
  const step = (fn: () => Promise<unknown>) => fn().catch((err: unknown) => void failures.push(err));
  await step(() => withoutNft(() => deleteNftTable(nftTableName(tag, net.id), opts.runner), false));
  await step(async () => {
    const link = await readLink(bridge, opts.runner);
    const owner = parseBridgeAlias(link?.alias);
    if (link !== undefined && owner?.tag === tag && owner.networkId === net.id) await deleteLink(bridge, opts.runner, what);
  });
  // A create or ensure that failed (or was killed) before its rename; the name alone proves it is this home's.
  await step(() => deleteLink(pendingBridgeName(tag, net.id), opts.runner, what));
  await step(() => releaseForwarding(opts));
  if (failures.length > 0) throw failures[0];
}

/** This home's bridges and nft tables that belong to no network record. */
export interface HostOrphans {
  bridges: string[];
  tables: string[];
}

/**
 * Find this home's bridges and tables whose network has no record: tagged
 * ones of an id not in `liveNetworkIds`, and bridges still under their
 * pending name (a crash before the rename), unless tagged as a live
 * network's. Changes nothing, so it can look without the networks lock;
 * what it finds is only an orphan if it is still there under the lock (a
 * create in progress has made its bridge and not yet written its record).
 */
export async function findOrphanBridges(opts: BridgeHostOptions & { liveNetworkIds: ReadonlySet<string> }): Promise<HostOrphans> {
  const tag = homeTag(opts.home);
  const links = await opts.runner.run("ip", ["-j", "link", "show", "type", "bridge"], { check: true, debianPackage: "iproute2" });
  const bridges = (JSON.parse(links.stdout || "[]") as IpAddrJson[]).filter((entry) => {
    const owner = parseBridgeAlias(entry.ifalias);
    const live = owner?.tag === tag && opts.liveNetworkIds.has(owner.networkId);
    return !live && (owner?.tag === tag || isPendingBridgeName(tag, entry.ifname));
  });
  const tables = (await withoutNft(() => listNftTables(opts.runner), [])).filter((table) => {
    const id = networkIdOfTable(tag, table);
    return id !== undefined && !opts.liveNetworkIds.has(id);
  });
  return { bridges: bridges.map((b) => b.ifname), tables: tables.map((t) => t.name) };
}

/**
 * Remove this home's bridges and tables whose network has no record (see
 * findOrphanBridges), and put IPv4 forwarding back if no masquerade network
 * is left. Returns what it removed, as "bridge NAME" and "nft table inet
 * NAME". Call it holding the networks lock, with the ids of every network
 * record, or it takes away a network being created.
 */
export async function sweepOrphanBridges(opts: BridgeHostOptions & { liveNetworkIds: ReadonlySet<string> }): Promise<string[]> {
  const found = await findOrphanBridges(opts);
  const removed: string[] = [];
  for (const bridge of found.bridges) {
    await deleteLink(bridge, opts.runner, `orphan bridge ${bridge}`);
    removed.push(`bridge ${bridge}`);
  }
  for (const table of found.tables) {
    if (await deleteNftTable(table, opts.runner)) removed.push(`nft table ${nftFamily} ${table}`);
  }
  await releaseForwarding(opts);
  return removed;
}

export async function bridgeExists(net: NetworkRecord, opts: { runner: Runner }): Promise<boolean> {
  return (await readLink(bridgeFacts(net).bridge, opts.runner)) !== undefined;
}

/** For `network inspect`: the bridge as the host has it, or undefined when there is none. */
export async function bridgeStatus(net: NetworkRecord, opts: BridgeHostOptions): Promise<BridgeStatus | undefined> {
  const link = await readLink(bridgeFacts(net).bridge, opts.runner);
  if (link === undefined) return undefined;
  const tag = homeTag(opts.home);
  const owner = parseBridgeAlias(link.alias);
  const table = nftTableName(tag, net.id);
  const firewall = await withoutNft(async () => {
    const result = await opts.runner.run("nft", ["list", "table", nftFamily, table], { debianPackage: "nftables" });
    return result.code === 0;
  }, false);
  return { ...link, ours: owner?.tag === tag && owner.networkId === net.id, firewall };
}
