/**
 * Snapshots on disk: one directory per snapshot, named by the SHA-256 of
 * its content (device state, RAM, disk). Users' snapshots (and forks')
 * live under SKIFF_HOME/snapshots; boot snapshots, which are rebuildable
 * from the image like a cache entry, under the cache's snapshots/ (so every
 * home that shares a cache, as tests do, starts from them). Each holds
 *
 *   snapshot.json  what it is (SnapshotRecord), checked with its schema on read
 *   state          QEMU's device state (a migration stream without the RAM)
 *   mem            the guest's RAM, a sparse copy of its RAM file
 *   disk.qcow2     the root disk's overlay at capture, backed by the image base
 *   volume-N.raw   each named volume's disk at capture (volume-N.qcow2: a
 *                  restored VM's clone of one, standing alone); volumes.ts
 *   initrd.img     the initramfs the guest booted (a restore maps the same ROMs)
 *   id_ed25519…    the agent's keys, which the guest in `mem` trusts
 *   overlay.qcow2  an empty overlay on disk.qcow2 that restores copy (added by the first)
 *
 * A snapshot is made in `.staging-*` and renamed into place whole, so a
 * directory with a name is a complete snapshot; staging left by a killed
 * capture is swept by the next command.
 */
import { existsSync } from "node:fs";
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type * as z from "zod/v4/mini";
import { SkiffError } from "../errors.js";
import { writeJsonAtomic } from "../store/atomic.js";
import { readRecord, recordSchema } from "../store/record.js";
import type { SnapshotRecord } from "./schema.js";
import { closest } from "../util/closest.js";

/**
 * Bumped when what a snapshot holds changes meaning: older snapshots are refused by restore, not misread.
 * 3: one-vCPU TCG machines have maxcpus=2 and their guests nr_cpus=1 (qemu/args.ts, smpArgs), which a format-2
 *    snapshot's device state and RAM lack.
 * 4: microVMs have a virtio balloon (free page reporting, qemu/args.ts), a device a format-3 snapshot lacks.
 * 5: the agent ports' virtio-serial device has as many port slots as the VM has ports (qemu/args.ts, agentArgs),
 *    not QEMU's default 31 a format-4 snapshot's device state holds.
 */
export const snapshotFormat = 5;

export const snapshotFiles = {
  record: "snapshot.json",
  state: "state",
  mem: "mem",
  disk: "disk.qcow2",
  initrd: "initrd.img",
  sshKey: "id_ed25519",
  sshPublicKey: "id_ed25519.pub",
  hostKey: "ssh_host_ed25519_key",
  hostPublicKey: "ssh_host_ed25519_key.pub",
  knownHosts: "known_hosts",
  /** The serial console up to the capture: a restored VM's `skiff logs` starts with the boot its guest went through. */
  consoleLog: "console.log",
  /** An empty overlay on disk.qcow2, made by the first restore; later ones copy it (restore.ts: overlayOn). Not part of the id. */
  overlay: "overlay.qcow2",
} as const;

export type { SnapshotRecord, SnapshotVersions, VolumeLayer } from "./schema.js";

/** snapshot.json's schema, loaded when a record has to be checked. */
const snapshotRecord = recordSchema<SnapshotRecord>("snapshot", async () => (await import("./schema.js")).snapshotRecordSchema as z.core.$ZodType<SnapshotRecord>);

/** Where snapshots are kept: the home (users', forks') and the cache (boot snapshots). */
export interface SnapshotPlaces {
  home: string;
  cacheDir: string;
}

/** A snapshot as found on disk: its record and its directory. */
export type StoredSnapshot = SnapshotRecord & { dir: string };

export function snapshotRoots(places: SnapshotPlaces): string[] {
  return [join(places.home, "snapshots"), join(places.cacheDir, "snapshots")];
}

export function snapshotRoot(places: SnapshotPlaces, kind: SnapshotRecord["kind"]): string {
  return kind === "boot" ? join(places.cacheDir, "snapshots") : join(places.home, "snapshots");
}

export function snapshotFile(snapshot: { dir: string }, file: keyof typeof snapshotFiles): string {
  return join(snapshot.dir, snapshotFiles[file]);
}

/** Every complete snapshot, oldest first; unreadable ones are skipped. */
export async function listSnapshots(places: SnapshotPlaces): Promise<StoredSnapshot[]> {
  const records: StoredSnapshot[] = [];
  for (const root of snapshotRoots(places)) {
    let entries: string[];
    try {
      entries = await readdir(root);
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (!/^[0-9a-f]{64}$/.test(entry)) continue;
      const dir = join(root, entry);
      const read = await readRecord(join(dir, snapshotFiles.record), snapshotRecord);
      if (read?.ok === true) records.push({ ...(read.value as SnapshotRecord), dir });
    }
  }
  return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** The boot snapshot with this full id, if it is there and complete (a VM that adopted it at create finds it so at start). */
export async function bootSnapshotById(places: SnapshotPlaces, id: string): Promise<StoredSnapshot | undefined> {
  if (!/^[0-9a-f]{64}$/.test(id)) return undefined;
  const dir = join(snapshotRoot(places, "boot"), id);
  const read = await readRecord(join(dir, snapshotFiles.record), snapshotRecord);
  if (read?.ok !== true || read.value.kind !== "boot") return undefined;
  return { ...(read.value as SnapshotRecord), dir };
}

/** A snapshot by name, full id or an unambiguous id prefix (at least 4 characters), as docker finds images. */
export async function findSnapshot(places: SnapshotPlaces, ref: string, place = "snapshot"): Promise<StoredSnapshot> {
  const all = await listSnapshots(places);
  const byName = all.filter((s) => s.name === ref);
  if (byName.length === 1) return byName[0]!;
  const byId = /^[0-9a-f]{4,64}$/.test(ref) ? all.filter((s) => s.id.startsWith(ref)) : [];
  if (byId.length === 1) return byId[0]!;
  if (byId.length > 1 || byName.length > 1) {
    throw new SkiffError("ERR_SKIFF_USAGE", `${ref} names more than one snapshot`, {
      place,
      hint: "give more of the id (`skiff snapshot ls` shows them)",
    });
  }
  const near = closest(ref, all.flatMap((s) => (s.name === undefined ? [] : [s.name])));
  throw new SkiffError("ERR_SKIFF_SNAPSHOT_NOT_FOUND", `no snapshot ${ref}`, {
    place,
    hint: near === undefined ? "see `skiff snapshot ls`" : `did you mean ${near}? see \`skiff snapshot ls\``,
  });
}

export async function writeSnapshotRecord(dir: string, record: SnapshotRecord): Promise<void> {
  await writeJsonAtomic(join(dir, snapshotFiles.record), record, { mode: 0o600 });
}

/** Bytes a file holds on disk (a sparse RAM copy counts only what the guest touched). */
export async function diskUsage(path: string): Promise<number> {
  try {
    return (await stat(path)).blocks * 512;
  } catch {
    return 0;
  }
}

/** Staging directories of captures that were killed half-way. */
export async function sweepSnapshotStaging(places: SnapshotPlaces, alive: (pid: number) => boolean): Promise<void> {
  for (const dir of snapshotRoots(places)) {
    if (!existsSync(dir)) continue;
    for (const entry of await readdir(dir)) {
      const m = /^\.staging-(\d+)-/.exec(entry);
      if (m !== null && !alive(Number(m[1]))) await rm(join(dir, entry), { recursive: true, force: true });
    }
  }
}
