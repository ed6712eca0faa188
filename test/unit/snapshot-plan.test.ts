/**
 * What snapshots add to the pure plans: the RAM file and -incoming in
 * QEMU's argv, the RAM file in the jail, the supervisor dropping the
 * restore's arguments on restarts, and refusals naming what differs.
 */
import { describe, expect, it } from "vitest";
import { incomingArgCount, toQemuArgs } from "../../src/qemu/args.js";
import { jailView, toJailArgs, type JailPlan } from "../../src/jail/plan.js";
import { checkVersions } from "../../src/snapshot/versions.js";
import { errorOf } from "./fixtures/errors.js";
import { launchDir, launchPlan } from "./fixtures/launch-plan.js";

const dir = launchDir;
const ram = "/dev/shm/skiff-0123456789ab/0123456789ab.ram";
const launch = launchPlan;

describe("QEMU's argv with snapshots", () => {
  it("maps guest RAM from a shared file the size of -m, as the machine's memory backend", () => {
    const args = toQemuArgs(launch({ ram: { path: ram } }));
    expect(args[args.indexOf("-M") + 1]).toMatch(/^microvm,.*,memory-backend=ram$/);
    expect(args[args.indexOf("-object") + 1]).toBe(`memory-backend-file,id=ram,mem-path=${ram},size=256M,share=on`);
    expect(args[args.indexOf("-m") + 1]).toBe("256M");
  });

  it("anonymous memory without a RAM file (cloud images)", () => {
    const args = toQemuArgs(launch());
    expect(args).not.toContain("-object");
    expect(args[args.indexOf("-M") + 1]).not.toContain("memory-backend");
  });

  it("a restore waits for its state: -incoming defer, always last, as many words as the supervisor drops", () => {
    const args = toQemuArgs(launch({ ram: { path: ram }, incoming: true }));
    expect(args.slice(-incomingArgCount)).toEqual(["-incoming", "defer"]);
    expect(toQemuArgs(launch({ ram: { path: ram } }))).not.toContain("-incoming");
  });

  it("a fork's RAM: the sealed memfd it inherits, mapped privately through its own /proc", () => {
    const args = toQemuArgs(launch({ ram: { fd: 11 }, incoming: true }));
    expect(args[args.indexOf("-M") + 1]).toMatch(/,memory-backend=ram$/);
    expect(args[args.indexOf("-object") + 1]).toBe("memory-backend-file,id=ram,mem-path=/proc/self/fd/11,size=256M,share=off");
    for (const fd of [2, 65, 3.5]) expect(errorOf(() => toQemuArgs(launch({ ram: { fd } })))).toMatchObject({ code: "ERR_SKIFF_INTERNAL" });
  });

  it("refuses a RAM file path QEMU would misread", () => {
    expect(errorOf(() => toQemuArgs(launch({ ram: { path: "shm/x.ram" } })))).toMatchObject({ code: "ERR_SKIFF_BAD_PATH" });
  });
});

describe("the jail with snapshots", () => {
  it("binds the RAM file writable, and tells the supervisor to drop the restore's arguments on restarts", () => {
    const view = jailView(launch({ ram: { path: ram }, incoming: true }), { runDir: `${dir}/run`, backingFiles: [], kvm: false });
    expect(view.readWrite).toContain(ram);
    const plan: JailPlan = {
      ...view,
      jailerPath: "/x/skiff-jail",
      mode: "root",
      ids: { uid: 1_600_000_007, gid: 1_600_000_007 },
      groups: [],
      cgroups: [],
      rootDir: `${dir}/jail`,
      log: `${dir}/qemu.stderr`,
      waitSocket: `${dir}/run/qmp.sock`,
      supervise: { policy: "always", status: `${dir}/supervisor.log`, firstOnly: incomingArgCount },
    };
    expect(toJailArgs(plan, ["/usr/bin/qemu-system-x86_64"]).join(" ")).toContain(`--supervise always --status ${dir}/supervisor.log --first-only 2 --`);
  });

  it("hands a fork's shared RAM through as a descriptor: nothing bound, --ram-fd in every mode", () => {
    const view = jailView(launch({ ram: { fd: 11 }, incoming: true }), { runDir: `${dir}/run`, backingFiles: [], kvm: false });
    expect(view.ramFd).toBe(11);
    expect(view.readWrite.some((p) => p.includes("/proc/"))).toBe(false);
    const common = { ...view, jailerPath: "/x/skiff-jail", groups: [], cgroups: [], rootDir: `${dir}/jail`, log: `${dir}/qemu.stderr`, waitSocket: `${dir}/run/qmp.sock` };
    const root: JailPlan = { ...common, mode: "root", ids: { uid: 1_600_000_007, gid: 1_600_000_007 } };
    for (const plan of [root, { ...common, mode: "rootless" as const }, { ...common, mode: "off" as const }]) {
      expect(toJailArgs(plan, ["/q"]).slice(0, 2)).toEqual(["--ram-fd", "11"]);
    }
    expect(jailView(launch({ ram: { path: ram } }), { runDir: `${dir}/run`, backingFiles: [], kvm: false }).ramFd).toBeUndefined();
  });
});

describe("checkVersions", () => {
  const here = { format: 2, qemu: "8.0.0", kernel: "/k@1:2", skiff: "0.1.0+abc" };
  it("passes the same versions", () => {
    expect(() => checkVersions("snapshot x", here, here, "h")).not.toThrow();
  });
  it.each([
    ["qemu", "QEMU"],
    ["kernel", "guest kernel"],
    ["skiff", "skiff"],
  ] as const)("names a %s that differs", (key, words) => {
    const err = errorOf(() => checkVersions("snapshot x", { ...here, [key]: "other" }, here, "take a new one"));
    expect(err).toMatchObject({ code: "ERR_SKIFF_SNAPSHOT_MISMATCH", hint: "take a new one", details: { mismatch: key } });
    expect(err.message).toContain(`another ${words} (other; this host has ${here[key]})`);
  });
});
