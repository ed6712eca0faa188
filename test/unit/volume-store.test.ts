import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { EngineContext } from "../../src/engine/context.js";
import { checkMounts, checkSpace, checkVolumesFree, createVolume, inspectVolume, listVolumes, mountPlans, removeVolume } from "../../src/engine/volumes.js";
import { parseVolumeFlag } from "../../src/cli/machine-options.js";
import { processStartTime } from "../../src/process/pid.js";
import { defaultRunner, type Runner } from "../../src/process/runner.js";
import type { Mount } from "../../src/spec/machine.js";
import { VmStore } from "../../src/store/store.js";
import { VolumeStore } from "../../src/volume/store.js";
import { errorOf, rejectionOf } from "./fixtures/errors.js";
import { machineSpec } from "./fixtures/spec.js";
import { makeTempHome } from "./fixtures/tmp-home.js";
import { fakeQemu, type FakeQemu } from "./fixtures/fake-qemu.js";

let home: string;
let cleanup: () => Promise<void>;
let ctx: EngineContext;

function context(runner: Runner = defaultRunner): EngineContext {
  return {
    store: new VmStore({ home }),
    home,
    cacheDir: join(home, "cache"),
    runner,
    hostFacts: () => Promise.reject(new Error("no host facts in unit tests")),
    emit: () => true,
  };
}

beforeEach(async () => {
  ({ home, cleanup } = await makeTempHome("skiff-vol-"));
  ctx = context();
});
const fakes: FakeQemu[] = [];
afterEach(async () => {
  for (const f of fakes.splice(0)) await f.stop();
  await cleanup();
});

async function vmWith(name: string, mounts: Mount[], running = false) {
  const vm = await ctx.store.create(machineSpec(name, { mounts }));
  await ctx.store.commit(vm.id);
  if (running) {
    // Looks running: a live process whose command line names the VM's pidfile, as its QEMU's does.
    const qemu = await fakeQemu({ pidfile: vm.paths.pidfile });
    fakes.push(qemu);
    await ctx.store.updateState(vm.id, { qemu: { pid: qemu.pid, startTime: processStartTime(qemu.pid)! } });
  }
  return vm;
}

const mib = 2 ** 20;

