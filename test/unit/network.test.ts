import { describe, expect, it } from "vitest";
import { networksFrom } from "../../src/cli/machine-options.js";
import { guestNetwork, hostNameservers, renderHosts } from "../../src/network/guest.js";
import { allocateAddress, checkRequestedAddress, parseSubnet, pickSubnet, subnetsOverlap } from "../../src/network/ipam.js";
import { attachmentMac, nicPlans } from "../../src/network/nics.js";
import { forwardsClash, parsePublish } from "../../src/network/ports.js";
import type { NetworkRecord } from "../../src/network/types.js";
import type { MachineSpec } from "../../src/spec/machine.js";
import { machineSpec } from "./fixtures/spec.js";
import { errorOf } from "./fixtures/errors.js";

describe("ipam", () => {
  it("parses subnets and refuses host bits, odd prefixes and junk", () => {
    expect(parseSubnet("10.90.0.0/24")).toEqual({ base: 0x0a5a0000, prefix: 24 });
    expect(errorOf(() => parseSubnet("10.90.0.5/24")).hint).toContain("10.90.0.0/24");
    expect(errorOf(() => parseSubnet("10.90.0.0/31")).place).toBe("subnet");
    expect(errorOf(() => parseSubnet("10.300.0.0/16")).code).toBe("ERR_SKIFF_USAGE");
  });

  it("tells overlapping subnets", () => {
    expect(subnetsOverlap(parseSubnet("10.0.0.0/16"), parseSubnet("10.0.5.0/24"))).toBe(true);
    expect(subnetsOverlap(parseSubnet("10.0.0.0/24"), parseSubnet("10.0.1.0/24"))).toBe(false);
  });

  it("hands out the lowest free address, leaving .1 for a gateway unless told not to", () => {
    const subnet = parseSubnet("10.90.0.0/24");
    expect(allocateAddress({ subnet, taken: new Set(), network: "lan" })).toBe("10.90.0.2");
    expect(allocateAddress({ subnet, taken: new Set(["10.90.0.2", "10.90.0.3"]), network: "lan" })).toBe("10.90.0.4");
    const link = parseSubnet("10.77.0.0/30");
    expect(allocateAddress({ subnet: link, taken: new Set(), network: "w", reserveFirst: false })).toBe("10.77.0.1");
    const full = errorOf(() => allocateAddress({ subnet: link, taken: new Set(["10.77.0.1", "10.77.0.2"]), network: "w", reserveFirst: false }));
    expect(full.code).toBe("ERR_SKIFF_ADDRESS_IN_USE");
  });

  it("checks a requested address: inside, not network/broadcast/gateway, not taken", () => {
    const subnet = parseSubnet("10.90.0.0/24");
    const base = { subnet, taken: new Map([["10.90.0.7", "web"]]), network: "lan", place: "--ip", gateway: "10.90.0.1" };
    expect(checkRequestedAddress({ ...base, ip: "10.90.0.50" })).toBe("10.90.0.50");
    expect(errorOf(() => checkRequestedAddress({ ...base, ip: "10.90.1.5" })).code).toBe("ERR_SKIFF_USAGE");
    expect(errorOf(() => checkRequestedAddress({ ...base, ip: "10.90.0.255" })).code).toBe("ERR_SKIFF_USAGE");
    expect(errorOf(() => checkRequestedAddress({ ...base, ip: "10.90.0.1" })).message).toContain("gateway");
    expect(errorOf(() => checkRequestedAddress({ ...base, ip: "10.90.0.7" })).message).toContain("taken by web");
  });

  it("picks a default /24 clear of every used subnet", () => {
    expect(pickSubnet([])).toEqual(parseSubnet("10.90.0.0/24"));
    expect(pickSubnet([parseSubnet("10.90.0.0/23")])).toEqual(parseSubnet("10.90.2.0/24"));
  });
});

describe("-p forwards", () => {
  it("reads Docker's notation, binding 127.0.0.1 unless told", () => {
    expect(parsePublish("8080:80")).toEqual({ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 });
    expect(parsePublish("0.0.0.0:53:53/udp")).toEqual({ protocol: "udp", hostAddress: "0.0.0.0", hostPort: 53, guestPort: 53 });
    expect(parsePublish("80")).toEqual({ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 0, guestPort: 80 });
    expect(parsePublish("127.0.0.2::80").hostPort).toBe(0);
  });

  it("refuses what QEMU user networking cannot do, naming the field", () => {
    expect(errorOf(() => parsePublish("[::1]:80:80")).place).toBe("publish");
    expect(errorOf(() => parsePublish("80:80/sctp")).message).toContain("protocol");
    expect(errorOf(() => parsePublish("80:0")).code).toBe("ERR_SKIFF_USAGE");
    expect(errorOf(() => parsePublish("a:b:c:d")).code).toBe("ERR_SKIFF_USAGE");
  });

  it("knows 0.0.0.0 clashes with every address of the same port and protocol", () => {
    const f = (hostAddress: string, hostPort = 80, protocol: "tcp" | "udp" = "tcp") => ({ protocol, hostAddress, hostPort, guestPort: 1 });
    expect(forwardsClash(f("0.0.0.0"), f("127.0.0.1"))).toBe(true);
    expect(forwardsClash(f("127.0.0.1"), f("127.0.0.2"))).toBe(false);
    expect(forwardsClash(f("127.0.0.1"), f("127.0.0.1", 80, "udp"))).toBe(false);
  });
});

