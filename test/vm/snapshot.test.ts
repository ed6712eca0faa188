/**
 * Memory snapshots on real VMs (the built CLI, the `base` image, TCG): a
 * guest's running processes and files carried into a restored VM while the
 * source runs on; hibernate and resume (and a cold start instead); forks on
 * a private network that are independent machines with identities of their
 * own; pause and unpause; snapshot gc and rm against VMs that stand on a
 * snapshot, and `system df` counting them; the refusals; and a capture
 * killed while its guest is paused. The source has a named volume: a
 * restore gets a private clone of it as captured, a hibernated source keeps
 * holding it, and unpause sets a clock left behind.
 *
 * One source VM on a private network is booted once and shared; a second
 * (with a bind mount, for its refusal) boots beside it and is removed by
 * the first tests. Everything else is restored from snapshots, which costs
 * a fraction of a boot, but for one cold start (start --cold). Multicast
 * (the private network) runs only inside a namespace this file makes.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ramDir, ramPath } from "../../src/snapshot/ram.js";
import { Harness, type CliResult } from "./harness.js";

const h = Harness.inNewNetns("skt-snap");
const bindDir = mkdtempSync(join(tmpdir(), "skiff-snap-bind-"));

interface Info {
  id: string;
  name: string;
  state: string;
  dir: string;
  exit?: { reason?: string };
  hibernatedAt?: string;
  interfaces: { name: string; network: string; mac: string; address: string }[];
}

interface Snap {
  id: string;
  name?: string;
  kind: string;
  source: string;
  usedBy: string[];
  sizes: { mem: number; state: number; disk: number; volumes?: number };
  volumes: { volume: string; target: string; readOnly: boolean; bytes: number; restoresAs: string }[];
  path: string;
}

const inspect = async (vm: string): Promise<Info> => (JSON.parse(await h.ok(["inspect", vm])) as Info[])[0]!;
const psAll = async (): Promise<Info[]> => JSON.parse(await h.ok(["ps", "-a", "--format", "json"])) as Info[];
/** This home's snapshots: boot snapshots live in the cache, which other homes and earlier runs share. */
const snapshots = async (vm?: string): Promise<Snap[]> =>
  (JSON.parse(await h.ok(["snapshot", "ls", "--json", ...(vm === undefined ? [] : [vm])])) as Snap[]).filter((s) => s.kind !== "boot");
const diskUsage = async (): Promise<{ count: number; bytes: number }> =>
  (JSON.parse(await h.ok(["system", "df", "--json"])) as { snapshots: { count: number; bytes: number } }).snapshots;
const sh = (vm: string, script: string): Promise<string> => h.ok(["exec", vm, "sh", "-c", script]);
const count = async (vm: string): Promise<number> => Number((await h.ok(["exec", vm, "cat", "/tmp/count"])).trim());

/** The counter's two readings a second apart. */
async function counting(vm: string): Promise<[number, number]> {
  const [a, b] = (await sh(vm, "cat /tmp/count; sleep 1; cat /tmp/count")).trim().split("\n").map(Number);
  return [a!, b!];
}

function expectError(r: CliResult, code: string, exit: number): void {
  expect(r.stderr).toContain(code);
  expect(r.code).toBe(exit);
}

/** Host processes whose command line names the VM's directory (its QEMU: disk, sockets, pidfile). */
function processesOf(id: string): number[] {
  const marker = `${h.home}/vms/${id}/`;
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(marker) && !/\) Z /.test(readFileSync(`/proc/${entry}/stat`, "utf8"))) found.push(Number(entry));
    } catch {
      // ended meanwhile
    }
  }
  return found;
}

