import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { hostAccountIds, jailIdBase, jailMode } from "../../src/jail/ids.js";
import { claimJailIds, readClaims, releaseJailIds } from "../../src/jail/claims.js";
import { reapJailUid } from "../../src/jail/reap.js";
import { processesOf } from "../../src/process/procs.js";
import { jailView, toJailArgs, type JailPlan } from "../../src/jail/plan.js";
import { homeGroupName, vmGroupDirs, vmLimits } from "../../src/jail/cgroup.js";
import type { LaunchPlan } from "../../src/qemu/plan.js";
import { errorOf } from "./fixtures/errors.js";
import { launchDir, launchPlan } from "./fixtures/launch-plan.js";

const dir = launchDir;

function launch(overrides: Partial<LaunchPlan> = {}): LaunchPlan {
  return launchPlan({
    cpus: 2,
    memoryMiB: 512,
    network: { mode: "user", restrict: true, forwards: [] },
    nics: [
      { netdevId: "net1", mac: "52:54:00:00:00:01", backend: { kind: "tap", ifname: "sk0123456789ab0", bridge: "skb-lan", fd: 3 } },
      { netdevId: "net2", mac: "52:54:00:00:00:02", backend: { kind: "unix-dgram", localPath: "/h/networks/w/end-0.sock", remotePath: "/h/networks/w/end-1.sock" } },
    ],
    mounts: [
      { kind: "9p", tag: "skiff0", hostPath: "/home/me/src", target: "/src", readOnly: false },
      { kind: "disk", serial: "skiff-vol0", diskPath: "/var/lib/skiff/volumes/data/disk.ext4", target: "/data", readOnly: false },
      { kind: "9p", tag: "skiff1", hostPath: "/etc/app", target: "/app", readOnly: true },
    ],
    ...overrides,
  });
}

describe("jailView", () => {
  it("exposes exactly the files QEMU's argv names, writable only where QEMU writes", () => {
    const view = jailView(launch(), { runDir: `${dir}/run`, backingFiles: ["/var/lib/skiff/cache/images/sha256-x.ext4"], kvm: false });
    expect(view).toEqual({
      readOnly: ["/var/lib/skiff/cache/kernels/6.1/vmlinux", `${dir}/initrd.img`, "/var/lib/skiff/cache/images/sha256-x.ext4"],
      readWrite: [`${dir}/run`, `${dir}/overlay.qcow2`, "/var/lib/skiff/volumes/data/disk.ext4", "/h/networks/w"],
      shares: [
        { path: "/home/me/src", readOnly: false },
        { path: "/etc/app", readOnly: true },
      ],
      devices: ["null", "zero", "full", "random", "urandom"],
      taps: [{ ifname: "sk0123456789ab0", bridge: "skb-lan", fd: 3 }],
      // Written by the jailer's relay from QEMU's pipe: outside the jail.
      consoleLog: `${dir}/console.log`,
    });
  });

  it("adds /dev/kvm under KVM and a cloud image's seed read-only, without a kernel or initrd it never boots", () => {
    const view = jailView(launch({ cloud: { seedPath: `${dir}/seed.iso`, sshPort: 2222 }, nics: [], mounts: [] }), {
      runDir: `${dir}/run`,
      backingFiles: [],
      kvm: true,
    });
    expect(view.devices).toContain("kvm");
    expect(view.readOnly).toContain(`${dir}/seed.iso`);
    expect(view.readOnly.some((f) => f.endsWith("initrd.img") || f.includes("vmlinu"))).toBe(false);
  });
});

