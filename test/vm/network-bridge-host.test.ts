/**
 * The bridge driver's host side for real, inside network namespaces this
 * test makes and deletes: skiff's "host" is namespace R, reached through a
 * Runner that prefixes every command with `ip netns exec R`. A "guest"
 * namespace hangs on each bridge by a veth (put on the bridge as skiff-jail
 * puts a VM's TAP; the jailer's own attaching is exercised by the bridge VM
 * tests), and an "outside" namespace stands for the world
 * beyond R, which has no route back to the guests: only NAT answers them.
 * No packet leaves these namespaces.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bridgeAlias,
  bridgeStatus,
  ensureBridge,
  homeTag,
  removeBridge,
  sweepOrphanBridges,
} from "../../src/network/bridge.js";
import { ipForwardRecordPath } from "../../src/network/ip-forward.js";
import { nftTableName } from "../../src/network/nft.js";
import type { NetworkRecord } from "../../src/network/types.js";
import { ProcessRunner, type RunOptions, type RunResult, type Runner } from "../../src/process/runner.js";

const base = `skt-${randomBytes(3).toString("hex")}`;
const ns = { router: base, guest: `${base}-g`, guest2: `${base}-i`, outside: `${base}-o` };
const real = new ProcessRunner();

/** Runs everything in one namespace, and remembers what it ran. */
class NamespaceRunner implements Runner {
  calls: string[] = [];
  constructor(readonly name: string) {}
  run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    this.calls.push([cmd, ...args].join(" "));
    return real.run("ip", ["netns", "exec", this.name, cmd, ...args], opts);
  }
}

const runner = new NamespaceRunner(ns.router);

async function sh(netns: string, script: string): Promise<string> {
  return (await real.run("ip", ["netns", "exec", netns, "sh", "-ec", script], { check: true })).stdout;
}

async function json<T>(netns: string, script: string): Promise<T> {
  return JSON.parse(await sh(netns, script)) as T;
}

function net(id: string, overrides: Partial<NetworkRecord>): NetworkRecord {
  return {
    schemaVersion: 1,
    name: `n-${id}`,
    id,
    driver: "bridge",
    subnet: "10.90.3.0/24",
    gateway: "10.90.3.1",
    masquerade: false,
    internal: false,
    bridge: `skb-${id}`,
    labels: {},
    createdAt: new Date().toISOString(),
    ...overrides,
  };
}

const masq = net("aaaa01", { masquerade: true });
const internal = net("bbbb02", { internal: true, subnet: "10.90.4.0/24", gateway: "10.90.4.1" });

let home: string;
let tag: string;
let server: ChildProcess | undefined;

async function tables(): Promise<string[]> {
  const out = await json<{ nftables: { table?: { name: string } }[] }>(ns.router, "nft -j list tables");
  return out.nftables.flatMap((e) => (e.table ? [e.table.name] : []));
}

async function links(): Promise<{ ifname: string; ifalias?: string; flags: string[] }[]> {
  return json(ns.router, "ip -j link show");
}

async function ipForward(): Promise<string> {
  return (await sh(ns.router, "cat /proc/sys/net/ipv4/ip_forward")).trim();
}

/** From a guest namespace, what the outside server saw as our address, or the failure. */
async function reachOutside(netns: string): Promise<string> {
  const client = `
    const c = require("net").connect(8080, "192.0.2.2");
    let d = "";
    c.on("data", (x) => (d += x));
    c.on("end", () => { console.log(d); process.exit(0); });
    c.on("error", (e) => { console.log("ERR " + e.code); process.exit(0); });
    setTimeout(() => { console.log("TIMEOUT"); process.exit(0); }, 1500);`;
  return (await real.run("ip", ["netns", "exec", netns, process.execPath, "-e", client], { check: true })).stdout.trim();
}