function stagingLeft(): string[] {
  const dir = join(h.home, "snapshots");
  return existsSync(dir) ? readdirSync(dir).filter((e) => e.startsWith(".staging-")) : [];
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * Started through exec, detached. When an exec ends, the guest's relay
 * hangs up its session's process group (guest/relay.c): the loop gets a
 * session of its own, and the exec waits until it has counted once, or a
 * loop not yet past `setsid` dies with the exec. `mv`: each value whole.
 */
const counterLoop =
  "setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.2; done' </dev/null >/dev/null 2>&1 & " +
  "while [ ! -s /tmp/count ]; do sleep 0.1; done";

beforeAll(async () => {
  expect(await h.ok(["network", "create", "lan"])).toBe("lan\n");
  expect(await h.ok(["volume", "create", "vol", "--size", "16m"])).toBe("vol\n");
  await Promise.all([
    h.ok(["run", "-d", "--name", "src", "--memory", "256m", "--network", "lan", "-v", "vol:/vol", "base"]),
    h.ok(["run", "-d", "--name", "bound", "--memory", "256m", "-v", `${bindDir}:/mnt`, "base"]),
  ]);
  await sh("src", counterLoop);
}, 300_000);

afterAll(async () => {
  if (process.env.SKIFF_KEEP_LOGS) console.log(h.consoleLogs());
  const left = await h.run(["ps", "-a", "-q"]);
  const names = left.stdout.split("\n").filter((n) => n !== "");
  if (names.length > 0) await h.run(["rm", "-f", ...names]);
  await h.run(["network", "rm", "lan"]);
  await h.run(["volume", "rm", "vol"]);
  await h.cleanup();
  rmSync(bindDir, { recursive: true, force: true });
});

describe("refusals (first: the VM they need is the only other one booted)", () => {
  it("refuses a VM with a bind mount and leaves it running", async () => {
    const r = await h.run(["snapshot", "create", "bound"]);
    expectError(r, "ERR_SKIFF_SNAPSHOT_UNSUPPORTED", 4);
    expect(r.stderr).toContain("bind mounts");
    expect((await psAll()).find((vm) => vm.name === "bound")!.state).toBe("running");
    expect(await h.ok(["exec", "bound", "echo", "alive"])).toBe("alive\n");
    expect((await snapshots("bound")).length).toBe(0);
    expect(stagingLeft()).toEqual([]);
  });

  it("refuses to snapshot or hibernate a VM that is not running", async () => {
    await h.ok(["kill", "bound"]);
    expectError(await h.run(["snapshot", "create", "bound"]), "ERR_SKIFF_VM_NOT_RUNNING", 4);
    expectError(await h.run(["stop", "--hibernate", "bound"]), "ERR_SKIFF_VM_NOT_RUNNING", 4);
    expect((await snapshots("bound")).length).toBe(0);
    expect(stagingLeft()).toEqual([]);
    await h.ok(["rm", "bound"]);
  });
});

describe("snapshot and restore", () => {
  it("restores a VM whose processes run on and whose files are there, while the source runs on", async () => {
    const before = Number(await sh("src", "echo written-before > /root/before; echo at-capture > /vol/f; sync; cat /tmp/count"));
    expect(await h.ok(["snapshot", "create", "src", "--name", "first"])).toBe("first\n");
    const after = await count("src");
    const restored1 = await h.run(["restore", "first", "--name", "r1"]);
    expect(restored1.stdout, restored1.stderr).toBe("r1\n");
    // What a restored VM's volume is, said on stderr whether or not it is a terminal.
    expect(restored1.stderr).toContain("private copy-on-write clones of their state at the snapshot, not the named volumes: vol at /vol");

    // The relay's warm-up run of `true` after the identity (guest/relay.c) has ended by now, and nobody's child is left a zombie.
    const leftOver = "cat /proc/[0-9]*/status | grep -c -e '^State:.*zombie' -e '^Name:.true$' || true";
    const [restored, source] = await Promise.all([sh("r1", `cat /tmp/count; sleep 1; cat /tmp/count; cat /root/before; hostname; ${leftOver}`), counting("src")]);
    const [r1a, r1b, file, hostname, left] = restored.trim().split("\n");
    expect(left).toBe("0");
    // The counter the snapshot caught (not a new one from 1), and still counting.
    expect(Number(r1a)).toBeGreaterThanOrEqual(before);
    expect(Number(r1b)).toBeGreaterThan(Number(r1a));
    expect(file).toBe("written-before");
    // Its own identity, not the source's.
    expect(hostname).toBe("r1");
    const [srcA, srcB] = source;
    expect(srcA).toBeGreaterThanOrEqual(after);
    expect(srcB).toBeGreaterThan(srcA);

    const [snap] = JSON.parse(await h.ok(["snapshot", "inspect", "first"])) as Snap[];
    expect(snap).toMatchObject({ name: "first", kind: "user", source: "src", usedBy: ["r1"] });
    // The restored VM's record names the kernel it runs, as the source's does.
    const kernelOf = async (vm: string) => (JSON.parse(await h.ok(["inspect", vm])) as { kernel?: { version: string } }[])[0]?.kernel?.version;
    const srcKernel = await kernelOf("src");
    expect(srcKernel).toMatch(/^\d+\.\d+/);
    expect(await kernelOf("r1")).toBe(srcKernel);
  });

  it("captured the named volume with the rest; the restore has a private clone of it as captured, at the same path", async () => {
    const [snap] = JSON.parse(await h.ok(["snapshot", "inspect", "first"])) as Snap[];
    expect(snap!.volumes).toEqual([{ volume: "vol", target: "/vol", readOnly: false, bytes: expect.any(Number), restoresAs: "private clone" }]);
    expect(snap!.sizes.volumes).toBeGreaterThan(0);
    expect(existsSync(join(snap!.path, "volume-0.raw"))).toBe(true);
    // Synced and read back past the page cache (drop_caches): what is compared is the disks' content, not the guests' memory.
    const fresh = "sync; echo 3 > /proc/sys/vm/drop_caches; cat /vol/f";
    await sh("src", "echo src-after > /vol/f; sync");
    expect(await sh("r1", `${fresh}; echo r1-own > /vol/f; ${fresh}`)).toBe("at-capture\nr1-own\n");
    // Neither sees the other's write: the source's is on the volume, the restore's on its clone; the volume's user is src alone.
    expect(await sh("src", fresh)).toBe("src-after\n");
    expect(JSON.parse(await h.ok(["volume", "inspect", "vol"]))).toMatchObject([{ usedBy: [{ vm: "src" }] }]);
  });

  it("gives back memory its guest frees: the RAM file shrinks once a tmpfs is emptied (free page reporting, carried through the restore)", async () => {
    const { id } = await inspect("r1");
    const held = () => statSync(ramPath(h.home, id)).blocks * 512;
    const mib = 1024 * 1024;
    await sh("r1", "mkdir -p /run/fill && mount -t tmpfs tmpfs /run/fill && dd if=/dev/zero of=/run/fill/f bs=1M count=64 2>/dev/null");
    const full = held();
    await sh("r1", "rm /run/fill/f && umount /run/fill");
    // The guest reports freed blocks 2 s after they were freed; QEMU punches them out of the file. A pass reports
    // only part of a long free list and the next comes 2 s later (mm/page_reporting.c: "all pages on an idle system
    // in about 30 seconds"): the whole test takes ~3.5 s alone, and once took more than 20 s in a full run.
    await waitFor("the freed pages to leave the RAM file", () => held() < full - 40 * mib, 60_000);
  });

  it("refuses to restore into a taken name, making nothing", async () => {
    const made = () => [...readdirSync(join(h.home, "vms")), ...readdirSync(ramDir(h.home))].sort();
    const before = made();
    const r = await h.run(["restore", "first", "--name", "src"]);
    expectError(r, "ERR_SKIFF_NAME_IN_USE", 4);
    expect(made()).toEqual(before);
    expect((await snapshots()).find((s) => s.name === "first")!.usedBy).toEqual(["r1"]);
    expect((await inspect("src")).state).toBe("running");
  });
});

describe("hibernate", () => {
  /** boot_id, then the counter twice a second apart, then the lines of `more` (one exec: each costs a round trip under TCG). */
  async function look(vm: string, more = "true"): Promise<{ boot: string; a: number; b: number; rest: string[] }> {
    const lines = (await sh(vm, `cat /proc/sys/kernel/random/boot_id /tmp/count; sleep 1; cat /tmp/count; ${more}`)).trim().split("\n");
    const [boot, a, b, ...rest] = lines;
    return { boot: boot!, a: Number(a), b: Number(b), rest };
  }

  it("ends QEMU and frees its memory; start resumes the guest where it was", async () => {
    const { id } = await inspect("r1");
    // Not synced: in the guest's memory (the page cache over its volume clone too), saved with it.
    await sh("r1", "echo kept-in-memory > /tmp/hibernated; echo parked > /vol/parked");
    const before = await look("r1");
    expect(processesOf(id).length).toBeGreaterThan(0);
    expect(existsSync(ramPath(h.home, id))).toBe(true);

    expect(await h.ok(["stop", "--hibernate", "r1"])).toBe("r1\n");
    expect(processesOf(id)).toEqual([]);
    expect(existsSync(ramPath(h.home, id))).toBe(false);
    expect(readdirSync(join(h.home, "vms", id, "hibernate")).sort()).toEqual(["mem", "state"]);
    const row = (await psAll()).find((vm) => vm.name === "r1")!;
    expect(row.state).toBe("stopped");
    expect(row.exit?.reason).toBe("hibernated");
    expect(row.hibernatedAt).toBeDefined();
    expect(await h.ok(["ps", "-a"])).toMatch(/^r1\s+hibernated /m);
    expectError(await h.run(["exec", "r1", "true"]), "ERR_SKIFF_VM_NOT_RUNNING", 4);
    // Parked a while: nothing brings it back by itself, and its clock (saved with it) falls clearly behind the host's.
    await sleep(5_000);
    expect(processesOf(id)).toEqual([]);

    expect(await h.ok(["start", "r1"])).toBe("r1\n");
    // The same boot, the counter on from where it stopped (not from 1), the file in its /tmp (never synced) still there,
    // and the clock set to the host's: unset, it would be behind by the seconds spent hibernated.
    const asked = Math.floor(Date.now() / 1000);
    const after = await look("r1", "cat /tmp/hibernated; date +%s; cat /vol/parked; sync; echo 3 > /proc/sys/vm/drop_caches; cat /vol/parked /vol/f");
    expect(after.boot).toBe(before.boot);
    expect(after.a).toBeGreaterThanOrEqual(before.b);
    expect(after.b).toBeGreaterThan(after.a);
    expect(after.rest[0]).toBe("kept-in-memory");
    expect(Number(after.rest[1])).toBeGreaterThanOrEqual(asked);
    // The volume clone came back attached as it was: the unsynced write, then the same read from the disk.
    expect(after.rest.slice(2)).toEqual(["parked", "parked", "r1-own"]);
    expect(existsSync(join(h.home, "vms", id, "hibernate"))).toBe(false);
    expect(processesOf(id).length).toBeGreaterThan(0);
    expect((await inspect("r1")).state).toBe("running");
  });

  it("start --cold boots a hibernated VM from its disk and drops the saved memory", async () => {
    const { id } = await inspect("r1");
    const [boot] = (await sh("r1", "echo on-disk > /root/synced; sync; cat /proc/sys/kernel/random/boot_id")).trim().split("\n");
    await h.ok(["stop", "--hibernate", "r1"]);
    expect(await h.ok(["start", "--cold", "r1"])).toBe("r1\n");
    // A new boot, the disk's file there, and no counter loop (the old boot's; its last value may be on disk, frozen).
    const [bootNow, synced, volume, loops] = (await sh("r1", "cat /proc/sys/kernel/random/boot_id /root/synced /vol/f; ps | grep -c '[w]hile :' || true")).trim().split("\n");
    expect(bootNow).not.toBe(boot);
    expect(synced).toBe("on-disk");
    // A cold boot mounts the volume clone as boot mounts a volume.
    expect(volume).toBe("r1-own");
    expect(loops).toBe("0");
    expect(existsSync(join(h.home, "vms", id, "hibernate"))).toBe(false);
    expect(existsSync(ramPath(h.home, id))).toBe(true);
    expect((await inspect("r1")).state).toBe("running");
  }, 240_000);
});

describe("fork", () => {
  it("makes independent clones on the private network, each with its own name, addresses and random stream", async () => {
    await sh("src", "echo from-source > /root/forked");
    const forked = await h.run(["fork", "src", "-n", "3", "--name", "c"]);
    expect(forked.stdout).toBe("c-1\nc-2\nc-3\n");
    expect(forked.code).toBe(0);
    // Every running peer on the network learnt the clones' names.
    expect(forked.stderr).not.toContain("could not update /etc/hosts");
    const clones = ["c-1", "c-2", "c-3"];
    const infos = await Promise.all(["src", ...clones].map(inspect));
    const lan = infos.map((i) => i.interfaces.find((n) => n.network === "lan")!);
    expect(new Set(lan.map((n) => n.address)).size).toBe(4);
    expect(new Set(lan.map((n) => n.mac)).size).toBe(4);
    // Every VM on lan (r1, restored from src, is one too), by name.
    const hostsLines = (await psAll())
      .flatMap((vm) => vm.interfaces.filter((n) => n.network === "lan").map((n) => `${n.address.split("/")[0]}\t${vm.name}`))
      .sort();
    expect(hostsLines.length).toBe(5);

    const seen = await Promise.all(
      clones.map((vm, i) =>
        sh(
          vm,
          [
            "hostname",
            `ip -o -4 addr show ${lan[i + 1]!.name}`,
            `cat /sys/class/net/${lan[i + 1]!.name}/address`,
            "cat /root/forked",
            "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo",
            "grep '^10\\.90\\.' /etc/hosts | sort",
          ].join("; "),
        ),
      ),
    );
    const draws: string[] = [];
    for (const [i, vm] of clones.entries()) {
      const [hostname, addr, mac, file, draw, ...hosts] = seen[i]!.trim().split("\n");
      const nic = lan[i + 1]!;
      expect(hostname).toBe(vm);
      expect(addr).toContain(`inet ${nic.address} `);
      expect(mac).toBe(nic.mac);
      expect(file).toBe("from-source");
      expect(hosts).toEqual(hostsLines);
      draws.push(draw!);
    }
    // Each clone's kernel got its own seed: no two draw the same bytes.
    expect(draws.every((d) => /^[0-9a-f]{64}$/.test(d))).toBe(true);
    expect(new Set(draws).size).toBe(3);

    // A write in one is nobody else's.
    await sh("c-1", "echo mine > /root/only-c1; sync");
    const elsewhere = await Promise.all(["src", "c-2", "c-3"].map((vm) => sh(vm, "cat /root/only-c1 2>/dev/null || echo absent")));
    expect(elsewhere).toEqual(["absent\n", "absent\n", "absent\n"]);

    // By name, over the private network, each to the next and to the source.
    const pairs = [["c-1", "c-2"], ["c-2", "c-3"], ["c-3", "c-1"], ["c-1", "src"], ["src", "c-3"]] as const;
    const pings = await Promise.all(pairs.map(([from, to]) => h.ok(["exec", from, "ping", "-c", "1", "-W", "5", to])));
    for (const out of pings) expect(out).toMatch(/1 packets received/);

    // The clones map one sealed copy of the snapshot's RAM, copy-on-write, instead of a RAM file each.
    const cloneRams = infos.slice(1).map((info) => {
      expect(existsSync(ramPath(h.home, info.id))).toBe(false);
      const qemu = processesOf(info.id);
      expect(qemu.length).toBe(1);
      return { link: readlinkSync(`/proc/${qemu[0]}/fd/11`), inode: statSync(`/proc/${qemu[0]}/fd/11`).ino };
    });
    expect(cloneRams.every((r) => r.link.startsWith("/memfd:skiff-ram"))).toBe(true);
    expect(new Set(cloneRams.map((r) => r.inode)).size).toBe(1);

    // With no RAM file, a clone's snapshot carries its RAM in the state; a VM restored from that runs on.
    await h.ok(["snapshot", "create", "c-2", "--name", "of-clone"]);
    const ofClone = (await snapshots("c-2")).find((s) => s.name === "of-clone")!;
    expect(ofClone.sizes.mem).toBe(0);
    expect(ofClone.sizes.state).toBeGreaterThan(8 * 1024 * 1024);
    await h.ok(["restore", "of-clone", "--name", "c-2r"]);
    const [r1, r2] = await counting("c-2r");
    expect(r2).toBeGreaterThan(r1);
    expect(await sh("c-2r", "hostname; cat /root/forked")).toBe("c-2r\nfrom-source\n");
    // Hibernated, it keeps its RAM the same way, and resumes where it was.
    await h.ok(["stop", "--hibernate", "c-3"]);
    expect(processesOf(infos[3]!.id)).toEqual([]);
    await h.ok(["start", "c-3"]);
    const [h1, h2] = await counting("c-3");
    expect(h2).toBeGreaterThan(h1);
    await h.ok(["rm", "-f", "c-2r"]);
    await h.ok(["snapshot", "rm", "of-clone"]);

    const fork = (await snapshots("src")).find((s) => s.kind === "fork")!;
    expect([...fork.usedBy].sort()).toEqual(clones);
    await h.ok(["rm", "-f", ...clones]);
    // Unnamed and unused now: prune takes it, and leaves the named one r1 stands on.
    // (Stale boot snapshots in the shared cache may go with it: another build's, unused.)
    expect((await h.ok(["snapshot", "prune"])).split("\n")).toContain(fork.id.slice(0, 12));
    expect((await snapshots()).map((s) => s.name)).toEqual(["first"]);
  }, 240_000);
});

describe("pause", () => {
  it("stops the guest's clock loop, refuses exec, and lets it run on after unpause", async () => {
    const consoleLog = join((await inspect("src")).dir, "console.log");
    // Ticks go to the serial console, whose log the host can read while the guest is paused.
    const lines = Number(
      await sh(
        "src",
        "setsid sh -c 'while [ ! -e /tmp/stop-ticks ]; do t=$(date +%s); echo $t >> /tmp/clock; echo tick-$t > /dev/console; sleep 0.2; done' </dev/null >/dev/null 2>&1 & " +
          "while [ ! -s /tmp/clock ]; do sleep 0.1; done; wc -l < /tmp/clock",
      ),
    );
    const size = () => statSync(consoleLog).size;
    const grown = async (from: number) => waitFor("a tick on the console", () => size() > from);
    await grown(size());

    await sh("src", `date -s @${Math.floor(Date.now() / 1000) - 300} >/dev/null`);
    expect(await h.ok(["pause", "src"])).toBe("src\n");
    expect((await psAll()).find((vm) => vm.name === "src")!.state).toBe("paused");
    const paused = size();
    await sleep(2_000);
    expect(size()).toBe(paused);
    expectError(await h.run(["exec", "src", "true"]), "ERR_SKIFF_VM_PAUSED", 4);

    expect(await h.ok(["unpause", "src"])).toBe("src\n");
    await grown(paused);
    // The guest's clock stood still while paused (and was set 5 minutes back before): unpause set it to the host's.
    const asked = Date.now();
    const guestNow = Number(await sh("src", "date +%s"));
    expect(guestNow).toBeGreaterThanOrEqual(Math.floor(asked / 1000) - 1);
    expect(guestNow).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 1);
    expect(Number(await sh("src", "touch /tmp/stop-ticks; wc -l < /tmp/clock"))).toBeGreaterThan(lines);
    expect((await psAll()).find((vm) => vm.name === "src")!.state).toBe("running");
  });
});

