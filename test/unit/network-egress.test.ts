import { describe, expect, it } from "vitest";
import { cidrOf, egressTable, parseEgress, resolveEgress, splitDestination } from "../../src/network/egress.js";
import { errorOf, rejectionOf } from "./fixtures/errors.js";

describe("--egress words", () => {
  it("reads all, deny and allow= lists (repeatable), all being the default", () => {
    expect(parseEgress([])).toEqual({ policy: "all", destinations: [] });
    expect(parseEgress(["deny"])).toEqual({ policy: "deny", destinations: [] });
    expect(parseEgress(["allow=10.0.0.0/8,pypi.org:443", "allow=[::1]:80"])).toEqual({
      policy: "allow",
      destinations: ["10.0.0.0/8", "pypi.org:443", "[::1]:80"],
    });
  });

  it("refuses unknown words, empty lists and mixed policies, at egress", () => {
    for (const bad of [["open"], ["allow="], ["deny", "all"], ["allow=1.2.3.4", "deny"]]) {
      expect(errorOf(() => parseEgress(bad))).toMatchObject({ code: "ERR_SKIFF_USAGE", place: "egress" });
    }
  });

  it("splits destinations and ports, IPv6 in brackets", () => {
    expect(splitDestination("1.2.3.4")).toEqual({ host: "1.2.3.4" });
    expect(splitDestination("10.0.0.0/8:53")).toEqual({ host: "10.0.0.0/8", port: 53 });
    expect(splitDestination("example.org:443")).toEqual({ host: "example.org", port: 443 });
    expect(splitDestination("[::1]:80")).toEqual({ host: "::1", port: 80 });
    expect(splitDestination("fd00::/8")).toEqual({ host: "fd00::/8" });
    for (const bad of ["x:0", "x:70000", ":80", "x:y"]) expect(errorOf(() => splitDestination(bad)).code).toBe("ERR_SKIFF_USAGE");
  });

  it("turns addresses into CIDRs, normalised, and leaves names alone", () => {
    expect(cidrOf("1.2.3.4")).toBe("1.2.3.4/32");
    expect(cidrOf("10.0.0.0/8")).toBe("10.0.0.0/8");
    expect(errorOf(() => cidrOf("10.1.2.3/8"))).toMatchObject({ place: "egress", message: expect.stringContaining("host bits") });
    expect(cidrOf("::1")).toBe("::1/128");
    expect(cidrOf("example.org")).toBeUndefined();
  });

  it("resolves names once, at create, and refuses destinations with a policy that takes none", async () => {
    expect(await resolveEgress({ allow: ["localhost:8080", "192.0.2.0/24"] })).toEqual({
      policy: "allow",
      allow: expect.arrayContaining([{ cidr: "127.0.0.1/32", port: 8080 }, { cidr: "192.0.2.0/24" }]),
      hostLoopback: false,
    });
    expect(await resolveEgress({ hostLoopback: true })).toEqual({ policy: "all", allow: [], hostLoopback: true });
    expect((await rejectionOf(resolveEgress({ policy: "deny", allow: ["1.2.3.4"] }))).code).toBe("ERR_SKIFF_USAGE");
    expect((await rejectionOf(resolveEgress({ allow: ["no-such-host.invalid"] }))).code).toBe("ERR_SKIFF_USAGE");
  });
});

describe("the VM's nftables table", () => {
  const rules = (text: string) =>
    text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !/^(table|chain|type|comment|\})/.test(l));

  it("by default: replies and DNS pass, the host's loopback is refused, the rest passes", () => {
    expect(rules(egressTable(1_600_000_007, { policy: "all", allow: [], hostLoopback: false }, ["10.255.255.53", "::1", "bogus"]))).toEqual([
      "meta skuid != 1600000007 return",
      "ct state established,related accept",
      "ip daddr 10.255.255.53 udp dport 53 accept",
      "ip daddr 10.255.255.53 tcp dport 53 accept",
      "ip6 daddr ::1 udp dport 53 accept",
      "ip6 daddr ::1 tcp dport 53 accept",
      "ip daddr 127.0.0.0/8 reject",
      "ip6 daddr ::1 reject",
      "accept",
    ]);
  });

  it("allow: only what is listed (a listed loopback port too), no DNS with deny, guest forwards always", () => {
    const allow = rules(egressTable(7, { policy: "allow", allow: [{ cidr: "192.0.2.2/32", port: 80 }, { cidr: "127.0.0.1/32", port: 8080 }], hostLoopback: false }, []));
    expect(allow.slice(2)).toEqual([
      "ip daddr 192.0.2.2/32 th dport 80 accept",
      "ip daddr 127.0.0.1/32 th dport 8080 accept",
      "ip daddr 127.0.0.0/8 reject",
      "ip6 daddr ::1 reject",
      "reject",
    ]);
    const deny = rules(egressTable(7, { policy: "deny", allow: [], hostLoopback: false }, ["10.0.0.1"], [{ cidr: "127.0.0.1/32", port: 3142 }]));
    expect(deny).toEqual([
      "meta skuid != 7 return",
      "ct state established,related accept",
      "ip daddr 127.0.0.1/32 tcp dport 3142 accept",
      "ip daddr 127.0.0.1 tcp dport 32768-60999 accept",
      "ip daddr 127.0.0.0/8 reject",
      "ip6 daddr ::1 reject",
      "reject",
    ]);
    expect(rules(egressTable(7, { policy: "deny", allow: [], hostLoopback: true }, [])).slice(-3)).toEqual(["ip daddr 127.0.0.0/8 accept", "ip6 daddr ::1 accept", "reject"]);
  });
});