/** A guest: a namespace whose eth0 is a veth, its other end named like a TAP and put on the bridge. */
async function plugGuest(netns: string, tap: string, bridge: string, address: string, gateway: string): Promise<RunResult> {
  await sh(ns.router, `ip link add ${tap} type veth peer name eth0 netns ${netns}`);
  await sh(netns, `ip link set lo up; ip link set eth0 up; ip addr add ${address} dev eth0; ip route add default via ${gateway}`);
  return real.run("ip", ["netns", "exec", ns.router, "ip", "link", "set", "dev", tap, "master", bridge, "up"]);
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "skiff-bridge-"));
  tag = homeTag(home);
  for (const name of Object.values(ns)) await real.run("ip", ["netns", "add", name], { check: true });
  await sh(ns.router, "ip link set lo up; sysctl -qw net.ipv4.ip_forward=0");
  // The world outside R: 192.0.2.0/24 between R and O, and O knows no way back to skiff's subnets.
  await sh(ns.router, `ip link add up0 type veth peer name up1 netns ${ns.outside}; ip addr add 192.0.2.1/24 dev up0; ip link set up0 up`);
  await sh(ns.outside, "ip link set lo up; ip addr add 192.0.2.2/24 dev up1; ip link set up1 up");
  const serve = `require("net").createServer((c) => c.end(c.remoteAddress)).listen(8080, "192.0.2.2", () => console.log("ready"));`;
  server = spawn("ip", ["netns", "exec", ns.outside, process.execPath, "-e", serve], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    server!.stdout!.once("data", () => resolve());
    server!.once("exit", (code) => reject(new Error(`test server exited with ${code}`)));
  });
});

