/**
 * ensureBridge, removeBridge and sweepOrphanBridges against a fake host: a
 * Runner that keeps links, nft tables and ip_forward in memory and answers
 * the few commands skiff uses the way ip, nft and sysctl do.
 */
import { readFile } from "node:fs/promises";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SkiffError } from "../../src/errors.js";
import { ensureBridge, findOrphanBridges, homeTag, removeBridge, sweepOrphanBridges, bridgeStatus } from "../../src/network/bridge.js";
import { bridgeAlias, pendingBridgeName } from "../../src/network/ifnames.js";
import { ipForwardRecordPath } from "../../src/network/ip-forward.js";
import type { RunOptions, RunResult, Runner } from "../../src/process/runner.js";
import type { NetworkRecord } from "../../src/network/types.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

interface FakeLink {
  alias?: string;
  up: boolean;
  addresses: string[];
}

class FakeHost implements Runner {
  links = new Map<string, FakeLink>();
  /** name → has a nat postrouting chain */
  tables = new Map<string, boolean>();
  ipForward = "0";
  nftMissing = false;
  failOn: RegExp | undefined;
  calls: string[] = [];

  async run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const line = [cmd, ...args].join(" ");
    this.calls.push(line);
    if (cmd === "nft" && this.nftMissing) {
      throw new SkiffError("ERR_SKIFF_TOOL_MISSING", "nft not found", { hint: `install it: apt-get install ${opts.debianPackage}` });
    }
    const result = this.failOn?.test(line) ? fail("RTNETLINK answers: Operation not permitted") : this.#answer(cmd, [...args], opts);
    if (opts.check && result.code !== 0) {
      throw new SkiffError("ERR_SKIFF_TOOL_FAILED", `${cmd} exited with code ${result.code}`, { details: { stderr: result.stderr } });
    }
    return result;
  }

  #answer(cmd: string, a: string[], opts: RunOptions): RunResult {
    const key = a.join(" ");
    if (cmd === "sysctl") {
      if (a[0] === "-n") return ok(`${this.ipForward}\n`);
      this.ipForward = a[2]!.split("=")[1]!;
      return ok();
    }
    if (cmd === "ip") {
      const dev = a[a.length - 1]!;
      if (key.startsWith("-j -d addr show dev")) {
        const l = this.links.get(dev);
        if (!l) return fail(`Device "${dev}" does not exist.`);
        const flags = l.up ? ["BROADCAST", "UP"] : ["BROADCAST"];
        const addrInfo = l.addresses.map((c) => ({ local: c.split("/")[0], prefixlen: Number(c.split("/")[1]) }));
        return ok(JSON.stringify([{ ifname: dev, ifalias: l.alias, flags, operstate: "DOWN", addr_info: addrInfo, linkinfo: { info_kind: "bridge" } }]));
      }
      if (key === "-j link show type bridge") return ok(JSON.stringify([...this.links].map(([ifname, l]) => ({ ifname, ifalias: l.alias }))));
      if (key.startsWith("link add name")) {
        if (this.links.has(a[3]!)) return fail("RTNETLINK answers: File exists");
        this.links.set(a[3]!, { up: false, addresses: [] });
        return ok();
      }
      const name = a[1] === "set" ? a[3]! : dev;
      const l = this.links.get(name);
      if (!l) return fail(`Cannot find device "${name}"`);
      if (key.startsWith("link del")) this.links.delete(name);
      else if (a[4] === "alias") l.alias = a[5];
      else if (a[4] === "name") {
        this.links.delete(name);
        this.links.set(a[5]!, l);
      }
      else if (key.endsWith(" up")) l.up = true;
      else if (a[0] === "addr") l.addresses.push(a[2]!);
      return ok();
    }
    if (cmd === "nft") {
      if (key === "-f -") {
        const name = /^table inet (\S+)/.exec(String(opts.input))![1]!;
        this.tables.set(name, String(opts.input).includes("type nat hook postrouting"));
        return ok();
      }
      if (a[0] === "delete" || (a[0] === "list" && a[1] === "table")) {
        if (!this.tables.has(a[3]!)) return fail("Error: No such file or directory");
        if (a[0] === "delete") this.tables.delete(a[3]!);
        return ok();
      }
      if (key === "-j list tables") return ok(JSON.stringify({ nftables: [...this.tables.keys()].map((name) => ({ table: { family: "inet", name } })) }));
      if (key === "-j list chains") {
        const chains = [...this.tables].flatMap(([table, nat]) => (nat ? [{ chain: { family: "inet", table, name: "postrouting", type: "nat", hook: "postrouting" } }] : []));
        return ok(JSON.stringify({ nftables: chains }));
      }
    }
    throw new Error(`fake host does not know: ${cmd} ${key}`);
  }
}

