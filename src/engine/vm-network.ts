/**
 * A VM's named networks in the engine: addresses handed out at create (under
 * each network's lock, read from the VM records themselves), the host side
 * made ready at start (bridge up, TAP script, link sockets), and /etc/hosts
 * of running peers kept current as VMs come and go.
 */
import { mkdir, readFile, rm } from "node:fs/promises";
import { SkiffError } from "../errors.js";
import { ensureBridge } from "../network/bridge.js";
import { guestNetwork, hostNameservers, renderHosts, type GuestNetwork, type Peer } from "../network/guest.js";
import { allocateAddress, checkGateway, checkRequestedAddress, parseSubnet } from "../network/ipam.js";
import { attachmentMac, nicPlans, type NicPlan } from "../network/nics.js";
import { NetworkStore, networkLockName } from "../network/store.js";
import type { NetworkAttachment, NetworkRecord } from "../network/types.js";
import type { AgentConnection } from "../guest/agent.js";
import { guestText } from "../guest/guest-text.js";
import type { MachineSpec } from "../spec/machine.js";
import { withLock } from "../store/lock.js";
import type { VmRecord } from "../store/store.js";
import { progress, type EngineContext } from "./context.js";
import { observeStatus } from "./status.js";

/** `--network NAME` (with `--ip`), or `--network name=NAME,ip=ADDR`. */
export interface NetworkRequest {
  network: string;
  ip?: string;
  /** The VM's default route goes through this address on the network (a router VM in a project). */
  gateway?: string;
  /** Where it was asked for, for errors (a flag, a file's place; default `networks[i]`). */
  place?: string;
}

export function networkStore(ctx: Pick<EngineContext, "home">): NetworkStore {
  return new NetworkStore(ctx.home);
}

/** Run `fn` holding the address lock of every network in `requests` (in name order: no deadlock). */
export async function withNetworkLocks<T>(ctx: EngineContext, requests: readonly NetworkRequest[], fn: () => Promise<T>): Promise<T> {
  const names = [...new Set(requests.map((r) => r.network))].sort();
  const step = (i: number): Promise<T> =>
    i === names.length
      ? fn()
      : withLock(networkLockName(names[i]!), () => step(i + 1), { home: ctx.home, purpose: `allocate an address on ${names[i]}`, timeoutMs: 60_000 });
  return step(0);
}

/**
 * Addresses for a new VM named `vmName`; call holding withNetworkLocks.
 * Every VM record (complete or being created) holds its addresses.
 */
export async function allocateAttachments(ctx: EngineContext, vmName: string, requests: readonly NetworkRequest[]): Promise<NetworkAttachment[]> {
  const seen = new Set<string>();
  const out: NetworkAttachment[] = [];
  const vms = await ctx.store.list({ includeIncomplete: true });
  for (const [i, req] of requests.entries()) {
    const place = req.place ?? `networks[${i}]`;
    const net = await networkStore(ctx).get(req.network, place);
    if (seen.has(net.name)) {
      throw new SkiffError("ERR_SKIFF_USAGE", `network ${net.name} is given twice`, { place, hint: "give each network once" });
    }
    seen.add(net.name);
    const members = vms.flatMap((vm) => (vm.config.spec.networks ?? []).filter((a) => a.network === net.name).map((a) => ({ vm, a })));
    const taken = new Map(members.map(({ vm, a }) => [a.ip, vm.name] as const));
    let slot: number | undefined;
    if (net.driver === "link") {
      const used = new Set(members.map(({ a }) => a.slot));
      slot = [0, 1].find((s) => !used.has(s));
      if (slot === undefined) {
        throw new SkiffError("ERR_SKIFF_NETWORK_CONFLICT", `link network ${net.name} already joins two VMs (${members.map(({ vm }) => vm.name).join(", ")})`, {
          place,
          hint: "a link joins exactly two VMs; use a private or bridge network for more",
        });
      }
    }
    const subnet = parseSubnet(net.subnet, `network ${net.name}`);
    const ip =
      req.ip === undefined
        ? allocateAddress({ subnet, taken, network: net.name, reserveFirst: net.driver !== "link" || net.gateway !== undefined })
        : checkRequestedAddress({
            subnet,
            ip: req.ip,
            taken,
            network: net.name,
            place: req.place ?? `networks[${i}].ip`,
            // A private network's gateway is a VM's address (a router), which that VM may claim as its own.
            ...(net.driver === "bridge" && net.gateway !== undefined ? { gateway: net.gateway } : {}),
          });
    out.push({
      network: net.name,
      driver: net.driver,
      ip,
      prefix: subnet.prefix,
      mac: attachmentMac(vmName, net.name),
      ...(slot === undefined ? {} : { slot }),
      ...(req.gateway === undefined ? {} : { gateway: checkGateway(req.gateway, subnet, net.name, place) }),
    });
  }
  return out;
}