describe("toJailArgs", () => {
  const view = jailView(launch(), { runDir: `${dir}/run`, backingFiles: [], kvm: false });
  const base: JailPlan = {
    ...view,
    jailerPath: "/x/skiff-jail",
    mode: "root",
    ids: { uid: 1_600_000_007, gid: 1_600_000_007 },
    groups: [1_600_000_000],
    shareOwners: new Map([
      ["/home/me/src", { uid: 1000, gid: 1000 }],
      ["/etc/app", { uid: 0, gid: 0 }],
    ]),
    cgroups: ["/sys/fs/cgroup/skiff-x/vm-0123456789ab"],
    rootDir: `${dir}/jail`,
    log: `${dir}/qemu.stderr`,
    waitSocket: `${dir}/run/qmp.sock`,
  };

  it("as root: a user, the shared group, the cgroup, TAPs by descriptor, idmapped shares as their owners", () => {
    expect(toJailArgs(base, ["/usr/bin/qemu-system-x86_64", "-m", "512M"]).join(" ")).toBe(
      [
        "--uid 1600000007 --gid 1600000007 --groups 1600000000",
        "--cgroup /sys/fs/cgroup/skiff-x/vm-0123456789ab",
        "--tap sk0123456789ab0:skb-lan:3",
        `--root ${dir}/jail --log ${dir}/qemu.stderr --log-limit 8388608 --console-log ${dir}/console.log --console-fd 12 --wait ${dir}/run/qmp.sock`,
        `--ro /var/lib/skiff/cache/kernels/6.1/vmlinux --ro ${dir}/initrd.img`,
        `--rw ${dir}/run --rw ${dir}/overlay.qcow2 --rw /var/lib/skiff/volumes/data/disk.ext4 --rw /h/networks/w`,
        "--idmap /home/me/src:1000:1000 --idmap-ro /etc/app:0:0",
        "--dev null --dev zero --dev full --dev random --dev urandom",
        "-- /usr/bin/qemu-system-x86_64 -m 512M",
      ].join(" "),
    );
  });

  it("without root: a user namespace, shares bound as they are", () => {
    const args = toJailArgs({ ...base, mode: "rootless", taps: [] }, ["/q"]);
    expect(args[0]).toBe("--rootless");
    expect(args).not.toContain("--uid");
    expect(args.join(" ")).toContain("--rw /home/me/src --ro /etc/app");
  });

  it("off: only the TAPs and the detaching", () => {
    expect(toJailArgs({ ...base, mode: "off" }, ["/q"]).join(" ")).toBe(
      `--unjailed --tap sk0123456789ab0:skb-lan:3 --log ${dir}/qemu.stderr --log-limit 8388608 --console-log ${dir}/console.log --console-fd 12 --wait ${dir}/run/qmp.sock -- /q`,
    );
  });

  it("keeps CAP_NET_BIND_SERVICE, and only as root, for a published port below 1024", () => {
    expect(toJailArgs({ ...base, bindLowPorts: true }, ["/q"])).toContain("--bind-low-ports");
    expect(toJailArgs(base, ["/q"])).not.toContain("--bind-low-ports");
    expect(toJailArgs({ ...base, mode: "rootless", taps: [], bindLowPorts: true }, ["/q"])).not.toContain("--bind-low-ports");
  });

  it("keeps a supervisor for restart policies", () => {
    expect(toJailArgs({ ...base, supervise: { policy: "on-failure", status: `${dir}/supervisor.log` } }, ["/q"]).join(" ")).toContain(
      `--supervise on-failure --status ${dir}/supervisor.log -- /q`,
    );
  });

  it("refuses paths with '..', relative paths and shares of unknown owners", () => {
    expect(errorOf(() => toJailArgs({ ...base, readOnly: ["/a/../etc/shadow"] }, ["/q"])).code).toBe("ERR_SKIFF_BAD_PATH");
    expect(errorOf(() => toJailArgs({ ...base, readWrite: ["relative"] }, ["/q"])).code).toBe("ERR_SKIFF_BAD_PATH");
    expect(errorOf(() => toJailArgs({ ...base, shareOwners: new Map() }, ["/q"])).code).toBe("ERR_SKIFF_INTERNAL");
  });
});

