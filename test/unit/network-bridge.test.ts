import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { bridgeIpCommands, checkBridgeOwner, type LinkState } from "../../src/network/bridge.js";
import { bridgeAlias, defaultBridgeName, homeTag, parseBridgeAlias, validateIfName } from "../../src/network/ifnames.js";
import { networkIdOfTable, nftReplaceScript, nftTable, nftTableName } from "../../src/network/nft.js";
import { tapName } from "../../src/network/tap.js";
import type { NetworkRecord } from "../../src/network/types.js";

const tag = "1a2b3c4d";

function net(overrides: Partial<NetworkRecord> = {}): NetworkRecord {
  return {
    schemaVersion: 1,
    name: "web",
    id: "0123456789ab",
    driver: "bridge",
    subnet: "10.90.3.0/24",
    gateway: "10.90.3.1",
    masquerade: true,
    internal: false,
    bridge: "skb-web",
    labels: {},
    createdAt: "2025-01-01T00:00:00.000Z",
    ...overrides,
  };
}

function link(overrides: Partial<LinkState> = {}): LinkState {
  return {
    name: "skb-web",
    alias: bridgeAlias(tag, "0123456789ab"),
    kind: "bridge",
    up: true,
    operstate: "DOWN",
    addresses: ["10.90.3.1/24"],
    ...overrides,
  };
}

describe("nft rules", () => {
  it("masquerade: NAT out of any interface but the bridge, forward from it and back for replies", () => {
    expect(nftTable(net(), tag)).toMatchInlineSnapshot(`
      "table inet skiff_1a2b3c4d_0123456789ab {
      	comment "skiff network web"
      	chain postrouting {
      		type nat hook postrouting priority srcnat; policy accept;
      		ip saddr 10.90.3.0/24 oifname != "skb-web" masquerade
      	}
      	chain forward {
      		type filter hook forward priority filter; policy accept;
      		iifname "skb-web" accept
      		oifname "skb-web" ct state established,related accept
      		oifname "skb-web" ct status dnat accept
      		oifname "skb-web" drop
      	}
      }
      "
    `);
  });

  it("internal: drop whatever crosses the bridge's edge, no NAT", () => {
    expect(nftTable(net({ internal: true, masquerade: false }), tag)).toMatchInlineSnapshot(`
      "table inet skiff_1a2b3c4d_0123456789ab {
      	comment "skiff network web"
      	chain forward {
      		type filter hook forward priority filter; policy accept;
      		iifname "skb-web" oifname != "skb-web" drop
      		oifname "skb-web" iifname != "skb-web" drop
      	}
      }
      "
    `);
  });

  it("internal wins over masquerade; neither leaves an empty table that still marks the network", () => {
    expect(nftTable(net({ internal: true, masquerade: true }), tag)).not.toContain("masquerade");
    expect(nftTable(net({ masquerade: false }), tag)).toBe('table inet skiff_1a2b3c4d_0123456789ab {\n\tcomment "skiff network web"\n}\n');
  });

  it("replaces the table in one transaction, whether or not it exists", () => {
    const script = nftReplaceScript(net(), tag);
    expect(script.split("\n").slice(0, 3)).toEqual([
      "table inet skiff_1a2b3c4d_0123456789ab",
      "delete table inet skiff_1a2b3c4d_0123456789ab",
      "table inet skiff_1a2b3c4d_0123456789ab {",
    ]);
  });

  it("tells this home's tables from anyone else's", () => {
    expect(nftTableName(tag, "abc")).toBe("skiff_1a2b3c4d_abc");
    expect(networkIdOfTable(tag, { family: "inet", name: "skiff_1a2b3c4d_abc" })).toBe("abc");
    expect(networkIdOfTable(tag, { family: "ip", name: "skiff_1a2b3c4d_abc" })).toBeUndefined();
    expect(networkIdOfTable(tag, { family: "inet", name: "skiff_ffffffff_abc" })).toBeUndefined();
    expect(networkIdOfTable(tag, { family: "inet", name: "filter" })).toBeUndefined();
  });
});

