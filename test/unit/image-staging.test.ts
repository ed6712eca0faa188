/**
 * The image cache's staging sweep on a cache laid out by hand: what a dead
 * owner left goes, what a live owner (a held lock, a running writer) has
 * stays, and anything that is not staging is never touched.
 */
import { spawnSync } from "node:child_process";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { currentProcess } from "../../src/process/pid.js";
import { ingestDir, ingestWriter } from "../../src/image/registry/blob-store.js";
import { measureImageStaging, sweepImageStaging } from "../../src/image/staging.js";
import { importLockName, lockNameFor } from "../../src/image/unpack/build.js";
import { acquireLock, lockFileNames, type LockHandle } from "../../src/store/lock.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

const hexA = "a".repeat(64);
const hexB = "b".repeat(64);

let cache: string;
let cleanup: () => Promise<void>;
let held: LockHandle[];
beforeEach(async () => {
  ({ home: cache, cleanup } = await makeTempHome());
  held = [];
});
afterEach(async () => {
  for (const lock of held) await lock.release();
  await cleanup();
});

async function file(path: string, bytes = 8192): Promise<void> {
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, Buffer.alloc(bytes, 1));
}

async function names(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

describe("image staging", () => {
  it("removes what dead owners left, keeps what live ones have, and counts both", async () => {
    const me = currentProcess();
    const dead = spawnSync("true").pid!;
    const tmp = join(cache, "tmp");
    const images = join(cache, "images");
    // A killed build of A (its lock free), a running build of B (its lock held).
    await file(join(tmp, `unpack-${hexA}-x1`, "data", "f"), 65536);
    await file(join(tmp, `unpack-${hexA}-x1.debugfs`));
    await file(join(images, `.image-build-${hexA}-0a0a.ext4`));
    await file(join(tmp, `unpack-${hexB}-y2`, "f"));
    await file(join(images, `.image-build-${hexB}-0b0b.ext4`));
    held.push(await acquireLock(lockNameFor(`sha256:${hexB}`), { home: cache }));
    // Decompressed archives of a killed import and of a running one.
    await file(join(tmp, "import-0c0c.tar"));
    await file(join(tmp, "import-0d0d.tar"));
    held.push(await acquireLock(importLockName("0d0d"), { home: cache }));
    // Downloads: of a dead writer, of this live one, of an older skiff (pid only) that died.
    await file(join(ingestDir(cache), `${hexA}-${dead}-${me.startTime}-0e0e0e0e`));
    await file(join(ingestDir(cache), `${hexB}-${me.pid}-${me.startTime}-0f0f0f0f`));
    await file(join(ingestDir(cache), `${hexB}-${dead}-01010101`));
    // Not staging: a base, its record, a file of unknown origin.
    await file(join(images, `sha256-${hexA}.ext4`));
    await file(join(images, `sha256-${hexA}.json`));
    await file(join(tmp, "bootstrap-1234.tar"));

    const usage = await measureImageStaging(cache);
    expect(usage).toMatchObject({ count: 10, reclaimableCount: 6 });
    expect(usage.reclaimableBytes).toBeGreaterThanOrEqual(65536 + 5 * 8192);

    const swept = await sweepImageStaging(cache);
    expect(swept.removed).toHaveLength(6);
    expect(swept.bytes).toBe(usage.reclaimableBytes);
    expect(await names(tmp)).toEqual(["bootstrap-1234.tar", "import-0d0d.tar", `unpack-${hexB}-y2`]);
    expect(await names(images)).toEqual([`.image-build-${hexB}-0b0b.ext4`, `sha256-${hexA}.ext4`, `sha256-${hexA}.json`]);
    expect(await names(ingestDir(cache))).toEqual([`${hexB}-${me.pid}-${me.startTime}-0f0f0f0f`]);
    // The killed import's lock file went with it; the live one's stays.
    expect((await lockFileNames(cache)).filter((n) => n.startsWith("image-import-"))).toEqual([importLockName("0d0d")]);
    expect(await measureImageStaging(cache)).toMatchObject({ count: 4, reclaimableCount: 0, reclaimableBytes: 0 });
  });

  it("reads the writer of a download from its temp file's name", () => {
    expect(ingestWriter(`${hexA}-123-456-0a0b0c0d`)).toEqual({ pid: 123, startTime: 456 });
    expect(ingestWriter(`${hexA}-123-0a0b0c0d`)).toEqual({ pid: 123 });
    expect(ingestWriter(hexA)).toBeUndefined();
    expect(ingestWriter(`${hexA}-x-0a0b0c0d`)).toBeUndefined();
  });
});