/** What a VM's QEMU and its init need to be on its networks; makes the host side ready. */
export async function prepareVmNetworking(ctx: EngineContext, record: VmRecord): Promise<{ nics: NicPlan[]; guest: GuestNetwork }> {
  const spec = record.config.spec;
  const store = networkStore(ctx);
  const networks = new Map<string, NetworkRecord>();
  for (const a of spec.networks ?? []) {
    const net = await store.find(a.network);
    if (net === undefined) {
      throw new SkiffError("ERR_SKIFF_NETWORK_NOT_FOUND", `${record.name} is on network ${a.network}, which no longer exists`, {
        place: record.name,
        hint: `create it again (\`skiff network create ${a.network} …\`) or remove the VM`,
      });
    }
    networks.set(net.name, net);
  }
  const nics = nicPlans({
    vmId: record.id,
    attachments: spec.networks ?? [],
    networks,
    runDir: (name) => store.runDir(name),
  });
  for (const [i, a] of (spec.networks ?? []).entries()) {
    const b = nics[i]!.backend;
    if (b.kind === "unix-dgram") {
      // This end is this VM's alone (its slot); a socket left by a QEMU that died would make bind fail.
      await mkdir(store.runDir(a.network), { recursive: true, mode: 0o700 });
      await rm(b.localPath, { force: true });
    }
  }
  const bridges = [...networks.values()].filter((net) => net.driver === "bridge");
  if (bridges.length > 0) {
    // Under the networks lock: ensureBridge must not race a create, rm or sweep of the same bridge.
    await store.locked(`bring up the bridges of ${record.name}`, async () => {
      for (const net of bridges) await ensureBridge(net, { home: ctx.home, runner: ctx.runner });
    });
  }
  const peers = await peersOf(ctx, record);
  const guest = guestNetwork({ spec, networks, peers, hostDns: await hostResolvers() });
  return { nics, guest };
}

/** The host's nameservers (what user networking's 10.0.2.3 forwards to). */
export async function hostResolvers(): Promise<string[]> {
  for (const file of ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"]) {
    const found = hostNameservers(await readFile(file, "utf8").catch(() => ""));
    if (found.length > 0) return found;
  }
  return [];
}

function peerOf(vm: VmRecord): Peer {
  const spec = vm.config.spec;
  return { name: vm.name, hostname: spec.hostname, addresses: new Map((spec.networks ?? []).map((a) => [a.network, a.ip])) };
}

async function peersOf(ctx: EngineContext, record: VmRecord): Promise<Peer[]> {
  return (await ctx.store.list()).filter((vm) => vm.id !== record.id).map(peerOf);
}

function sharesNetwork(a: MachineSpec, b: MachineSpec): boolean {
  const mine = new Set((a.networks ?? []).map((n) => n.network));
  return (b.networks ?? []).some((n) => mine.has(n.network));
}

/**
 * Rewrite /etc/hosts in every running VM that shares a network with
 * `changed` (just created, or just removed), `changed` itself too when
 * `includeChanged` (a fork's clones, restored side by side, each told
 * hosts without the siblings made after it). Best effort: a peer that does
 * not answer gets the right file at its next boot; returns those that
 * could not be updated, with why.
 */
