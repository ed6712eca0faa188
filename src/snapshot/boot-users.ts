/**
 * Which VMs stand on a boot snapshot, in any home that shares the cache it
 * lives in, so that a boot snapshot nothing can use any more is removed by
 * itself. A boot snapshot is made again whenever skiff, QEMU or the kernel
 * changes, and the old one, ~80 MiB of RAM and a disk layer, stayed in the
 * cache for good (the test cache held 48 of them, 4.6 GB): a `snapshot
 * prune` sees only its own home's VMs, and a VM in another home may still
 * stand on one (its overlay's backing file is the snapshot's disk).
 *
 * Each VM that stands on one leaves an entry in the snapshot's `users/`
 * (its home and id) before its overlay is made on it, and removes it when
 * it goes. An entry counts while its VM's directory exists, so one a crash
 * left behind does not keep a snapshot forever. Snapshots made before
 * there were entries have no `users/` and are never removed this way.
 *
 * A snapshot is stale when this skiff could not restore it here (made by
 * another QEMU, kernel file or skiff: versions.ts). Stale and unused, it
 * goes: renamed aside first (so no VM can start to stand on it), its users
 * looked at again, and put back if one came meanwhile.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { writeFileAtomic } from "../store/atomic.js";
import { vmDirPresent, vmsDir } from "../store/paths.js";
import { readdirOrEmpty } from "../util/fs.js";

const usersDirName = "users";

/** Made in a boot snapshot before it is committed: the snapshot counts its users. */
export async function makeUsersDir(snapshotDir: string): Promise<void> {
  await mkdir(join(snapshotDir, usersDirName), { mode: 0o700 });
}

function entryName(home: string, vmId: string): string {
  return createHash("sha256").update(`${resolve(home)}\0${vmId}`).digest("hex").slice(0, 32);
}

/**
 * Say that VM `vmId` of `home` stands on the boot snapshot in `snapshotDir`, before it does. False when the snapshot
 * is gone (removed, or being removed as stale): the VM must not stand on it.
 */
export async function addBootUser(snapshotDir: string, home: string, vmId: string): Promise<boolean> {
  const users = join(snapshotDir, usersDirName);
  if (!existsSync(users)) return existsSync(snapshotDir);
  const entry = join(users, entryName(home, vmId));
  try {
    await writeFileAtomic(entry, `${JSON.stringify({ home: resolve(home), vm: vmId })}\n`, { mode: 0o600 });
  } catch {
    return false; // renamed aside (pruned) meanwhile
  }
  // A prune renames the snapshot before it looks at its users: still here, the entry was seen or will be.
  return existsSync(snapshotDir);
}

/** The VM no longer stands on it (removed). Best effort: an entry left behind counts only while its VM's directory exists. */
export async function removeBootUser(snapshotDir: string, home: string, vmId: string): Promise<void> {
  await rm(join(snapshotDir, usersDirName, entryName(home, vmId)), { force: true }).catch(() => undefined);
}

/** How many VMs stand on the snapshot in `dir` now; entries of VMs that are gone are removed. Undefined: it keeps no users. */
export async function liveBootUsers(dir: string): Promise<number | undefined> {
  let entries: string[];
  try {
    entries = await readdir(join(dir, usersDirName));
  } catch {
    return undefined;
  }
  let live = 0;
  for (const name of entries) {
    if (!/^[0-9a-f]{32}$/.test(name)) continue;
    const path = join(dir, usersDirName, name);
    const user = await readFile(path, "utf8").then(
      (text) => JSON.parse(text) as { home?: unknown; vm?: unknown },
      () => undefined,
    );
    const home = typeof user?.home === "string" ? user.home : undefined;
    const vm = typeof user?.vm === "string" && /^[0-9a-f]{12}$/.test(user.vm) ? user.vm : undefined;
    // Unreadable counts as a user: only an entry known to be dead lets a snapshot go.
    if (user !== undefined && (home === undefined || vm === undefined || !vmDirPresent(vmsDir(home), vm))) await rm(path, { force: true });
    else live++;
  }
  return live;
}

/**
 * Remove the boot snapshots under `root` that `isStale` says this host cannot restore and that no VM stands on; the
 * ids removed. Leftovers of a prune that was killed (`.pruning-*`) are finished first: removed, or put back if a VM
 * stands on them.
 */
export async function pruneStaleBootSnapshots<S extends { id: string; dir: string }>(
  root: string,
  snapshots: readonly S[],
  isStale: (s: S) => Promise<boolean>,
): Promise<string[]> {
  await finishPrunes(root);
  const gone: string[] = [];
  for (const s of snapshots) {
    if ((await isStale(s)) && (await removeUnusedBootSnapshot(root, s))) gone.push(s.id);
  }
  return gone;
}

/**
 * Remove the boot snapshot `s` (its directory under `root`) unless a VM stands on it; true when it went. Renamed
 * aside first, so that no VM starts to stand on it meanwhile, and put back if one did. One that keeps no users
 * (made before they were counted) goes when `unCounted` says so.
 */
export async function removeUnusedBootSnapshot(root: string, s: { id: string; dir: string }, unCounted = false): Promise<boolean> {
  const live = await liveBootUsers(s.dir);
  if (live === undefined ? !unCounted : live !== 0) return false;
  const aside = join(root, `.pruning-${s.id}-${randomBytes(4).toString("hex")}`);
  try {
    await rename(s.dir, aside);
  } catch {
    return false; // removed by another prune meanwhile
  }
  if (((await liveBootUsers(aside)) ?? 0) !== 0) {
    await rename(aside, s.dir).catch(() => undefined);
    return false;
  }
  await rm(aside, { recursive: true, force: true });
  return true;
}

/** `.pruning-<id>-*` left by a prune that was killed: removed when unused, else put back as `<id>`. */
async function finishPrunes(root: string): Promise<void> {
  for (const entry of await readdirOrEmpty(root)) {
    const match = /^\.pruning-([0-9a-f]{64})-[0-9a-f]{8}$/.exec(entry);
    if (match === null) continue;
    const aside = join(root, entry);
    if ((await liveBootUsers(aside)) === 0) await rm(aside, { recursive: true, force: true });
    else await rename(aside, join(root, match[1]!)).catch(() => undefined);
  }
}
