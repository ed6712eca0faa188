/**
 * The snapshot verbs behind Skiff: list, inspect, remove, gc, prune, and
 * what a snapshot shows of itself (SnapshotInfo). Capturing and restoring
 * are capture.ts and restore.ts; Skiff ties them to the VM lifecycle.
 */
import { rm } from "node:fs/promises";
import { dirname } from "node:path";
import { SkiffError } from "../errors.js";
import type { EngineContext } from "../engine/context.js";
import { findSnapshot, listSnapshots, type StoredSnapshot } from "./store.js";

export interface SnapshotInfo {
  id: string;
  name: string | undefined;
  kind: StoredSnapshot["kind"];
  /** The VM it was taken of (its name then). */
  source: string;
  image: string;
  createdAt: string;
  memoryMiB: number;
  cpus: number;
  /** Bytes on disk: the RAM (sparse), the device state, the disk layer, the volume layers. */
  sizes: StoredSnapshot["sizes"];
  /**
   * The named volumes it captured, with their guest paths: a VM restored from
   * it gets a private copy-on-write clone of each as captured, not the volume.
   */
  volumes: { volume: string; target: string; readOnly: boolean; bytes: number; restoresAs: "private clone" }[];
  /** VMs whose disks stand on it. */
  usedBy: string[];
  path: string;
  /** How long the guest was paused for the copy, in ms: on what `snapshot` (create) returns only. */
  pausedMs?: number;
}

export function toSnapshotInfo(s: StoredSnapshot, usedBy: string[]): SnapshotInfo {
  return {
    id: s.id,
    name: s.name,
    kind: s.kind,
    source: s.source.name,
    image: s.spec.image,
    createdAt: s.createdAt,
    memoryMiB: s.spec.memoryMiB,
    cpus: s.spec.cpus,
    sizes: s.sizes,
    volumes: (s.volumes ?? []).map((v) => ({ volume: v.volume, target: v.target, readOnly: v.readOnly, bytes: v.bytes, restoresAs: "private clone" as const })),
    usedBy,
    path: s.dir,
  };
}

/** VM names by the snapshot their disk stands on. */
async function users(ctx: EngineContext): Promise<Map<string, string[]>> {
  const byId = new Map<string, string[]>();
  for (const vm of await ctx.store.list({ includeIncomplete: true })) {
    const id = vm.config.snapshot?.id;
    if (id !== undefined) byId.set(id, [...(byId.get(id) ?? []), vm.name]);
  }
  return byId;
}

/** Snapshots (of one VM, by its current name, when given), oldest first. */
export async function listSnapshotInfos(ctx: EngineContext, vm?: string): Promise<SnapshotInfo[]> {
  const [all, using] = await Promise.all([listSnapshots(ctx), users(ctx)]);
  const sourceId = vm === undefined ? undefined : (await ctx.store.get(vm)).id;
  return all.filter((s) => sourceId === undefined || s.source.id === sourceId).map((s) => toSnapshotInfo(s, using.get(s.id) ?? []));
}

export async function inspectSnapshot(ctx: EngineContext, ref: string): Promise<SnapshotInfo> {
  const s = await findSnapshot(ctx, ref);
  return toSnapshotInfo(s, (await users(ctx)).get(s.id) ?? []);
}

/**
 * Remove a snapshot. VMs whose disks stand on it keep it, unless `force`
 * removes them first (stopping them): their disks are nothing without it.
 */
export async function removeSnapshot(
  ctx: EngineContext,
  ref: string,
  opts: { force?: boolean; removeVm: (name: string) => Promise<void> },
): Promise<SnapshotInfo> {
  const s = await findSnapshot(ctx, ref);
  const usedBy = (await users(ctx)).get(s.id) ?? [];
  if (usedBy.length > 0 && opts.force !== true) {
    throw new SkiffError("ERR_SKIFF_SNAPSHOT_IN_USE", `snapshot ${s.name ?? s.id.slice(0, 12)} is the disk of ${usedBy.join(", ")}`, {
      place: ref,
      hint: `remove ${usedBy.length === 1 ? "that VM" : "those VMs"} first, or \`skiff snapshot rm -f ${ref}\` to remove ${usedBy.length === 1 ? "it" : "them"} too`,
      details: { usedBy },
    });
  }
  for (const vm of usedBy) await opts.removeVm(vm);
  await rm(s.dir, { recursive: true, force: true });
  return toSnapshotInfo(s, []);
}

/** Keep the newest `keep` snapshots of a VM (MicroMachines' gc); those VMs stand on are kept too. Returns what went. */
export async function gcSnapshots(ctx: EngineContext, vm: string, keep: number): Promise<SnapshotInfo[]> {
  if (!Number.isInteger(keep) || keep < 0) {
    throw new SkiffError("ERR_SKIFF_USAGE", `keep takes a whole number of snapshots, not ${keep}`, { place: "keep", hint: "e.g. 3" });
  }
  const mine = (await listSnapshotInfos(ctx, vm)).filter((s) => s.kind === "user");
  const old = mine.slice(0, Math.max(0, mine.length - keep)).filter((s) => s.usedBy.length === 0);
  for (const s of old) await rm(s.path, { recursive: true, force: true });
  return old;
}

/**
 * Remove every snapshot no VM stands on: forks' (unnamed) ones, or with
 * `all` named ones and boot snapshots too. Boot snapshots live in the cache,
 * which other homes may share (and stand on): only `all` takes them, and
 * only those no VM of any home stands on (boot-users.ts). Boot snapshots
 * this host can no longer restore (another skiff, QEMU or kernel) go
 * without `all`, once unused.
 */
export async function pruneSnapshots(ctx: EngineContext, opts: { all?: boolean } = {}): Promise<SnapshotInfo[]> {
  const [{ pruneStaleBoot }, { removeUnusedBootSnapshot }] = await Promise.all([import("./boot.js"), import("./boot-users.js")]);
  // Boot snapshots this host can no longer restore, that no VM of any home stands on: always.
  const stale = (await pruneStaleBoot(ctx)).map((s) => toSnapshotInfo(s, []));
  const unused = (await listSnapshotInfos(ctx)).filter((s) => s.usedBy.length === 0 && (opts.all === true || (s.name === undefined && s.kind !== "boot")));
  const gone: SnapshotInfo[] = [];
  for (const s of unused) {
    // A boot snapshot lives in the cache, which other homes share: it goes only if none of their VMs stands on it either.
    if (s.kind === "boot") {
      if (await removeUnusedBootSnapshot(dirname(s.path), { id: s.id, dir: s.path }, true)) gone.push(s);
      continue;
    }
    await rm(s.path, { recursive: true, force: true });
    gone.push(s);
  }
  return [...stale, ...gone];
}