describe("jail ids", () => {
  it("never hands out an id a host account has, and reads the block from SKIFF_JAIL_ID_BASE", () => {
    expect(hostAccountIds("root:x:0:0::/root:/bin/sh\nbob:x:1600000001:100::/h:/bin/sh\n", "g:x:1600000002:\n")).toEqual(new Set([0, 1_600_000_001, 1_600_000_002]));
    expect(jailIdBase({})).toBe(1_600_000_000);
    expect(jailIdBase({ SKIFF_JAIL_ID_BASE: "2000000" })).toBe(2_000_000);
    expect(errorOf(() => jailIdBase({ SKIFF_JAIL_ID_BASE: "12" })).code).toBe("ERR_SKIFF_USAGE");
  });

  it("jails as root, in a user namespace otherwise, and not at all when switched off", () => {
    expect(jailMode({}, 0)).toBe("root");
    expect(jailMode({}, 1000)).toBe("rootless");
    expect(jailMode({ SKIFF_JAIL: "off" }, 0)).toBe("off");
  });
});

describe("jail claims", () => {
  const homes: string[] = [];
  const registry = process.env.SKIFF_JAIL_REGISTRY;
  beforeEach(() => {
    // A registry of this test's own: other test files claim uids at the same time.
    process.env.SKIFF_JAIL_REGISTRY = mkdtempSync(join(tmpdir(), "claims-registry-"));
  });
  afterEach(() => {
    for (const h of homes.splice(0)) rmSync(h, { recursive: true, force: true });
    rmSync(process.env.SKIFF_JAIL_REGISTRY!, { recursive: true, force: true });
    process.env.SKIFF_JAIL_REGISTRY = registry;
  });
  const home = (...vms: string[]) => {
    const h = mkdtempSync(join(tmpdir(), "claims-"));
    for (const vm of vms) mkdirSync(join(h, "vms", vm), { recursive: true });
    homes.push(h);
    return h;
  };

  it("gives each VM on the host its own uid, across homes, and takes back the uids of VMs that are gone", async () => {
    const a = home("aaaaaaaaaaaa", "bbbbbbbbbbbb");
    const b = home("cccccccccccc");
    const reaped: number[] = [];
    const reap = async (uid: number) => (reaped.push(uid), true);
    const first = await claimJailIds(a, "aaaaaaaaaaaa", reap);
    const second = await claimJailIds(a, "bbbbbbbbbbbb", reap);
    const third = await claimJailIds(b, "cccccccccccc", reap);
    expect(new Set([first.uid, second.uid, third.uid]).size).toBe(3);
    // Home b is removed with rm -rf, as tests do: its uid is stale, reaped and handed out again.
    rmSync(b, { recursive: true, force: true });
    const c = home("dddddddddddd");
    const fourth = await claimJailIds(c, "dddddddddddd", reap);
    expect(reaped).toEqual([third.uid]);
    expect(fourth.uid).toBe(third.uid);
    await releaseJailIds(a, "aaaaaaaaaaaa", first.uid);
    // Releasing another VM's uid does nothing.
    await releaseJailIds(a, "aaaaaaaaaaaa", second.uid);
    expect((await readClaims()).map((c) => c.uid).sort()).toEqual([second.uid, fourth.uid].sort());
    await releaseJailIds(a, "bbbbbbbbbbbb", second.uid);
    await releaseJailIds(c, "dddddddddddd", fourth.uid);
  });

  it("releases a VM's claim by its id when its config (and so its uid) was never written", async () => {
    const a = home("aaaaaaaaaaaa", "bbbbbbbbbbbb");
    const mine = await claimJailIds(a, "aaaaaaaaaaaa", async () => true);
    const other = await claimJailIds(a, "bbbbbbbbbbbb", async () => true);
    await releaseJailIds(a, "aaaaaaaaaaaa");
    expect((await readClaims()).map((c) => c.uid)).toEqual([other.uid]);
    expect(mine.uid).not.toBe(other.uid);
    await releaseJailIds(a, "bbbbbbbbbbbb");
    expect(await readClaims()).toEqual([]);
  });

  it("never hands out a uid something still runs as, claimed by a VM that is gone or not claimed at all", async () => {
    if (process.getuid?.() !== 0) return;
    // A block of this test's own, so no other process on the host has these uids.
    const saved = process.env.SKIFF_JAIL_ID_BASE;
    process.env.SKIFF_JAIL_ID_BASE = "3100000000";
    const base = jailIdBase();
    // A removed VM's QEMU still exiting: a real process running as the block's first uid, with no claim.
    const stray = spawn("setpriv", [`--reuid=${base + 1}`, `--regid=${base + 1}`, "--clear-groups", "sleep", "60"], { stdio: "ignore" });
    try {
      await vi.waitFor(() => expect(processesOf(base + 1)).toHaveLength(1));
      const a = home("aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc");
      const asked: number[] = [];
      // A reap that cannot end it (it would not die in time): the uid is skipped.
      const first = await claimJailIds(a, "aaaaaaaaaaaa", async (uid) => (asked.push(uid), false));
      expect(asked).toEqual([base + 1]);
      expect(first.uid).toBe(base + 2);
      // A stale claim whose processes would not end keeps its uid taken.
      rmSync(join(a, "vms", "aaaaaaaaaaaa"), { recursive: true });
      const second = await claimJailIds(a, "bbbbbbbbbbbb", async () => false);
      expect(second.uid).toBe(base + 3);
      expect((await readClaims()).map((c) => c.uid).sort()).toEqual([base + 2, base + 3]);
      // A reap that ends them frees both.
      const third = await claimJailIds(a, "cccccccccccc", (uid) => reapJailUid(uid));
      expect(third.uid).toBe(base + 1);
      expect(processesOf(base + 1)).toEqual([]);
      expect((await readClaims()).map((c) => c.uid).sort()).toEqual([base + 1, base + 3]);
    } finally {
      stray.kill("SIGKILL");
      if (saved === undefined) delete process.env.SKIFF_JAIL_ID_BASE;
      else process.env.SKIFF_JAIL_ID_BASE = saved;
    }
  });

  it("treats an unreadable claim as stale", async () => {
    const a = home("aaaaaaaaaaaa");
    const first = await claimJailIds(a, "aaaaaaaaaaaa", async () => true);
    writeFileSync(join(process.env.SKIFF_JAIL_REGISTRY!, "jail-ids", `${first.uid + 1}.json`), "garbage");
    const second = await claimJailIds(a, "aaaaaaaaaaaa", async () => true);
    expect(second.uid).toBe(first.uid + 1);
  });
});

