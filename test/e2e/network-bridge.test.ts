/**
 * Bridge networks with real guests, all inside two network namespaces this
 * test makes: "host" (where skiff, QEMU, the bridges and the NAT rules live)
 * and "outside", joined by a veth pair and standing in for the world beyond
 * the host's default route. "outside" has no route back to the VMs' subnets,
 * so a guest that reaches it does so through skiff's masquerade, or not at all.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeHostAndOutside, removeNamespaces } from "../vm/outside.js";
import { cliPath, Harness } from "../vm/harness.js";
import { homeTag } from "../../src/network/ifnames.js";

const hostNs = `skt-brh-${process.pid}`;
const outNs = `skt-bro-${process.pid}`;
const h = new Harness({ netns: hostNs });

function inHost(...args: string[]): string {
  return execFileSync("ip", ["netns", "exec", hostNs, ...args], { encoding: "utf8" });
}

beforeAll(() => {
  makeHostAndOutside(hostNs, outNs);
});

afterAll(async () => {
  await h.cleanup();
  removeNamespaces(hostNs, outNs);
});

function links(): { ifname: string; link_type: string; ifalias?: string }[] {
  return JSON.parse(inHost("ip", "-j", "link", "show")) as { ifname: string; link_type: string; ifalias?: string }[];
}

function skiffTables(): string[] {
  const out = JSON.parse(inHost("nft", "-j", "list", "tables")) as { nftables: { table?: { name: string } }[] };
  return out.nftables.flatMap((e) => (e.table !== undefined && e.table.name.startsWith("skiff_") ? [e.table.name] : []));
}

describe("a bridge network with masquerade", () => {
  beforeAll(async () => {
    expect(inHost("sysctl", "-n", "net.ipv4.ip_forward").trim()).toBe("0");
    await h.ok(["network", "create", "lan", "--driver", "bridge", "--subnet", "10.91.0.0/24", "--masquerade"]);
    await h.ok(["run", "-d", "--name", "a", "--network", "lan", "--ip", "10.91.0.10", "base"]);
    await h.ok(["run", "-d", "--name", "b", "--network", "lan", "base"]);
  });

  it("puts the gateway on a tagged host bridge and each VM on a TAP", () => {
    const bridge = links().find((l) => l.ifname === "skb-lan");
    expect(bridge?.ifalias).toMatch(/^skiff:[0-9a-f]{8}:[0-9a-f]+$/);
    expect(inHost("ip", "-o", "-4", "addr", "show", "skb-lan")).toContain("10.91.0.1/24");
    const taps = links().filter((l) => /^sk[0-9a-f]{12}\d$/.test(l.ifname));
    expect(taps).toHaveLength(2);
    expect(inHost("sysctl", "-n", "net.ipv4.ip_forward").trim()).toBe("1");
  });

  it("gives static and allocated addresses, a default route via the gateway, and names", async () => {
    expect(await h.ok(["exec", "a", "ip", "-o", "-4", "addr", "show", "eth0"])).toContain("10.91.0.10/24");
    expect(await h.ok(["exec", "b", "ip", "-o", "-4", "addr", "show", "eth0"])).toContain("10.91.0.2/24");
    expect(await h.ok(["exec", "a", "ip", "route"])).toMatch(/^default via 10\.91\.0\.1 dev eth0/m);
    expect(await h.ok(["exec", "a", "ping", "-c", "2", "-W", "5", "10.91.0.1"])).toMatch(/2 packets received/);
    expect(await h.ok(["exec", "a", "ping", "-c", "2", "-W", "5", "b"])).toMatch(/2 packets received/);
  });

  it("reaches the outside through the host's NAT", async () => {
    expect(await h.ok(["exec", "b", "ping", "-c", "2", "-W", "5", "192.0.2.2"])).toMatch(/2 packets received/);
  });

  it("refuses overlapping subnets and a bridge name the host already has", async () => {
    const overlap = await h.run(["network", "create", "other", "--driver", "bridge", "--subnet", "10.91.0.128/25"]);
    expect(overlap.code).toBe(4);
    expect(overlap.stderr).toContain("overlaps network lan");
    const hostRoute = await h.run(["network", "create", "other", "--driver", "bridge", "--subnet", "192.0.2.0/24"]);
    expect(hostRoute.code).toBe(4);
    expect(hostRoute.stderr).toContain("overlaps the host's route");
    const clash = await h.run(["network", "create", "other", "--driver", "bridge", "--subnet", "10.93.0.0/24", "--bridge-name", "vout"]);
    expect(clash.code).toBe(4);
    expect(clash.stderr).toContain("ERR_SKIFF_NETWORK_CONFLICT");
    expect(links().some((l) => l.ifname === "vout")).toBe(true);
    expect(await h.ok(["network", "ls", "-q"])).toBe("lan\n");
  });

  it("loses a VM's TAP with its QEMU, however QEMU ends", async () => {
    const [info] = JSON.parse(await h.ok(["inspect", "b"])) as { pid: number }[];
    process.kill(info!.pid, "SIGKILL");
    for (let i = 0; i < 50 && links().filter((l) => /^sk[0-9a-f]{12}\d$/.test(l.ifname)).length > 1; i++) await new Promise((r) => setTimeout(r, 100));
    expect(links().filter((l) => /^sk[0-9a-f]{12}\d$/.test(l.ifname))).toHaveLength(1);
    await h.ok(["start", "b"]);
    expect(await h.ok(["exec", "b", "ping", "-c", "1", "-W", "5", "a"])).toMatch(/1 packets received/);
  });
});

describe("an internal bridge network", () => {
  it("joins its VMs but routes nothing for them", async () => {
    await h.ok(["network", "create", "iso", "--driver", "bridge", "--subnet", "10.92.0.0/24", "--internal"]);
    await h.ok(["run", "-d", "--name", "c", "--network", "iso", "base"]);
    await h.ok(["run", "-d", "--name", "d", "--network", "iso", "base"]);
    expect(await h.ok(["exec", "c", "ping", "-c", "2", "-W", "5", "d"])).toMatch(/2 packets received/);
    expect(await h.ok(["exec", "c", "ip", "route"])).not.toMatch(/default/);
    const out = await h.run(["exec", "c", "ping", "-c", "2", "-W", "2", "192.0.2.2"]);
    expect(out.code).not.toBe(0);
    const cross = await h.run(["exec", "c", "sh", "-c", "ip route add 10.91.0.0/24 via 10.92.0.1 && ping -c 2 -W 2 10.91.0.10"]);
    expect(cross.stdout).toMatch(/0 packets received/);
  });
});

describe("teardown", () => {
  it("leaves no bridge, TAP, nft table or process behind, and gives ip_forward back", async () => {
    await h.ok(["rm", "-f", "a", "b", "c", "d"]);
    expect(links().filter((l) => /^sk[0-9a-f]{12}\d$/.test(l.ifname))).toEqual([]);
    // rm of the last VM leaves the bridge until `network rm`.
    expect(links().some((l) => l.ifname === "skb-lan")).toBe(true);
    await h.ok(["network", "down", "lan"]);
    expect(links().some((l) => l.ifname === "skb-lan")).toBe(false);
    await h.ok(["network", "up", "lan"]);
    expect(links().some((l) => l.ifname === "skb-lan")).toBe(true);
    await h.ok(["network", "rm", "lan", "iso"]);
    expect(links().filter((l) => l.ifname.startsWith("skb-"))).toEqual([]);
    expect(skiffTables()).toEqual([]);
    expect(inHost("sysctl", "-n", "net.ipv4.ip_forward").trim()).toBe("0");
    expect(h.qemuProcessesUnderHome()).toEqual([]);
  });

  it("removes a bridge and NAT table a crash left without a network record, at the next command", async () => {
    // What a skiff killed between making the bridge and writing the record leaves behind.
    const tag = homeTag(h.home);
    inHost("ip", "link", "add", "skb-crashed", "type", "bridge");
    inHost("ip", "link", "set", "skb-crashed", "alias", `skiff:${tag}:deadbeef0001`);
    inHost("nft", "add", "table", "inet", `skiff_${tag}_deadbeef0001`);
    // Someone else's bridge with a skiff-like name is left alone.
    inHost("ip", "link", "add", "skb-foreign", "type", "bridge");
    await h.ok(["ps"]);
    expect(links().map((l) => l.ifname)).not.toContain("skb-crashed");
    expect(links().map((l) => l.ifname)).toContain("skb-foreign");
    expect(skiffTables()).toEqual([]);
    inHost("ip", "link", "del", "skb-foreign");
  });

  it("refuses a bridge network without root, making nothing", () => {
    const home = mkdtempSync("/tmp/sk-nobody-");
    chmodSync(home, 0o777);
    try {
      const r = spawnSync(
        "ip",
        ["netns", "exec", hostNs, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, cliPath, "network", "create", "nope", "--driver", "bridge"],
        { env: { ...process.env, SKIFF_HOME: home }, encoding: "utf8" },
      );
      expect(r.stderr).toContain("ERR_SKIFF_NEEDS_ROOT");
      expect(r.status).toBe(5);
      expect(links().some((l) => l.ifname.startsWith("skb-"))).toBe(false);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
