/**
 * Rootless networks between VMs, with real guests under TCG: a private
 * network (QEMU multicast socket netdevs on loopback) and a link (a pair of
 * unix datagram sockets). Multicast only ever runs inside a network
 * namespace this test makes, as the project's rules want; every skiff
 * command runs in it (`ip netns exec`).
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Harness } from "../vm/harness.js";

const h = Harness.inNewNetns("skt-priv");

afterAll(() => h.cleanup());

function vmCount(): number {
  const dir = join(h.home, "vms");
  return existsSync(dir) ? readdirSync(dir).length : 0;
}

describe("a private network", () => {
  beforeAll(async () => {
    expect(await h.ok(["network", "create", "lan"])).toBe("lan\n");
    await h.ok(["run", "-d", "--name", "a", "--network", "lan", "base"]);
    await h.ok(["run", "-d", "--name", "b", "--network", "user", "--network", "lan", "base"]);
  });

  it("gives each VM a stable address and names its NICs predictably", async () => {
    const [b] = JSON.parse(await h.ok(["inspect", "b"])) as { interfaces: { name: string; network: string; mac: string; address: string }[] }[];
    expect(b!.interfaces.map((i) => [i.name, i.network, i.address])).toEqual([
      ["eth0", "user", "10.0.2.15/24"],
      ["eth1", "lan", "10.90.0.3/24"],
    ]);
    const inGuest = await h.ok(["exec", "b", "ip", "-o", "-4", "addr"]);
    expect(inGuest).toMatch(/eth1\s+inet 10\.90\.0\.3\/24/);
    expect(await h.ok(["exec", "b", "cat", `/sys/class/net/eth1/address`])).toBe(`${b!.interfaces[1]!.mac}\n`);
    const a = await h.ok(["exec", "a", "ip", "-o", "-4", "addr"]);
    // Only the private network: it is eth0, and there is no default route (nothing routes for it).
    expect(a).toMatch(/eth0\s+inet 10\.90\.0\.2\/24/);
    expect(await h.ok(["exec", "a", "ip", "route"])).not.toMatch(/default/);
  });

  it("lets VMs reach each other by name: ping both ways and TCP", async () => {
    expect(await h.ok(["exec", "a", "ping", "-c", "2", "-W", "5", "b"])).toMatch(/2 packets received/);
    expect(await h.ok(["exec", "b", "ping", "-c", "2", "-W", "5", "a"])).toMatch(/2 packets received/);
    const listener = h.run(["exec", "b", "nc", "-l", "-p", "7000"], { timeoutMs: 60_000 });
    await h.ok(["exec", "a", "sh", "-c", "for i in $(seq 20); do echo hello-over-tcp | nc b 7000 && exit 0; sleep 0.5; done; exit 1"]);
    const got = await listener;
    expect(got.stdout).toBe("hello-over-tcp\n");
  });

  it("shows members in network inspect and ls", async () => {
    const [net] = JSON.parse(await h.ok(["network", "inspect", "lan"])) as { driver: string; subnet: string; members: { vm: string; ip: string }[] }[];
    expect(net!.driver).toBe("private");
    expect(net!.subnet).toBe("10.90.0.0/24");
    expect(net!.members.map((m) => [m.vm, m.ip])).toEqual([
      ["a", "10.90.0.2"],
      ["b", "10.90.0.3"],
    ]);
    expect(await h.ok(["network", "ls"])).toMatch(/^lan\s+private\s+10\.90\.0\.0\/24\s+-\s+2/m);
  });

  it("takes an address given with --ip, and refuses a taken or foreign one leaving nothing behind", async () => {
    await h.ok(["create", "--name", "fixed", "--network", "lan", "--ip", "10.90.0.50", "base"]);
    const before = vmCount();
    const taken = await h.run(["create", "--name", "clash", "--network", "lan", "--ip", "10.90.0.50", "base"]);
    expect(taken.code).toBe(4);
    expect(taken.stderr).toContain("ERR_SKIFF_ADDRESS_IN_USE");
    expect(taken.stderr).toContain("taken by fixed");
    const outside = await h.run(["create", "--network", "lan", "--ip", "10.1.2.3", "base"]);
    expect(outside.code).toBe(2);
    expect(outside.stderr).toMatch(/not a host address of network lan \(10\.90\.0\.0\/24\)/);
    const unknown = await h.run(["create", "--network", "nosuch", "base"]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain("ERR_SKIFF_NETWORK_NOT_FOUND");
    expect(vmCount()).toBe(before);
    await h.ok(["rm", "fixed"]);
  });

  it("never gives one address to two VMs created at once", async () => {
    const names = ["p1", "p2", "p3", "p4", "p5"];
    await Promise.all(names.map((n) => h.ok(["create", "--name", n, "--network", "lan", "base"])));
    const infos = JSON.parse(await h.ok(["inspect", ...names])) as { interfaces: { address: string }[] }[];
    const addresses = infos.map((i) => i.interfaces[0]!.address);
    expect(new Set(addresses).size).toBe(names.length);
    await h.ok(["rm", ...names]);
  });

  it("keeps /etc/hosts of running VMs current as VMs come and go", async () => {
    await h.ok(["create", "--name", "newcomer", "--network", "lan", "base"]);
    expect(await h.ok(["exec", "a", "cat", "/etc/hosts"])).toMatch(/^10\.90\.0\.\d+\tnewcomer$/m);
    await h.ok(["rm", "newcomer"]);
    const hosts = await h.ok(["exec", "a", "cat", "/etc/hosts"]);
    expect(hosts).not.toContain("newcomer");
    expect(hosts).toMatch(/^10\.90\.0\.3\tb$/m);
  });

  it("refuses to remove a network VMs are on, then removes it once they are gone", async () => {
    const busy = await h.run(["network", "rm", "lan"]);
    expect(busy.code).toBe(4);
    expect(busy.stderr).toContain("ERR_SKIFF_NETWORK_CONFLICT");
    expect(busy.stderr).toContain("used by a, b");
    await h.ok(["rm", "-f", "a", "b"]);
    await h.ok(["network", "rm", "lan"]);
    expect(await h.ok(["network", "ls", "-q"])).toBe("");
    expect(h.qemuProcessesUnderHome()).toEqual([]);
  });
});

describe("a link network", () => {
  it("joins exactly two VMs and refuses a third", async () => {
    await h.ok(["network", "create", "wire", "--driver", "link", "--subnet", "10.77.0.0/30"]);
    await h.ok(["run", "-d", "--name", "left", "--network", "wire", "base"]);
    await h.ok(["run", "-d", "--name", "right", "--network", "wire", "base"]);
    expect(await h.ok(["exec", "left", "ping", "-c", "2", "-W", "5", "right"])).toMatch(/2 packets received/);
    expect(await h.ok(["exec", "right", "ip", "-o", "-4", "addr", "show", "eth0"])).toContain("10.77.0.2/30");
    const third = await h.run(["create", "--name", "third", "--network", "wire", "base"]);
    expect(third.code).toBe(4);
    expect(third.stderr).toContain("link network wire already joins two VMs (left, right)");
    // A restart rebinds its end of the pair (the old socket file is replaced).
    await h.ok(["restart", "right"]);
    expect(await h.ok(["exec", "left", "ping", "-c", "2", "-W", "5", "right"])).toMatch(/2 packets received/);
    await h.ok(["rm", "-f", "left", "right"]);
    await h.ok(["network", "rm", "wire"]);
    expect(existsSync(join(h.home, "networks", "wire.d"))).toBe(false);
  });
});