describe("snapshot gc and rm", () => {
  it("gc keeps the newest and what a VM stands on; rm of a used snapshot names the VM, -f removes both", async () => {
    const usage = await diskUsage();
    expect(await h.ok(["snapshot", "create", "src", "--name", "second"])).toBe("second\n");
    expect(await h.ok(["snapshot", "create", "src", "--name", "third"])).toBe("third\n");
    const three = await snapshots("src");
    expect(three.map((s) => s.name)).toEqual(["first", "second", "third"]);
    // system df counts the two new ones, with at least the RAM, state and disk each holds.
    const grown = await diskUsage();
    expect(grown.count - usage.count).toBe(2);
    const added = three.slice(1).reduce((sum, s) => sum + s.sizes.mem + s.sizes.state + s.sizes.disk, 0);
    expect(grown.bytes - usage.bytes).toBeGreaterThanOrEqual(added);
    // first is older, but r1's disk stands on it.
    expect(await h.ok(["snapshot", "gc", "src", "--keep", "1"])).toBe("second\n");
    expect((await snapshots("src")).map((s) => s.name)).toEqual(["first", "third"]);

    const refused = await h.run(["snapshot", "rm", "first"]);
    expectError(refused, "ERR_SKIFF_SNAPSHOT_IN_USE", 4);
    expect(refused.stderr).toContain("r1");
    const { id } = await inspect("r1");
    const firstPath = three[0]!.path;
    expect(existsSync(join(firstPath, "volume-0.raw"))).toBe(true);
    expect(await h.ok(["snapshot", "rm", "-f", "first"])).toBe("first\n");
    expect(existsSync(firstPath)).toBe(false);
    expect(await h.ok(["ps", "-a", "-q"])).not.toMatch(/^r1$/m);
    expect(processesOf(id)).toEqual([]);
    expect(existsSync(ramPath(h.home, id))).toBe(false);
    expect((await snapshots()).map((s) => s.name)).toEqual(["third"]);
  });
});