const ok = (stdout = ""): RunResult => ({ code: 0, signal: null, stdout, stderr: "" });
const fail = (stderr: string): RunResult => ({ code: 1, signal: null, stdout: "", stderr });

function net(id: string, overrides: Partial<NetworkRecord> = {}): NetworkRecord {
  return {
    schemaVersion: 1,
    name: `n${id}`,
    id,
    driver: "bridge",
    subnet: "10.90.3.0/24",
    gateway: "10.90.3.1",
    masquerade: true,
    internal: false,
    bridge: `skb-${id}`,
    labels: {},
    createdAt: "2025-01-01T00:00:00.000Z",
    ...overrides,
  };
}

let home: string;
let cleanup: () => Promise<void>;
let host: FakeHost;
beforeEach(async () => {
  ({ home, cleanup } = await makeTempHome());
  host = new FakeHost();
});
afterEach(() => cleanup());
afterAll(() => vi.restoreAllMocks());

describe("ensureBridge and removeBridge", () => {
  it("makes the table, the tagged bridge and forwarding, once", async () => {
    await ensureBridge(net("a1"), { home, runner: host });
    const tag = homeTag(home);
    expect(host.links.get("skb-a1")).toEqual({ alias: bridgeAlias(tag, "a1"), up: true, addresses: ["10.90.3.1/24"] });
    expect([...host.tables.keys()]).toEqual([`skiff_${tag}_a1`]);
    expect(host.ipForward).toBe("1");
    expect((await readFile(ipForwardRecordPath(home), "utf8")).trim()).toBe("0");

    host.calls = [];
    await ensureBridge(net("a1"), { home, runner: host });
    expect(host.calls.filter((c) => !/ -j |^sysctl -n|^nft -f/.test(c))).toEqual([]);
    expect(await bridgeStatus(net("a1"), { home, runner: host })).toMatchObject({ ours: true, up: true, firewall: true, addresses: ["10.90.3.1/24"] });
  });

  it("restores forwarding only when the last masquerade network goes", async () => {
    await ensureBridge(net("a1"), { home, runner: host });
    await ensureBridge(net("b2", { subnet: "10.90.4.0/24", gateway: "10.90.4.1" }), { home, runner: host });
    await ensureBridge(net("c3", { internal: true, masquerade: false }), { home, runner: host });
    await removeBridge(net("a1"), { home, runner: host });
    expect(host.ipForward).toBe("1");
    await removeBridge(net("b2"), { home, runner: host });
    expect(host.ipForward).toBe("0");
    await expect(readFile(ipForwardRecordPath(home))).rejects.toMatchObject({ code: "ENOENT" });
    expect([...host.links.keys()]).toEqual(["skb-c3"]);
  });

  it("keeps forwarding on while another skiff home still masquerades", async () => {
    await ensureBridge(net("a1"), { home, runner: host });
    host.tables.set("skiff_99999999_b2", true);
    await removeBridge(net("a1"), { home, runner: host });
    expect(host.ipForward).toBe("1");
    host.tables.delete("skiff_99999999_b2");
    await sweepOrphanBridges({ home, runner: host, liveNetworkIds: new Set() });
    expect(host.ipForward).toBe("0");
  });

  it("leaves forwarding alone when it was already on", async () => {
    host.ipForward = "1";
    await ensureBridge(net("a1"), { home, runner: host });
    await removeBridge(net("a1"), { home, runner: host });
    expect(host.ipForward).toBe("1");
  });

  it("is tolerant of pieces already gone, and never removes a bridge that is not its own", async () => {
    host.links.set("skb-a1", { up: true, addresses: [] });
    await removeBridge(net("a1"), { home, runner: host });
    expect(host.links.has("skb-a1")).toBe(true);
    await expect(ensureBridge(net("a1"), { home, runner: host })).rejects.toMatchObject({ code: "ERR_SKIFF_NETWORK_CONFLICT" });
    expect(host.tables.size).toBe(0);
  });

  it("takes back what it made when a later step fails", async () => {
    host.failOn = /^ip link set dev skb-a1 up/;
    await expect(ensureBridge(net("a1"), { home, runner: host })).rejects.toMatchObject({ code: "ERR_SKIFF_NEEDS_ROOT" });
    expect(host.links.size).toBe(0);
    expect(host.tables.size).toBe(0);
  });

  it("makes nothing without nft, and removes without it", async () => {
    host.nftMissing = true;
    await expect(ensureBridge(net("a1"), { home, runner: host })).rejects.toMatchObject({ code: "ERR_SKIFF_TOOL_MISSING" });
    expect(host.links.size).toBe(0);
    host.nftMissing = false;
    await ensureBridge(net("a1"), { home, runner: host });
    host.nftMissing = true;
    await removeBridge(net("a1"), { home, runner: host });
    expect(host.links.size).toBe(0);
  });

  it("asks for root", async () => {
    const spy = vi.spyOn(process, "geteuid").mockReturnValue(1000);
    try {
      await expect(ensureBridge(net("a1"), { home, runner: host })).rejects.toMatchObject({
        code: "ERR_SKIFF_NEEDS_ROOT",
        hint: expect.stringContaining("root"),
      });
      expect(host.calls).toEqual([]);
    } finally {
      spy.mockRestore();
    }
  });
});