describe("volume store", () => {
  it("creates a sparse ext4 disk with its record, lists and inspects it", async () => {
    const info = await createVolume(ctx, { name: "data", sizeBytes: 32 * mib, labels: { app: "db" } });
    expect(info).toMatchObject({ name: "data", sizeBytes: 32 * mib, labels: { app: "db" }, usedBy: [] });
    const disk = await stat(info.diskPath);
    expect(disk.size).toBe(32 * mib);
    expect(disk.blocks * 512).toBeLessThan(disk.size); // sparse
    const sb = Buffer.alloc(2);
    const { open } = await import("node:fs/promises");
    const fh = await open(info.diskPath, "r");
    await fh.read(sb, 0, 2, 1024 + 0x38); // ext2/3/4 superblock magic
    await fh.close();
    expect(sb.readUInt16LE(0)).toBe(0xef53);
    expect((await listVolumes(ctx)).map((v) => v.name)).toEqual(["data"]);
    expect((await inspectVolume(ctx, "data")).diskPath).toBe(info.diskPath);
  });

  it("defaults to 1 GiB, refuses bad names, tiny sizes and a taken name", async () => {
    expect((await createVolume(ctx, { name: "big" })).sizeBytes).toBe(2 ** 30);
    expect((await rejectionOf(createVolume(ctx, { name: "../x" }))).code).toBe("ERR_SKIFF_BAD_NAME");
    expect((await rejectionOf(createVolume(ctx, { name: "small", sizeBytes: mib }))).code).toBe("ERR_SKIFF_USAGE");
    expect((await rejectionOf(createVolume(ctx, { name: "big" }))).code).toBe("ERR_SKIFF_VOLUME_IN_USE");
    expect((await rejectionOf(inspectVolume(ctx, "nope"))).code).toBe("ERR_SKIFF_VOLUME_NOT_FOUND");
  });

  it("leaves nothing behind when mke2fs fails", async () => {
    const failing: Runner = { run: () => Promise.reject(new Error("mke2fs exploded")) };
    await expect(createVolume(context(failing), { name: "data", sizeBytes: 32 * mib })).rejects.toThrow(/exploded/);
    expect(await readdir(join(home, "volumes"))).toEqual([]);
    expect(await listVolumes(ctx)).toEqual([]);
  });

  it("sweeps the debris of an interrupted create", async () => {
    await mkdir(join(home, "volumes", ".new-data-0000"), { recursive: true });
    await createVolume(ctx, { name: "data", sizeBytes: 32 * mib });
    expect(await readdir(join(home, "volumes"))).toEqual(["data"]);
  });

  it("refuses to remove a volume a VM mounts; force only when that VM is not running", async () => {
    await createVolume(ctx, { name: "data", sizeBytes: 32 * mib });
    await vmWith("db", [{ kind: "volume", volume: "data", target: "/data", readOnly: false }]);
    expect((await inspectVolume(ctx, "data")).usedBy).toEqual([{ vm: "db", state: "created", hibernated: false, target: "/data", readOnly: false }]);
    const err = await rejectionOf(removeVolume(ctx, "data"));
    expect(err.code).toBe("ERR_SKIFF_VOLUME_IN_USE");
    expect(err.message).toContain("db");
    await removeVolume(ctx, "data", { force: true });
    expect(await new VolumeStore(home).find("data")).toBeUndefined();
  });

  it("never removes a volume from under a running VM, even with force", async () => {
    await createVolume(ctx, { name: "data", sizeBytes: 32 * mib });
    await vmWith("db", [{ kind: "volume", volume: "data", target: "/data", readOnly: false }], true);
    const err = await rejectionOf(removeVolume(ctx, "data", { force: true }));
    expect(err.code).toBe("ERR_SKIFF_VOLUME_IN_USE");
    expect(err.message).toContain("running VM db");
  });

  it("refuses to start a second VM on a volume a running VM holds, naming the holder", async () => {
    await createVolume(ctx, { name: "data", sizeBytes: 32 * mib });
    const mount: Mount = { kind: "volume", volume: "data", target: "/data", readOnly: false };
    await vmWith("first", [mount], true);
    const second = await vmWith("second", [mount]);
    const err = await rejectionOf(checkVolumesFree(ctx, second));
    expect(err.code).toBe("ERR_SKIFF_VOLUME_IN_USE");
    expect(err.message).toContain("running VM first");
    expect(err.place).toBe("second");
  });

  it("counts a hibernated VM as the volume's holder: its saved guest has it mounted", async () => {
    await createVolume(ctx, { name: "data", sizeBytes: 32 * mib });
    const mount: Mount = { kind: "volume", volume: "data", target: "/data", readOnly: false };
    const parked = await vmWith("parked", [mount]);
    const at = new Date().toISOString();
    await ctx.store.updateState(parked.id, { startedAt: at, exit: { at, reason: "hibernated" }, hibernated: { at, qemu: "q", kernel: "k", skiff: "s", format: 2 } });
    const second = await vmWith("second", [mount]);
    expect((await inspectVolume(ctx, "data")).usedBy[0]).toMatchObject({ vm: "parked", state: "stopped", hibernated: true });
    const err = await rejectionOf(checkVolumesFree(ctx, second));
    expect(err).toMatchObject({ code: "ERR_SKIFF_VOLUME_IN_USE", place: "second" });
    expect(err.message).toContain("hibernated VM parked");
    expect(err.hint).toContain("start --cold parked");
  });
});