afterAll(async () => {
  if (server?.pid !== undefined && server.exitCode === null) {
    const exited = new Promise((r) => server!.once("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  for (const name of Object.values(ns)) await real.run("ip", ["netns", "del", name]);
  if (home) await rm(home, { recursive: true, force: true });
});

describe("bridge networks on a real (namespaced) host", () => {
  it("masquerade: a tagged bridge with the gateway address, a NAT table, forwarding on", async () => {
    await ensureBridge(masq, { home, runner });
    const [link] = await json<{ ifalias: string; flags: string[]; linkinfo: { info_kind: string } }[]>(ns.router, "ip -j -d link show dev skb-aaaa01");
    expect(link).toMatchObject({ ifalias: bridgeAlias(tag, "aaaa01"), linkinfo: { info_kind: "bridge" } });
    expect(link!.flags).toContain("UP");
    const [addr] = await json<{ addr_info: { family: string; local: string; prefixlen: number }[] }[]>(ns.router, "ip -j addr show dev skb-aaaa01");
    expect(addr!.addr_info.filter((a) => a.family === "inet")).toMatchObject([{ local: "10.90.3.1", prefixlen: 24 }]);
    expect(await tables()).toEqual([nftTableName(tag, "aaaa01")]);
    const chains = await json<{ nftables: { chain?: { table: string; type: string; hook: string } }[] }>(ns.router, "nft -j list chains");
    expect(chains.nftables.flatMap((e) => (e.chain ? [`${e.chain.type}/${e.chain.hook}`] : [])).sort()).toEqual(["filter/forward", "nat/postrouting"]);
    expect(await ipForward()).toBe("1");
    expect(existsSync(ipForwardRecordPath(home))).toBe(true);
    expect(await bridgeStatus(masq, { home, runner })).toMatchObject({ ours: true, up: true, firewall: true, kind: "bridge" });
  });

  it("a second ensureBridge changes nothing", async () => {
    const before = { links: await links(), rules: await sh(ns.router, "nft list ruleset") };
    runner.calls = [];
    await ensureBridge(masq, { home, runner });
    expect(runner.calls.filter((c) => /^ip (link|addr) (add|set|del)/.test(c) || c.startsWith("sysctl -q -w"))).toEqual([]);
    expect({ links: await links(), rules: await sh(ns.router, "nft list ruleset") }).toEqual(before);
  });

  it("a guest on it reaches the outside through NAT", async () => {
    expect(await plugGuest(ns.guest, "sk0000000000010", "skb-aaaa01", "10.90.3.5/24", "10.90.3.1")).toMatchObject({ code: 0 });
    const [port] = await json<{ master?: string; flags: string[] }[]>(ns.router, "ip -j link show dev sk0000000000010");
    expect(port).toMatchObject({ master: "skb-aaaa01" });
    expect(port!.flags).toContain("UP");
    // The outside has no route to 10.90.3.0/24: an answer means the guest's address was masqueraded to R's.
    expect(await reachOutside(ns.guest)).toBe("192.0.2.1");
  });

  it("internal: a drop table and no NAT; its guest reaches nothing beyond the bridge", async () => {
    await ensureBridge(internal, { home, runner });
    expect((await tables()).sort()).toEqual([nftTableName(tag, "aaaa01"), nftTableName(tag, "bbbb02")].sort());
    const rules = await sh(ns.router, `nft list table inet ${nftTableName(tag, "bbbb02")}`);
    expect(rules).toContain('iifname "skb-bbbb02" oifname != "skb-bbbb02" drop');
    expect(rules).not.toContain("masquerade");
    expect(await plugGuest(ns.guest2, "sk0000000000020", "skb-bbbb02", "10.90.4.5/24", "10.90.4.1")).toMatchObject({ code: 0 });
    expect(await reachOutside(ns.guest2)).toBe("TIMEOUT");
    // And not into the masquerade network's guest either.
    const toPeer = `const c = require("net").connect(22, "10.90.3.5"); c.on("error", (e) => { console.log("ERR " + e.code); process.exit(0); }); c.on("connect", () => { console.log("OPEN"); process.exit(0); }); setTimeout(() => { console.log("TIMEOUT"); process.exit(0); }, 1500);`;
    const r = await real.run("ip", ["netns", "exec", ns.guest2, process.execPath, "-e", toPeer], { check: true });
    expect(r.stdout.trim()).toBe("TIMEOUT");
  });

  it("refuses a bridge name that a non-skiff interface has", async () => {
    await sh(ns.router, "ip link add name skt-clash type bridge");
    const clash = net("cccc03", { bridge: "skt-clash", subnet: "10.90.5.0/24", gateway: "10.90.5.1", masquerade: true });
    await expect(ensureBridge(clash, { home, runner })).rejects.toMatchObject({
      code: "ERR_SKIFF_NETWORK_CONFLICT",
      place: "bridgeName",
      hint: expect.stringContaining("another bridge name"),
    });
    await removeBridge(clash, { home, runner });
    expect((await links()).map((l) => l.ifname)).toContain("skt-clash");
    expect(await tables()).not.toContain(nftTableName(tag, "cccc03"));
  });

  it("removeBridge leaves nothing behind and gives forwarding back with the last masquerade network", async () => {
    await removeBridge(masq, { home, runner });
    expect((await links()).map((l) => l.ifname)).not.toContain("skb-aaaa01");
    expect(await tables()).toEqual([nftTableName(tag, "bbbb02")]);
    expect(await ipForward()).toBe("0");
    expect(existsSync(ipForwardRecordPath(home))).toBe(false);
    await removeBridge(internal, { home, runner });
    await removeBridge(internal, { home, runner });
    expect((await links()).map((l) => l.ifname).filter((n) => n.startsWith("skb-"))).toEqual([]);
    expect(await tables()).toEqual([]);
  });

  it("sweepOrphanBridges removes what a crash left, and nothing else", async () => {
    const kept = net("dddd04", { masquerade: true, subnet: "10.90.6.0/24", gateway: "10.90.6.1" });
    const orphan = net("eeee05", { masquerade: true, subnet: "10.90.7.0/24", gateway: "10.90.7.1" });
    await ensureBridge(kept, { home, runner });
    await ensureBridge(orphan, { home, runner });
    expect(await ipForward()).toBe("1");
    const removed = await sweepOrphanBridges({ home, runner, liveNetworkIds: new Set(["dddd04"]) });
    expect(removed).toEqual(["bridge skb-eeee05", `nft table inet ${nftTableName(tag, "eeee05")}`]);
    const names = (await links()).map((l) => l.ifname);
    expect(names).toContain("skb-dddd04");
    expect(names).toContain("skt-clash");
    expect(names).not.toContain("skb-eeee05");
    expect(await ipForward()).toBe("1");
    expect(await sweepOrphanBridges({ home, runner, liveNetworkIds: new Set() })).toEqual([
      "bridge skb-dddd04",
      `nft table inet ${nftTableName(tag, "dddd04")}`,
    ]);
    expect(await tables()).toEqual([]);
    expect(await ipForward()).toBe("0");
  });
});