export async function refreshPeerHosts(
  ctx: EngineContext,
  changed: MachineSpec,
  connect: (vm: VmRecord) => Promise<AgentConnection>,
  opts: { includeChanged?: boolean } = {},
): Promise<StaleHosts[]> {
  if ((changed.networks ?? []).length === 0) return [];
  const all = await ctx.store.list();
  const failed: StaleHosts[] = [];
  await Promise.all(
    all
      .filter((vm) => (opts.includeChanged === true || vm.name !== changed.name) && vm.config.spec.boot?.kind !== "cloud" && sharesNetwork(vm.config.spec, changed))
      .map(async (vm) => {
        const status = await observeStatus(vm, await ctx.store.readState(vm.id));
        if (status.state !== "running") return;
        const hosts = renderHosts(vm.config.spec, all.filter((o) => o.id !== vm.id).map(peerOf));
        const why = await writeHosts(vm, hosts, connect);
        if (why !== undefined) failed.push({ name: vm.name, why });
      }),
  );
  return failed;
}

/** A VM whose /etc/hosts could not be rewritten, and why (for the warning). */
export interface StaleHosts {
  name: string;
  why: string;
}

/** refreshPeerHosts, as a warning for each peer it could not update (it is right after that peer's next start). */
export async function refreshPeersOrWarn(
  ctx: EngineContext,
  changed: MachineSpec,
  connect: (name: string) => Promise<AgentConnection>,
  t0: number,
  opts: { includeChanged?: boolean } = {},
): Promise<void> {
  const stale = await refreshPeerHosts(ctx, changed, (vm) => connect(vm.name), opts);
  for (const { name, why } of stale) warnStaleHosts(ctx, name, why, t0);
}

export function warnStaleHosts(ctx: EngineContext, name: string, why: string, t0: number): void {
  progress(ctx, name, "warning", `could not update /etc/hosts in ${name} (${why}); it will be right after its next start`, t0);
}

/**
 * Replace the VM's /etc/hosts (never edited in place: a reader never sees
 * half a file); why not, when it could not. The temporary file is the shell's
 * own ($$): peers restored side by side (`fork -n 3`) write one VM's hosts
 * at once, and with one shared name the first `mv` took the file from
 * under the others, which then failed.
 */
async function writeHosts(vm: VmRecord, hosts: string, connect: (vm: VmRecord) => Promise<AgentConnection>): Promise<string | undefined> {
  try {
    const conn = await connect(vm);
    try {
      const script = 't=/etc/.hosts.skiff.$$; cat > "$t" && mv "$t" /etc/hosts || { rm -f "$t"; exit 1; }';
      const r = await conn.run(["/dev/.skiff/bin/busybox", "sh", "-c", script], { input: hosts, timeoutMs: 10_000 });
      return r.code === 0 ? undefined : `the write ended with ${r.code}: ${guestText(r.stderr.trim())}`;
    } finally {
      await conn.close();
    }
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * A VM that just booted or resumed was given /etc/hosts when its start
 * began; a peer created meanwhile (`up` starts services in parallel, `fork`
 * restores clones side by side) found it not yet running and could not tell
 * it, or told it before its own resume's identity, with the older hosts,
 * overwrote that. Bring it up to date; why not, when that failed.
 */
export async function syncOwnHosts(
  ctx: EngineContext,
  record: VmRecord,
  given: string,
  connect: (vm: VmRecord) => Promise<AgentConnection>,
): Promise<string | undefined> {
  if ((record.config.spec.networks ?? []).length === 0 || record.config.spec.boot?.kind === "cloud") return undefined;
  const hosts = await hostsFor(ctx, record);
  return hosts === given ? undefined : writeHosts(record, hosts, connect);
}

/** The VM's /etc/hosts as it should be now: its own names and its peers' on the networks it shares. */
export async function hostsFor(ctx: EngineContext, record: VmRecord): Promise<string> {
  return renderHosts(record.config.spec, await peersOf(ctx, record));
}