describe("cgroup limits", () => {
  it("gives QEMU the guest's memory plus TCG's translation cache and its own overhead, and half a core beside the vCPUs", () => {
    expect(vmLimits({ memoryMiB: 256, cpus: 1 }, "tcg")).toEqual({ memoryBytes: (256 + 1280) * 2 ** 20, pids: 512, cpus: 1.5 });
    expect(vmLimits({ memoryMiB: 1024, cpus: 4 }, "kvm")).toEqual({ memoryBytes: (1024 + 256) * 2 ** 20, pids: 512, cpus: 4.5 });
  });

  it("keeps every VM of a home under one group named after the home", () => {
    expect(homeGroupName("/var/lib/skiff")).toMatch(/^skiff-[0-9a-f]{12}$/);
    expect(vmGroupDirs({ kind: "v2", root: "/sys/fs/cgroup" }, "/h", "0123456789ab")).toEqual([`/sys/fs/cgroup/${homeGroupName("/h")}/vm-0123456789ab`]);
    expect(vmGroupDirs({ kind: "v1", controllers: { memory: "/c/memory", pids: "/c/pids" } }, "/h", "ab")).toEqual([
      `/c/memory/${homeGroupName("/h")}/vm-ab`,
      `/c/pids/${homeGroupName("/h")}/vm-ab`,
    ]);
    expect(vmGroupDirs({ kind: "none", why: "x" }, "/h", "ab")).toEqual([]);
  });
});