describe("ip commands", () => {
  it("a missing bridge: created under a name with the home's tag, tagged, renamed, then address and up", () => {
    expect(bridgeIpCommands(net(), { homeTag: tag, current: undefined })).toEqual([
      ["link", "add", "name", "skn1a2b3c4d0123", "type", "bridge"],
      ["link", "set", "dev", "skn1a2b3c4d0123", "alias", "skiff:1a2b3c4d:0123456789ab"],
      ["link", "set", "dev", "skn1a2b3c4d0123", "name", "skb-web"],
      ["addr", "add", "10.90.3.1/24", "brd", "+", "dev", "skb-web"],
      ["link", "set", "dev", "skb-web", "up"],
    ]);
  });

  it("a bridge that is all there: nothing", () => {
    expect(bridgeIpCommands(net(), { homeTag: tag, current: link() })).toEqual([]);
  });

  it("ours but down and without its address: only what is missing", () => {
    expect(bridgeIpCommands(net(), { homeTag: tag, current: link({ up: false, addresses: ["fe80::1/64"] }) })).toEqual([
      ["addr", "add", "10.90.3.1/24", "brd", "+", "dev", "skb-web"],
      ["link", "set", "dev", "skb-web", "up"],
    ]);
  });

  it("without a recorded gateway, the first host address", () => {
    expect(bridgeIpCommands(net({ gateway: undefined, subnet: "10.90.8.0/23" }), { homeTag: tag, current: link() })).toEqual([
      ["addr", "add", "10.90.8.1/23", "brd", "+", "dev", "skb-web"],
    ]);
  });

  it("refuses networks that are not bridges, or whose id cannot name host objects", () => {
    expect(() => bridgeIpCommands(net({ driver: "private", bridge: undefined }), { homeTag: tag, current: undefined })).toThrow(/not a bridge/);
    expect(() => bridgeIpCommands(net({ id: "a b" }), { homeTag: tag, current: undefined })).toThrow(
      expect.objectContaining({ code: "ERR_SKIFF_STATE_CORRUPT" }),
    );
  });
});

describe("bridge ownership", () => {
  it("accepts this network's bridge", () => {
    expect(() => checkBridgeOwner(net(), tag, link())).not.toThrow();
  });

  it.each([
    ["a host interface", undefined, /not made by skiff/],
    ["another network of this home", bridgeAlias(tag, "ffffffffffff"), /another network of this skiff home/],
    ["another home", bridgeAlias("99999999", "0123456789ab"), /another skiff home/],
  ])("refuses %s with a conflict naming bridgeName", (_what, alias, message) => {
    let caught: unknown;
    try {
      checkBridgeOwner(net(), tag, link({ alias }));
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: "ERR_SKIFF_NETWORK_CONFLICT", place: "bridgeName", hint: expect.stringContaining("another bridge name") });
    expect((caught as Error).message).toMatch(message);
  });
});

describe("names", () => {
  it("default bridge names fit in 15 bytes and keep long names apart", () => {
    expect(defaultBridgeName("web")).toBe("skb-web");
    expect(defaultBridgeName("a.b_c")).toBe("skb-a-b_c");
    expect(defaultBridgeName("backend-net")).toBe("skb-backend-net");
    const a = defaultBridgeName("my-long-network-1");
    const b = defaultBridgeName("my-long-network-2");
    expect(a).toMatch(/^skb-my-lon-[0-9a-f]{4}$/);
    expect(a).not.toBe(b);
    for (const name of [a, b, defaultBridgeName("x".repeat(32))]) expect(validateIfName(name)).toBe(name);
  });

  it.each(["", "x".repeat(16), ".", "..", "a/b", "a b", "tab\t", "a:b", 'a"b', "eth*", "-x"])("rejects the interface name %j", (name) => {
    expect(() => validateIfName(name)).toThrow(expect.objectContaining({ code: "ERR_SKIFF_BAD_NAME", place: "bridgeName" }));
  });

  it.each(["br0", "x".repeat(15), "skb-web.10", "_a"])("accepts the interface name %j", (name) => {
    expect(validateIfName(name)).toBe(name);
  });

  it("tags a home by its absolute path", () => {
    expect(homeTag("/var/lib/skiff")).toMatch(/^[0-9a-f]{8}$/);
    expect(homeTag("/var/lib/skiff/")).toBe(homeTag("/var/lib/skiff"));
    expect(homeTag("/var/lib/skiff")).not.toBe(homeTag("/var/lib/skiff2"));
  });

  it("reads back only aliases skiff writes", () => {
    expect(parseBridgeAlias(bridgeAlias(tag, "abc123"))).toEqual({ tag, networkId: "abc123" });
    expect(parseBridgeAlias("docker0")).toBeUndefined();
    expect(parseBridgeAlias(undefined)).toBeUndefined();
  });
});

describe("TAPs", () => {
  it("names a TAP by VM id and NIC index within 15 bytes", () => {
    expect(tapName("0123456789ab", 0)).toBe("sk0123456789ab0");
    expect(tapName("0123456789ab", 35)).toBe("sk0123456789abz");
    expect(() => tapName("0123456789ab", 36)).toThrow(/no TAP name/);
    expect(() => tapName("0123456789abc", 0)).toThrow(/no TAP name/);
  });
});
