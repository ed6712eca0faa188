/**
 * Staging in the image cache: what an image build, import or pull writes
 * before its commit (a rename), which a killed one leaves behind. This
 * module knows every kind, where it lives and whose it is; the sweep
 * removes those whose owner is gone, and `system df` counts them.
 *
 * | where (under the cache)                  | what                                   | whose                                 |
 * | ---------------------------------------- | -------------------------------------- | ------------------------------------- |
 * | `tmp/unpack-<hex>-*` (+ `.debugfs`)      | an image's unpacked tree               | the build holding lock `image-<hex>`  |
 * | `images/.image-build-<hex>-*.ext4`       | its ext4 before the rename             | the same                              |
 * | `tmp/image-base/`, `images/.base-build-*`| the built-in base's build              | lock `image-base`                     |
 * | `tmp/import-<id>.tar`                    | a compressed image archive, unpacked   | lock `image-import-<id>`              |
 * | `blobs/.ingest/<hex>-<pid>-<start>-<r>`  | a blob being downloaded                | process pid + start time              |
 *
 * A lock tells a live owner from a dead one by itself: the kernel drops it
 * with its holder, so a lock that can be taken has no owner. Downloads, many
 * and short, carry their writer's identity in the name instead of a lock
 * file each. The sweep takes each owner's lock (never waiting) and removes
 * while it holds it, so it cannot remove what a build is about to use.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { processAlive } from "../process/pid.js";
import { lockFileNames, removeLockFiles, tryLock } from "../store/lock.js";
import { diskBytes, readdirOrEmpty } from "../util/fs.js";
import { baseLockName, baseScratchName, tempPrefix as baseTempPrefix } from "./base.js";
import { imagesDir } from "./cache.js";
import { ingestDir, ingestWriter } from "./registry/blob-store.js";
import { importLockName, lockNameFor, stagingPrefix as unpackPrefix, tempPrefix as buildTempPrefix } from "./unpack/build.js";

type Owner = { lock: string } | { pid: number; startTime?: number };

interface Staged {
  path: string;
  owner: Owner;
}

export interface StagingUsage {
  /** Staging entries (a directory counts once). */
  count: number;
  bytes: number;
  /** Those whose owner is gone: what the next import, pull or `image ls` removes. */
  reclaimableCount: number;
  reclaimableBytes: number;
}

const hex64 = "[0-9a-f]{64}";

/** The owner of `<cache>/tmp/<name>`; undefined for what is not an image build's, import's or pull's. */
function tmpOwner(name: string): Owner | undefined {
  const build = new RegExp(`^${unpackPrefix}(${hex64})-`).exec(name)?.[1];
  if (build !== undefined) return { lock: lockNameFor(`sha256:${build}`) };
  if (name === baseScratchName) return { lock: baseLockName };
  const id = /^import-([0-9a-f]+)\.tar$/.exec(name)?.[1];
  return id === undefined ? undefined : { lock: importLockName(id) };
}

function imagesOwner(name: string): Owner | undefined {
  const build = new RegExp(`^\\${buildTempPrefix}(${hex64})-`).exec(name)?.[1];
  if (build !== undefined) return { lock: lockNameFor(`sha256:${build}`) };
  return name.startsWith(baseTempPrefix) ? { lock: baseLockName } : undefined;
}

async function listStaged(cacheDir: string): Promise<Staged[]> {
  const tmp = join(cacheDir, "tmp");
  const places: [string, (name: string) => Owner | undefined][] = [
    [tmp, tmpOwner],
    [imagesDir(cacheDir), imagesOwner],
    [ingestDir(cacheDir), ingestWriter],
  ];
  const staged: Staged[] = [];
  for (const [dir, ownerOf] of places) {
    for (const name of await readdirOrEmpty(dir)) {
      const owner = ownerOf(name);
      if (owner !== undefined) staged.push({ path: join(dir, name), owner });
    }
  }
  return staged;
}

/**
 * Run `fn` if the owner is gone, holding its lock while `fn` runs; true if
 * it ran. Never waits: a held lock is a live owner.
 */
async function ifOwnerGone(cacheDir: string, owner: Owner, fn: () => Promise<void>): Promise<boolean> {
  if (!("lock" in owner)) {
    if (processAlive(owner.pid, owner.startTime)) return false;
    await fn();
    return true;
  }
  const lock = await tryLock(owner.lock, { home: cacheDir, purpose: "remove staging of a killed image build" });
  if (lock === undefined) return false;
  try {
    await fn();
  } finally {
    await lock.release();
  }
  return true;
}

/**
 * Remove the staging of image builds, imports and pulls whose owner is
 * gone; cheap when there is none (three directory listings). Returns the
 * paths removed and the bytes they took.
 */
export async function sweepImageStaging(cacheDir: string): Promise<{ removed: string[]; bytes: number }> {
  const removed: string[] = [];
  let bytes = 0;
  for (const entry of await listStaged(cacheDir)) {
    await ifOwnerGone(cacheDir, entry.owner, async () => {
      const size = await diskBytes(entry.path);
      await rm(entry.path, { recursive: true, force: true });
      removed.push(entry.path);
      bytes += size;
    });
  }
  // Each compressed import has a lock of its own; their files are removed once free, not left to pile up.
  removeLockFiles((await lockFileNames(cacheDir)).filter((name) => name.startsWith(importLockName(""))), { home: cacheDir });
  return { removed, bytes };
}

/** What staging there is, and how much of it the sweep would remove. */
export async function measureImageStaging(cacheDir: string): Promise<StagingUsage> {
  const usage: StagingUsage = { count: 0, bytes: 0, reclaimableCount: 0, reclaimableBytes: 0 };
  for (const entry of await listStaged(cacheDir)) {
    const size = await diskBytes(entry.path);
    usage.count++;
    usage.bytes += size;
    if (await ifOwnerGone(cacheDir, entry.owner, async () => {})) {
      usage.reclaimableCount++;
      usage.reclaimableBytes += size;
    }
  }
  return usage;
}