describe("a capture killed half-way", () => {
  it("killed with the guest paused: the next command resumes it and sweeps the staging", async () => {
    const before = (await snapshots()).length;
    const killed = await h.run(["snapshot", "create", "src"], { env: { SKIFF_TEST_CRASH_AT: "snapshot:paused" } });
    expect(killed.code).toBe(137);
    // Left paused (exec does not reconcile), with its staging.
    expectError(await h.run(["exec", "src", "true"]), "ERR_SKIFF_VM_PAUSED", 4);
    expect(stagingLeft().length).toBe(1);

    const ps = await h.run(["ps"]);
    expect(ps.code).toBe(0);
    expect(ps.stdout).toMatch(/^src\s+running /m);
    expect(ps.stderr).toContain("src resumed");
    expect(stagingLeft()).toEqual([]);
    const [a, b] = await counting("src");
    expect(b).toBeGreaterThan(a);
    expect((await snapshots()).length).toBe(before);
  });

  it("killed once captured: the guest runs, and the staging is swept", async () => {
    const before = (await snapshots()).length;
    const killed = await h.run(["snapshot", "create", "src"], { env: { SKIFF_TEST_CRASH_AT: "snapshot:captured" } });
    expect(killed.code).toBe(137);
    expect(stagingLeft().length).toBe(1);
    expect(await h.ok(["ps"])).toMatch(/^src\s+running /m);
    expect(stagingLeft()).toEqual([]);
    expect(await h.ok(["exec", "src", "echo", "alive"])).toBe("alive\n");
    expect((await snapshots()).length).toBe(before);
  });
});