describe("sweepOrphanBridges", () => {
  it("removes this home's bridges and tables without a record, nothing else", async () => {
    await ensureBridge(net("a1"), { home, runner: host });
    await ensureBridge(net("b2"), { home, runner: host });
    host.links.set("docker0", { up: true, addresses: [] });
    host.links.set("skb-other", { alias: bridgeAlias("99999999", "b2"), up: true, addresses: [] });
    host.tables.set("filter", false);
    const tag = homeTag(home);
    expect(await sweepOrphanBridges({ home, runner: host, liveNetworkIds: new Set(["a1"]) })).toEqual([
      "bridge skb-b2",
      `nft table inet skiff_${tag}_b2`,
    ]);
    expect([...host.links.keys()].sort()).toEqual(["docker0", "skb-a1", "skb-other"]);
    expect(host.ipForward).toBe("1");
    expect(await sweepOrphanBridges({ home, runner: host, liveNetworkIds: new Set() })).toEqual(["bridge skb-a1", `nft table inet skiff_${tag}_a1`]);
    expect(host.ipForward).toBe("0");
  });

  it("removes a bridge still under its pending name, tagged or not, unless a live network's", async () => {
    const tag = homeTag(home);
    // Killed between `link add` and the alias, and between the alias and the rename.
    host.links.set(pendingBridgeName(tag, "c3c3c3"), { up: false, addresses: [] });
    host.links.set(pendingBridgeName(tag, "d4d4d4"), { alias: bridgeAlias(tag, "d4d4d4"), up: false, addresses: [] });
    // A network whose own --bridge-name happens to look pending.
    host.links.set(pendingBridgeName(tag, "e5e5e5"), { alias: bridgeAlias(tag, "e5e5e5"), up: true, addresses: [] });
    host.links.set(pendingBridgeName("99999999", "f6f6f6"), { up: false, addresses: [] });
    const live = new Set(["e5e5e5"]);
    expect(await findOrphanBridges({ home, runner: host, liveNetworkIds: live })).toEqual({
      bridges: [pendingBridgeName(tag, "c3c3c3"), pendingBridgeName(tag, "d4d4d4")],
      tables: [],
    });
    await sweepOrphanBridges({ home, runner: host, liveNetworkIds: live });
    expect([...host.links.keys()].sort()).toEqual([pendingBridgeName("99999999", "f6f6f6"), pendingBridgeName(tag, "e5e5e5")].sort());
  });

  it("lets an ensure of the same network through a pending bridge a killed one left", async () => {
    host.links.set(pendingBridgeName(homeTag(home), "a1"), { alias: bridgeAlias(homeTag(home), "a1"), up: false, addresses: [] });
    await ensureBridge(net("a1"), { home, runner: host });
    expect([...host.links.keys()]).toEqual(["skb-a1"]);
    await removeBridge(net("a1"), { home, runner: host });
    expect(host.links.size).toBe(0);
  });
});