describe("--network flags", () => {
  it("means user networking when none is given, and only what is listed otherwise", () => {
    const restrict = process.env.SKIFF_USERNET_RESTRICT === "1";
    expect(networksFrom({ network: [], publish: [] })).toEqual({ network: { mode: "user", restrict, forwards: [] }, networks: [] });
    expect(networksFrom({ network: ["lan"], publish: [] }).network).toEqual({ mode: "none" });
    const both = networksFrom({ network: ["user", "lan", "name=db,ip=10.90.1.5"], publish: ["8080:80"] });
    expect(both.network.mode).toBe("user");
    expect(both.networks).toEqual([
      { network: "lan", place: "--network" },
      { network: "db", place: "--network", ip: "10.90.1.5" },
    ]);
    expect(networksFrom({ network: ["lan"], ip: "10.90.0.9", publish: [] }).networks[0]).toEqual({ network: "lan", place: "--ip", ip: "10.90.0.9" });
  });

  it("refuses none with others, -p without user networking, and --ip with several networks", () => {
    expect(errorOf(() => networksFrom({ network: ["none", "lan"], publish: [] })).place).toBe("--network");
    expect(errorOf(() => networksFrom({ network: ["lan"], publish: ["80:80"] })).place).toBe("--publish");
    expect(errorOf(() => networksFrom({ network: ["a", "b"], ip: "10.0.0.2", publish: [] })).place).toBe("--ip");
    expect(errorOf(() => networksFrom({ network: ["bad name"], publish: [] })).code).toBe("ERR_SKIFF_BAD_NAME");
  });
});

const lan: NetworkRecord = {
  schemaVersion: 1,
  name: "lan",
  id: "aaaaaaaaaaaa",
  driver: "bridge",
  subnet: "10.91.0.0/24",
  gateway: "10.91.0.1",
  masquerade: true,
  internal: false,
  bridge: "skb-lan",
  labels: {},
  createdAt: "2026-01-01T00:00:00Z",
};

function spec(overrides: Partial<MachineSpec> = {}): MachineSpec {
  return machineSpec("web", overrides);
}

describe("the guest's network", () => {
  const attached = spec({ networks: [{ network: "lan", driver: "bridge", ip: "10.91.0.5", prefix: 24, mac: attachmentMac("web", "lan") }] });

  it("names NICs eth0… in order, routes via the first network with a gateway, uses the host's DNS", () => {
    const g = guestNetwork({ spec: attached, networks: new Map([["lan", lan]]), peers: [], hostDns: ["192.0.2.53"] });
    expect(g.nics).toEqual([{ name: "eth0", network: "lan", driver: "bridge", mac: attachmentMac("web", "lan"), address: "10.91.0.5/24" }]);
    expect(g.gateway).toBe("10.91.0.1");
    expect(g.dns).toEqual(["192.0.2.53"]);
    const internal = guestNetwork({ spec: attached, networks: new Map([["lan", { ...lan, internal: true }]]), peers: [], hostDns: [] });
    expect(internal.gateway).toBeUndefined();
    const withUser = guestNetwork({ spec: { ...attached, network: { mode: "user", restrict: true, forwards: [] } }, networks: new Map([["lan", lan]]), peers: [], hostDns: [] });
    expect(withUser.nics.map((n) => n.name)).toEqual(["eth0", "eth1"]);
    expect(withUser.gateway).toBe("10.0.2.2");
    expect(withUser.dns).toEqual(["10.0.2.3"]);
  });

  it("routes through a gateway given for one of its networks (a router VM), even with user networking", () => {
    const routed = spec({
      network: { mode: "user", restrict: true, forwards: [] },
      networks: [{ network: "lan", driver: "private", ip: "10.91.0.80", prefix: 24, mac: attachmentMac("web", "lan"), gateway: "10.91.0.1" }],
    });
    const g = guestNetwork({ spec: routed, networks: new Map([["lan", { ...lan, driver: "private", gateway: undefined }]]), peers: [], hostDns: [] });
    expect(g.gateway).toBe("10.91.0.1");
  });

  it("lists in /etc/hosts only the peers that share a network", () => {
    const hosts = renderHosts(attached, [
      { name: "db", hostname: "db", addresses: new Map([["lan", "10.91.0.6"]]) },
      { name: "elsewhere", hostname: "elsewhere", addresses: new Map([["other", "10.92.0.2"]]) },
    ]);
    expect(hosts).toBe("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.91.0.5\tweb\n10.91.0.6\tdb\n");
  });

  it("takes the host's nameservers except loopback ones", () => {
    expect(hostNameservers("# x\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch lan\n")).toEqual(["192.0.2.1"]);
  });

  it("plans a TAP per bridge NIC (handed to QEMU as descriptors 3, 4, …) and the two ends of a link", () => {
    const link: NetworkRecord = { ...lan, name: "w", driver: "link", bridge: undefined } as NetworkRecord;
    const nics = nicPlans({
      vmId: "0123456789ab",
      attachments: [
        ...attached.networks!,
        { network: "w", driver: "link", ip: "10.77.0.2", prefix: 30, mac: "52:54:00:00:00:09", slot: 1 },
        { ...attached.networks![0]!, mac: "52:54:00:00:00:0a" },
      ],
      networks: new Map([["lan", lan], ["w", link]]),
      runDir: (n) => `/h/networks/${n}.d`,
    });
    expect(nics.map((n) => n.backend)).toEqual([
      { kind: "tap", ifname: "sk0123456789ab0", bridge: "skb-lan", fd: 3 },
      { kind: "unix-dgram", localPath: "/h/networks/w.d/end-1.sock", remotePath: "/h/networks/w.d/end-0.sock" },
      { kind: "tap", ifname: "sk0123456789ab2", bridge: "skb-lan", fd: 4 },
    ]);
  });
});