describe("boot snapshots", () => {
  it("the second VM of an image and machine starts from the first one's boot snapshot; --cold and a changed input boot", async () => {
    // An environment of this run's own makes a combination no other home in the shared cache has.
    const env = ["-e", `BOOT_TEST=${process.pid}-${Date.now()}`];
    const boots = async (): Promise<Snap[]> =>
      (JSON.parse(await h.ok(["snapshot", "ls", "--json"])) as Snap[]).filter((s) => s.kind === "boot" && s.source.startsWith("boot-"));
    const snapshotOf = async (vm: string): Promise<string | undefined> => ((await inspect(vm)) as Info & { snapshot?: string }).snapshot;
    try {
      await h.ok(["run", "-d", "--name", "boot-1", ...env, "base"]);
      expect(await snapshotOf("boot-1")).toBeUndefined();
      const [first] = await boots();
      expect(first?.source).toBe("boot-1");

      await h.ok(["run", "-d", "--name", "boot-2", ...env, "base"]);
      expect(await snapshotOf("boot-2")).toBe(first!.id);
      expect((await sh("boot-2", "hostname; echo $BOOT_TEST")).split("\n")[0]).toBe("boot-2");
      // (SKIFF_GUEST_DEBUG=1 stamps each step: `skiff: [2.809] ready`.)
      expect(await h.ok(["logs", "boot-2"])).toMatch(/skiff: (\[[\d.]+\] )?ready/);

      // `run` stands the VM on the boot snapshot as it creates it; killed before the start, the VM's first start resumes from it.
      const killed = await h.run(["run", "-d", "--name", "boot-5", ...env, "base"], { env: { SKIFF_TEST_CRASH_AT: "run:created" } });
      expect(killed.code).not.toBe(0);
      expect(await snapshotOf("boot-5")).toBe(first!.id);
      expect((await inspect("boot-5")).state).toBe("created");
      await h.ok(["start", "boot-5"]);
      expect((await sh("boot-5", "hostname; cat /proc/uptime")).split("\n")[0]).toBe("boot-5");
      expect(await h.ok(["logs", "boot-5"])).toContain("skiff: new identity: boot-5");

      // It counts the VMs that stand on it (any home's: the cache is shared); a VM removed is one less.
      const usersOf = (path: string) => readdirSync(join(path, "users")).length;
      expect(usersOf(first!.path)).toBe(2);
      await h.ok(["rm", "-f", "boot-5"]);
      expect(usersOf(first!.path)).toBe(1);
      // One this host cannot restore (another skiff made it) and nothing stands on goes with `snapshot prune`; the used one stays.
      const staleId = createHash("sha256").update(`stale-${process.pid}`).digest("hex");
      const stale = join(dirname(first!.path), staleId);
      mkdirSync(join(stale, "users"), { recursive: true });
      const record = JSON.parse(readFileSync(join(first!.path, "snapshot.json"), "utf8")) as { id: string; versions: { skiff: string } };
      writeFileSync(join(stale, "snapshot.json"), JSON.stringify({ ...record, id: staleId, versions: { ...record.versions, skiff: "0.0.1+stale" } }));
      expect((await h.ok(["snapshot", "prune"])).split("\n")).toContain(staleId.slice(0, 12));
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(first!.path)).toBe(true);

      await h.ok(["run", "-d", "--cold", "--name", "boot-3", ...env, "base"]);
      expect(await snapshotOf("boot-3")).toBeUndefined();

      // Another memory size is another machine: it boots, and makes a boot snapshot of its own.
      await h.ok(["run", "-d", "--name", "boot-4", "-m", "192m", ...env, "base"]);
      expect(await snapshotOf("boot-4")).toBeUndefined();
      expect((await boots()).map((s) => s.source).sort()).toEqual(["boot-1", "boot-4"]);
    } finally {
      await h.run(["rm", "-f", "boot-1", "boot-2", "boot-3", "boot-4", "boot-5"]);
      for (const s of await boots()) await h.ok(["snapshot", "rm", s.id]);
    }
  });
});
