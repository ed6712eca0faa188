/**
 * A run finds its boot snapshot through `.boot-keys/KEY` (src/snapshot/boot.ts:
 * findBootSnapshot); the entry is only a hint, checked against the snapshot's
 * own record, and made, fixed or removed by the lookup that reads every record.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { findBootSnapshot } from "../../src/snapshot/boot.js";
import { writeSnapshotRecord, type SnapshotRecord } from "../../src/snapshot/store.js";
import { machineSpec } from "./fixtures/spec.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

let home: string;
let cleanup: () => Promise<void>;
let places: { home: string; cacheDir: string };

beforeEach(async () => {
  ({ home, cleanup } = await makeTempHome("skiff-bootkeys-"));
  places = { home, cacheDir: join(home, "cache") };
});
afterEach(() => cleanup());

const id = (c: string) => c.repeat(64);
const keysDir = () => join(places.cacheDir, "snapshots", ".boot-keys");

async function bootSnapshot(idChar: string, key: string): Promise<void> {
  const dir = join(places.cacheDir, "snapshots", id(idChar));
  mkdirSync(dir, { recursive: true });
  const record: SnapshotRecord = {
    id: id(idChar),
    kind: "boot",
    createdAt: new Date().toISOString(),
    source: { id: "0123456789ab", name: "src" },
    spec: machineSpec("src"),
    image: { digest: "sha256:abc", basePath: "/base.qcow2" },
    kernelPath: "/vmlinuz",
    versions: { format: 4, qemu: "QEMU emulator version 7.2.0", kernel: "/vmlinuz@1:2", skiff: "0.1.0+abc" },
    sizes: { mem: 1, state: 1, disk: 1 },
    bootKey: key,
  };
  await writeSnapshotRecord(dir, record);
}

describe("finding a boot snapshot by its key", () => {
  it("reads every record the first time and notes the key; finds it through the note after", async () => {
    await bootSnapshot("a", "key-a");
    await bootSnapshot("b", "key-b");
    expect((await findBootSnapshot(places, "key-b"))?.id).toBe(id("b"));
    expect(readFileSync(join(keysDir(), "key-b"), "utf8")).toBe(`${id("b")}\n`);
    expect((await findBootSnapshot(places, "key-b"))?.id).toBe(id("b"));
    expect(await findBootSnapshot(places, "key-c")).toBeUndefined();
    expect(existsSync(join(keysDir(), "key-c"))).toBe(false);
  });

  it("a note naming another snapshot is not believed, and is put right", async () => {
    await bootSnapshot("a", "key-a");
    await bootSnapshot("b", "key-b");
    mkdirSync(keysDir(), { recursive: true });
    writeFileSync(join(keysDir(), "key-b"), `${id("a")}\n`);
    expect((await findBootSnapshot(places, "key-b"))?.id).toBe(id("b"));
    expect(readFileSync(join(keysDir(), "key-b"), "utf8")).toBe(`${id("b")}\n`);
    writeFileSync(join(keysDir(), "key-a"), "../../../etc\n");
    expect((await findBootSnapshot(places, "key-a"))?.id).toBe(id("a"));
  });

  it("a note whose snapshot was removed finds nothing, and goes", async () => {
    await bootSnapshot("a", "key-a");
    expect((await findBootSnapshot(places, "key-a"))?.id).toBe(id("a"));
    rmSync(join(places.cacheDir, "snapshots", id("a")), { recursive: true });
    expect(await findBootSnapshot(places, "key-a")).toBeUndefined();
    expect(existsSync(join(keysDir(), "key-a"))).toBe(false);
  });
});

describe("system df", () => {
  it("counts snapshots, not the boot snapshots' key notes or a capture's staging, whose bytes it still counts", async () => {
    const { diskUsage } = await import("../../src/engine/images.js");
    const { defaultRunner } = await import("../../src/process/runner.js");
    await bootSnapshot("a", "key-a");
    await findBootSnapshot(places, "key-a");
    mkdirSync(join(places.cacheDir, "snapshots", ".staging-1-abcd"));
    writeFileSync(join(places.cacheDir, "snapshots", ".staging-1-abcd", "mem"), Buffer.alloc(8192, 1));
    const usage = await diskUsage({ ...places, runner: defaultRunner, vms: () => Promise.resolve([]) });
    expect(usage.snapshots.count).toBe(1);
    expect(usage.snapshots.bytes).toBeGreaterThanOrEqual(8192);
  });
});
