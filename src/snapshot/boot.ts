/**
 * Boot snapshots, E2B's templates made automatic: the first cold boot of a
 * combination of image, kernel, skiff, QEMU and machine (memory, CPUs,
 * NICs, environment, DNS) is snapshotted right when its guest is ready,
 * before any user command runs; every later VM of the same combination
 * that has never run starts from that snapshot with its own identity
 * instead of booting. `--cold` boots anyway.
 *
 * The key is a hash of every input that shapes the guest's RAM or its
 * devices, so any change (a new image digest, another kernel, QEMU or
 * skiff, other resources) finds no snapshot and boots, which makes a new
 * one. What a restore re-applies (name, hostname, addresses, MACs,
 * /etc/hosts, published ports, egress rules) is left out of the key.
 *
 * Not for VMs with mounts (9p cannot migrate; volumes are shared state),
 * cloud images, or a main command run by skiff-init (it would have started
 * before the capture).
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { VmRecord } from "../store/store.js";
import type { EngineContext } from "../engine/context.js";
import type { HostFacts } from "../engine/host.js";
import { hostVersions, versionMismatch } from "./versions.js";
import { bootSnapshotById, listSnapshots, snapshotFile, snapshotRoot, type SnapshotPlaces, type StoredSnapshot } from "./store.js";
import { standOnSnapshot } from "./restore.js";
import { tryLock } from "../store/lock.js";
import { addBootUser, pruneStaleBootSnapshots } from "./boot-users.js";
import { writeFileAtomic } from "../store/atomic.js";

export { bootSnapshotById } from "./store.js";

/** The VM's boot key, or undefined when it cannot start from a boot snapshot. */
export async function bootKey(record: VmRecord, facts: HostFacts, cacheDir: string): Promise<string | undefined> {
  const { spec, image } = record.config;
  if (spec.boot?.kind === "cloud" || (spec.mounts ?? []).length > 0 || spec.init !== undefined) return undefined;
  if (image?.basePath === undefined) return undefined;
  if (process.env.SKIFF_BOOT_SNAPSHOTS === "0") return undefined;
  const kernelPath = record.config.kernel?.path ?? facts.vmlinuxPath;
  const inputs = {
    versions: await hostVersions(facts.qemuBinary, kernelPath, cacheDir),
    accel: facts.accel.accel,
    image: image.digest,
    base: image.basePath,
    kernelArgs: spec.kernel?.args ?? [],
    memoryMiB: spec.memoryMiB,
    cpus: spec.cpus,
    net: spec.network.mode,
    nics: (spec.networks ?? []).map((n) => n.driver),
    env: Object.entries(spec.env).sort(([a], [b]) => a.localeCompare(b)),
    dns: spec.dns ?? [],
    debug: process.env.SKIFF_GUEST_DEBUG === "1",
  };
  return createHash("sha256").update(JSON.stringify(inputs)).digest("hex");
}

/**
 * The boot snapshot for this key, if one was made. Found through `.boot-keys/KEY` (its id) in the boot snapshots'
 * directory, checked against the snapshot's own record: reading every snapshot's record to find it was ~9 ms of
 * every `run` on a cache of 40 snapshots. Without a sound entry (a snapshot saved before there were entries, or
 * removed since) every record is read as before, and the entry made or removed.
 */
export async function findBootSnapshot(places: SnapshotPlaces, key: string): Promise<StoredSnapshot | undefined> {
  const entry = bootKeyFile(places, key);
  const id = await readFile(entry, "utf8").catch(() => undefined);
  if (id !== undefined) {
    const snapshot = await bootSnapshotById(places, id.trim());
    if (snapshot?.bootKey === key) return snapshot;
  }
  const found = (await listSnapshots(places)).find((s) => s.kind === "boot" && s.bootKey === key);
  // Best effort: without the entry the next run reads every record again, nothing worse.
  if (found !== undefined) await noteBootKey(places, key, found.id).catch(() => undefined);
  else if (id !== undefined) await rm(entry, { force: true }).catch(() => undefined);
  return found;
}

function bootKeyFile(places: SnapshotPlaces, key: string): string {
  return join(snapshotRoot(places, "boot"), ".boot-keys", key);
}

/** Point `key` at the boot snapshot `id` (written whole: a reader finds the old entry, the new one or none). */
async function noteBootKey(places: SnapshotPlaces, key: string, id: string): Promise<void> {
  const entry = bootKeyFile(places, key);
  await mkdir(dirname(entry), { recursive: true, mode: 0o700 });
  await writeFileAtomic(entry, `${id}\n`, { mode: 0o600 });
}

/**
 * Run `save` unless the boot snapshot for `key` exists or another VM is
 * saving it right now; true when `save` ran. VMs of one combination that
 * boot at once (a project's replicas) would otherwise each save their own:
 * 16 at once made 13 identical snapshots, each pausing its VM to write its
 * RAM. A VM that skips because of a failed save leaves it to the next VM
 * like it.
 */
export async function saveBootSnapshotOnce(places: SnapshotPlaces, key: string, save: () => Promise<void>): Promise<boolean> {
  const claim = await tryLock(`boot-snapshot-${key}`, { home: places.cacheDir, purpose: "save a boot snapshot" });
  if (claim === undefined) return false;
  try {
    // Under the claim: a twin may have finished its save since this VM looked.
    if ((await findBootSnapshot(places, key)) !== undefined) return false;
    await save();
    return true;
  } finally {
    await claim.release();
  }
}

/** The boot snapshot a VM that has never run would start from, if its combination has one. */
export async function bootSnapshotFor(ctx: EngineContext, record: VmRecord, facts: HostFacts): Promise<{ key: string | undefined; snapshot: StoredSnapshot | undefined }> {
  const key = await bootKey(record, facts, ctx.cacheDir);
  return { key, snapshot: key === undefined ? undefined : await findBootSnapshot(ctx, key) };
}

/**
 * A VM that has never run takes the boot snapshot as its start (restore.ts: standOnSnapshot), counted among its
 * users first (boot-users.ts). False when the snapshot went meanwhile (pruned as stale): the VM boots instead.
 */
export async function adoptBootSnapshot(ctx: EngineContext, record: VmRecord, snapshot: StoredSnapshot): Promise<boolean> {
  if (!(await addBootUser(snapshot.dir, ctx.home, record.id))) return false;
  await standOnSnapshot(ctx, record, snapshot);
  record.config = await ctx.store.setSnapshot(record.id, { id: snapshot.id, disk: snapshotFile(snapshot, "disk") });
  return true;
}

/**
 * Remove the boot snapshots this host can no longer restore (another skiff, QEMU or kernel made them) that no VM,
 * in any home sharing the cache, stands on (boot-users.ts). After a new one is saved, and by `snapshot prune`.
 */
export async function pruneStaleBoot(ctx: EngineContext): Promise<StoredSnapshot[]> {
  const facts = await ctx.hostFacts();
  const boot = (await listSnapshots(ctx)).filter((s) => s.kind === "boot");
  const stale = async (s: StoredSnapshot) => versionMismatch(s.versions, await hostVersions(facts.qemuBinary, s.kernelPath, ctx.cacheDir)) !== undefined;
  const gone = new Set(await pruneStaleBootSnapshots(snapshotRoot(ctx, "boot"), boot, stale));
  return boot.filter((s) => gone.has(s.id));
}
