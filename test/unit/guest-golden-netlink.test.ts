/**
 * skiff-init's network changes over rtnetlink (guest/netlink.c: boot's
 * renames, addresses, links and route, and a resumed guest's new MAC and
 * address), run by the golden harness against the host's kernel in a
 * network namespace the test makes (`unshare -n`), on a veth pair: what
 * the guest's kernel would be told, checked with iproute2.
 */
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoldenHarness } from "./fixtures/guest-golden.js";

let harness: GoldenHarness;
beforeAll(() => {
  harness = GoldenHarness.build();
});
afterAll(() => harness.close());

const root = process.getuid?.() === 0;

/** Run `script` in a new network namespace (sh, $G the harness); its stdout. */
function inNamespace(script: string): string {
  const r = spawnSync("unshare", ["-n", "sh", "-ec", script], { encoding: "utf8", env: { ...process.env, G: harness.binary } });
  if (r.status !== 0) throw new Error(`unshare -n failed (${r.status}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

describe.skipIf(!root)("netlink.c in a network namespace", () => {
  it("gives a resumed guest's NIC its new MAC and address: the source's address goes, the route follows", () => {
    const out = inNamespace(`
      ip link add eth0 type veth peer name peer0
      ip addr add 10.9.9.9/24 dev eth0
      ip addr add 10.1.2.3/24 dev eth0
      ip addr add fd00::5/64 dev eth0 nodad
      ip link set eth0 up
      $G netlink mac eth0 52:54:00:12:34:56
      $G netlink address eth0 10.1.2.3/24
      $G netlink up eth0
      $G netlink route 10.1.2.1
      $G netlink address eth0 10.1.2.3/24
      echo ---
      ip -j -4 addr show dev eth0
      echo ---
      ip -j link show dev eth0
      echo ---
      ip -j -4 route show default
      echo ---
      ip -j -6 addr show dev eth0 scope global`);
    const [calls, addrs, link, route, v6] = out.split("---\n");
    expect(calls?.trim().split("\n")).toEqual(["ok", "ok", "ok", "ok", "ok"]);
    const addrInfo = (JSON.parse(addrs ?? "[]") as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>)[0]?.addr_info;
    expect(addrInfo?.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(["10.1.2.3/24"]);
    expect((JSON.parse(link ?? "[]") as Array<{ address: string; flags: string[] }>)[0]).toMatchObject({ address: "52:54:00:12:34:56", flags: expect.arrayContaining(["UP"]) });
    expect((JSON.parse(route ?? "[]") as Array<{ gateway: string; dev: string }>)[0]).toMatchObject({ gateway: "10.1.2.1", dev: "eth0" });
    // The source's IPv6 addresses went too, as `ip addr flush` took them.
    expect((JSON.parse(v6 ?? "[]") as Array<{ addr_info: unknown[] }>)[0]?.addr_info ?? []).toEqual([]);
  });

  it("renames and numbers NICs at boot, as configure_network does", () => {
    const out = inNamespace(`
      $G netlink up lo
      ip link add veth9 type veth peer name peer9
      $G netlink rename veth9 sktmp0
      $G netlink rename sktmp0 eth1
      $G netlink address eth1 172.30.0.5/16
      $G netlink up eth1
      echo ---
      ip -j -4 addr show dev eth1`);
    const [calls, addrs] = out.split("---\n");
    expect(calls?.trim().split("\n")).toEqual(["ok", "ok", "ok", "ok", "ok"]);
    const info = (JSON.parse(addrs ?? "[]") as Array<{ ifname: string; addr_info: Array<{ local: string; prefixlen: number }> }>)[0];
    expect(info?.ifname).toBe("eth1");
    expect(info?.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(["172.30.0.5/16"]);
  });

  it("refuses what it cannot do with the step and the reason, changing nothing", () => {
    const out = inNamespace(`
      ip link add eth0 type veth peer name peer0
      $G netlink address nope 10.0.0.1/8 || true
      $G netlink mac eth0 zz:zz || true
      $G netlink address eth0 10.0.0.1/33 || true
      $G netlink route 10.200.0.1 || true
      echo ---
      ip -j -4 addr show dev eth0`);
    const [calls, addrs] = out.split("---\n");
    expect(calls?.trim().split("\n")).toEqual([
      "no network device nope",
      "bad MAC zz:zz",
      "bad address 10.0.0.1/33",
      "set the default route via 10.200.0.1: Network is unreachable",
    ]);
    expect((JSON.parse(addrs ?? "[]") as Array<{ addr_info: unknown[] }>)[0]?.addr_info ?? []).toEqual([]);
  });
});
