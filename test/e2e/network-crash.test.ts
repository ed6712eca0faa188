/**
 * `skiff network create` killed at every step, in a network namespace this
 * test makes: the next command sweeps what the kill left (bridge, nft
 * table, ip_forward, the record's temp file), and the same name can be
 * created again. The steps are hit exactly through SKIFF_TEST_CRASH_AT (the
 * windows between them are milliseconds wide), and a few kills from outside
 * at spread-out moments catch what no named point covers. Then: many
 * concurrent commands, none of which may fail on the sweep's lock.
 */
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { collect, Harness } from "../vm/harness.js";

const h = Harness.inNewNetns("skt-nc");
afterAll(() => h.cleanup());

function inNs(...args: string[]): string {
  return execFileSync("ip", ["netns", "exec", h.netns!, ...args], { encoding: "utf8" });
}

/** Bridges skiff names (skb-*: a network's; skn*: one still being made). */
function skiffBridges(): string[] {
  const links = JSON.parse(inNs("ip", "-j", "link", "show", "type", "bridge")) as { ifname: string }[];
  return links.map((l) => l.ifname).filter((n) => /^sk[bn]/.test(n));
}

function skiffTables(): string[] {
  const out = JSON.parse(inNs("nft", "-j", "list", "tables")) as { nftables: { table?: { name: string } }[] };
  return out.nftables.flatMap((e) => (e.table?.name.startsWith("skiff_") ? [e.table.name] : []));
}

/** Files in the home's networks directory. */
function networkFiles(): string[] {
  try {
    return readdirSync(join(h.home, "networks"));
  } catch {
    return [];
  }
}

/** Nothing of a network on the host or in the home, and forwarding as the namespace had it. */
function expectNothingLeft(): void {
  expect(skiffBridges()).toEqual([]);
  expect(skiffTables()).toEqual([]);
  expect(inNs("sysctl", "-n", "net.ipv4.ip_forward").trim()).toBe("0");
  expect(networkFiles()).toEqual([]);
}

const createArgs = {
  bridge: ["network", "create", "n", "--driver", "bridge", "--subnet", "10.97.0.0/24", "--masquerade"],
  private: ["network", "create", "n", "--driver", "private"],
  link: ["network", "create", "n", "--driver", "link"],
};

const bridgeSteps = ["bridge:table", "bridge:add", "bridge:alias", "bridge:name", "bridge:addr", "bridge:up", "bridge:ip-forward", "write:n.json"];
const crashPoints: [keyof typeof createArgs, string][] = [
  ...bridgeSteps.map((p) => ["bridge", p] as [keyof typeof createArgs, string]),
  ["private", "write:n.json"],
  ["link", "write:n.json"],
];

describe("network create killed at each step", () => {
  it.each(crashPoints)("%s, killed at %s: the next command sweeps it, and the name can be created again", async (driver, point) => {
    const killed = await h.run(createArgs[driver], { env: { SKIFF_TEST_CRASH_AT: point } });
    expect(killed.code).toBe(128 + 9);
    await h.ok(["ps"]);
    expectNothingLeft();
    await h.ok(createArgs[driver]);
    expect(await h.ok(["network", "ls", "-q"])).toBe("n\n");
    await h.ok(["network", "rm", "n"]);
    expectNothingLeft();
  });

  it("killed by `network create` itself: a create right after the kill sweeps what is in its way", async () => {
    const killed = await h.run(createArgs.bridge, { env: { SKIFF_TEST_CRASH_AT: "bridge:alias" } });
    expect(killed.code).toBe(128 + 9);
    expect(skiffBridges()).toHaveLength(1);
    await h.ok(createArgs.bridge);
    expect(skiffBridges()).toEqual(["skb-n"]);
    await h.ok(["network", "rm", "n"]);
    expectNothingLeft();
  });

  it("killed from outside at moments spread over its run: never anything the next command leaves or that blocks the name", async () => {
    const t0 = Date.now();
    await h.ok(createArgs.bridge);
    const runMs = Date.now() - t0;
    await h.ok(["network", "rm", "n"]);
    for (const fraction of [0.5, 0.7, 0.8, 0.9, 0.95]) {
      const child = h.spawn(createArgs.bridge);
      const done = collect(child);
      await new Promise((r) => setTimeout(r, runMs * fraction));
      child.kill("SIGKILL");
      await done;
      await h.ok(["ps"]);
      // Killed after its record was written, the network exists; before, nothing of it may be left.
      if (!networkFiles().includes("n.json")) expectNothingLeft();
      else expect(skiffBridges()).toEqual(["skb-n"]);
      const again = await h.run(createArgs.bridge);
      if (again.code !== 0) expect(again.stderr).toContain('a network named "n" already exists');
      await h.ok(["network", "rm", "n"]);
      expectNothingLeft();
    }
  }, 600_000);
});

describe("concurrent commands while a bridge network exists", () => {
  it("16 concurrent `run -d` all succeed: the sweep makes none of them wait for a global lock", async () => {
    await h.ok(createArgs.bridge);
    // Under TCG on a shared 2-core host, 16 guests booting at once are slow: the test is about locks, not boot time.
    const env = { SKIFF_BOOT_TIMEOUT_MS: "600000" };
    const names = Array.from({ length: 16 }, (_, i) => `c${i}`);
    // One VM of their shape first: its boot snapshot is what the 16 start from, as users' VMs of one shape do.
    await h.ok(["run", "--rm", "--memory", "160m", "base", "true"], { env, timeoutMs: 300_000 });
    try {
      const results = await Promise.all(names.map((n) => h.run(["run", "-d", "--memory", "160m", "--name", n, "base"], { env, timeoutMs: 900_000 })));
      expect(results.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
      expect(JSON.parse(await h.ok(["ps", "--json"])).map((v: { name: string }) => v.name).sort()).toEqual([...names].sort());
    } finally {
      await h.run(["rm", "-f", ...names]);
      await h.ok(["network", "rm", "n"]);
    }
    expectNothingLeft();
  }, 1_200_000);
});