describe("volume sizes", () => {
  it("refuses a volume larger than the filesystem under it, at sizeBytes with the limit, and leaves nothing", async () => {
    const err = await rejectionOf(createVolume(ctx, { name: "huge", sizeBytes: 100 * 2 ** 40 }));
    expect(err).toMatchObject({ code: "ERR_SKIFF_USAGE", place: "sizeBytes" });
    expect(err.message).toMatch(/^a volume of 100 TiB is larger than the filesystem holding volumes \(\d/);
    expect(err.hint).toMatch(/^give at most \d/);
    expect(await listVolumes(ctx)).toEqual([]);
    expect(await readdir(join(home, "volumes"))).toEqual([]);
  });

  it("warns, and makes the volume, when it is larger than the space free now (sparse: thin provisioning)", () => {
    const warnings: string[] = [];
    const watched: EngineContext = { ...ctx, emit: (_event, e) => (warnings.push(e.message), true) };
    const record = { name: "big", sizeBytes: 50 * 2 ** 30, labels: {}, createdAt: new Date().toISOString() };
    checkSpace(watched, record, { totalBytes: 100 * 2 ** 30, freeBytes: 10 * 2 ** 30 }, "/v");
    expect(warnings).toEqual(["volume big (50 GiB) is larger than the 10 GiB free on the filesystem holding it; writes past that will fail in the guest"]);
    warnings.length = 0;
    checkSpace(watched, record, { totalBytes: 100 * 2 ** 30, freeBytes: 60 * 2 ** 30 }, "/v");
    expect(warnings).toEqual([]);
    expect(errorOf(() => checkSpace(watched, record, { totalBytes: 40 * 2 ** 30, freeBytes: 40 * 2 ** 30 }, "/v")).hint).toBe(
      "give at most 40 GiB: the volume is a sparse file in /v and can never outgrow that filesystem",
    );
  });
});

describe("mounts at create", () => {
  it("checks sources, targets and volumes, and normalises them", async () => {
    await createVolume(ctx, { name: "data", sizeBytes: 32 * mib });
    const src = join(home, "src");
    await mkdir(src);
    expect(
      await checkMounts(ctx, [
        { kind: "bind", source: src + "/", target: "/src/", readOnly: true },
        { kind: "volume", volume: "data", target: "/var/lib/data", readOnly: false },
      ]),
    ).toEqual([
      { kind: "bind", source: src + "/", target: "/src", readOnly: true },
      { kind: "volume", volume: "data", target: "/var/lib/data", readOnly: false },
    ]);
    const bad = async (m: Parameters<typeof checkMounts>[1][number]) => rejectionOf(checkMounts(ctx, [m]));
    expect(await bad({ kind: "bind", source: join(home, "nope"), target: "/x", readOnly: false, place: "-v" })).toMatchObject({ code: "ERR_SKIFF_FILE_NOT_FOUND", place: "-v" });
    await writeFile(join(home, "file"), "");
    expect((await bad({ kind: "bind", source: join(home, "file"), target: "/x", readOnly: false })).code).toBe("ERR_SKIFF_FILE_NOT_FOUND");
    expect((await bad({ kind: "bind", source: "rel", target: "/x", readOnly: false })).code).toBe("ERR_SKIFF_BAD_PATH");
    expect((await bad({ kind: "bind", source: src, target: "x", readOnly: false })).code).toBe("ERR_SKIFF_BAD_PATH");
    expect((await bad({ kind: "bind", source: src, target: "/", readOnly: false })).code).toBe("ERR_SKIFF_BAD_PATH");
    expect((await bad({ kind: "volume", volume: "nope", target: "/x", readOnly: false })).code).toBe("ERR_SKIFF_VOLUME_NOT_FOUND");
    // A volume asked for with create (-v NAME:DIR) may be missing: it is made under the lock.
    expect(await checkMounts(ctx, [{ kind: "volume", volume: "nope", target: "/x", readOnly: false, create: true }])).toHaveLength(1);
    const twice = await rejectionOf(
      checkMounts(ctx, [
        { kind: "bind", source: src, target: "/x", readOnly: false },
        { kind: "volume", volume: "data", target: "/x/", readOnly: false },
      ]),
    );
    expect(twice.code).toBe("ERR_SKIFF_USAGE");
  });

  it.each(["/dev/.skiff", "/dev/.skiff/", "/dev/.skiff/bin", "/dev/.skiff-run", "/dev", "/dev/pts", "/proc", "/sys/", "//proc", "/data/../sys"])(
    "refuses the target %j, where a mount would break skiff in the guest, at --volume",
    async (target) => {
      const src = join(home, "src");
      await mkdir(src, { recursive: true });
      const err = await rejectionOf(checkMounts(ctx, [{ kind: "bind", source: src, target, readOnly: false, place: "--volume" }]));
      expect(err).toMatchObject({ code: "ERR_SKIFF_BAD_PATH", place: "--volume" });
      expect(err.message).toMatch(/^a mount cannot be at \/\S+: /);
    },
  );

  it("allows what only looks like skiff's paths, and directories under /dev, /proc and /sys that are the user's", async () => {
    const src = join(home, "src");
    await mkdir(src);
    const targets = ["/dev/.skiffy", "/dev/shm", "/sys/fs/cgroup", "/devices", "/data/dev/.skiff"];
    const mounts = await checkMounts(
      ctx,
      targets.map((target) => ({ kind: "bind" as const, source: src, target, readOnly: false })),
    );
    expect(mounts.map((m) => m.target)).toEqual(targets);
  });

  it("plans 9p shares and disks by serial", () => {
    const mounts: Mount[] = [
      { kind: "bind", source: "/a", target: "/a", readOnly: false },
      { kind: "volume", volume: "data", target: "/d", readOnly: true },
      { kind: "bind", source: "/b", target: "/b", readOnly: true },
    ];
    expect(mountPlans({ home: "/h" }, mounts)).toEqual([
      { kind: "9p", tag: "skiff0", hostPath: "/a", target: "/a", readOnly: false },
      { kind: "disk", serial: "skiff-vol0", diskPath: "/h/volumes/data/disk.ext4", target: "/d", readOnly: true },
      { kind: "9p", tag: "skiff1", hostPath: "/b", target: "/b", readOnly: true },
    ]);
  });

  it("plans a restored VM's clones: a qcow2 overlay in its directory, or the snapshot's layer itself when read-only", () => {
    const mounts: Mount[] = [
      { kind: "clone", volume: "data", target: "/d", readOnly: false },
      { kind: "clone", volume: "logs", target: "/l", readOnly: true },
    ];
    const snapshot = {
      id: "s",
      disk: "/h/snapshots/s/disk.qcow2",
      volumes: [
        { target: "/d", layer: "/h/snapshots/s/volume-0.raw", format: "raw" as const },
        { target: "/l", layer: "/h/snapshots/s/volume-1.qcow2", format: "qcow2" as const },
      ],
    };
    expect(mountPlans({ home: "/h" }, mounts, { paths: { volumeClones: "/h/vms/x/volumes" }, snapshot })).toEqual([
      { kind: "disk", serial: "skiff-vol0", diskPath: "/h/vms/x/volumes/0.qcow2", format: "qcow2", target: "/d", readOnly: false },
      { kind: "disk", serial: "skiff-vol1", diskPath: "/h/snapshots/s/volume-1.qcow2", format: "qcow2", target: "/l", readOnly: true },
    ]);
    const err = errorOf(() => mountPlans({ home: "/h" }, mounts, { paths: { volumeClones: "/v" } }));
    expect(err.code).toBe("ERR_SKIFF_STATE_CORRUPT");
  });
});

describe("-v SRC:DST[:ro]", () => {
  it("reads host paths (/, ., ~) and volume names, with a mode", () => {
    expect(parseVolumeFlag("./src:/src", "/work", "/home/me")).toEqual({ kind: "bind", source: "/work/src", target: "/src", readOnly: false, place: "--volume" });
    expect(parseVolumeFlag("~/cfg:/etc/app:ro", "/work", "/home/me")).toMatchObject({ kind: "bind", source: "/home/me/cfg", readOnly: true });
    expect(parseVolumeFlag("/abs:/x:rw", "/work", "/home/me")).toMatchObject({ source: "/abs", readOnly: false });
    expect(parseVolumeFlag("data:/var/lib/data")).toEqual({ kind: "volume", volume: "data", target: "/var/lib/data", readOnly: false, place: "--volume", create: true });
  });

  it("refuses what it cannot read", () => {
    for (const bad of ["data", ":/x", "data:", "a:b:c:d", "a:/b:rx"]) expect(errorOf(() => parseVolumeFlag(bad)).code).toBe("ERR_SKIFF_USAGE");
  });
});
