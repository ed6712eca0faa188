/**
 * Named volumes in snapshots. A capture copies each volume disk the VM has
 * attached (sparse, inside the same pause as its RAM, device state and
 * overlay, so all of them are of one instant) into the snapshot as a
 * read-only layer: `volume-N.raw` for a named volume (its ext4 disk as it
 * is), `volume-N.qcow2` for a restored VM's clone (folded to stand alone, as
 * the root disk's layer is rebased onto the image base).
 *
 * What a restored VM gets is not the named volume: ext4 is not a shared
 * filesystem, and the guest in the snapshot's RAM has the volume mounted
 * with its caches as they were, so attaching the live volume (which its
 * source goes on writing) would corrupt it. Each restored VM gets a private
 * copy-on-write clone of the volume as captured, at the same guest path:
 * a qcow2 overlay in its own directory on the snapshot's layer (a read-only
 * mount attaches the layer itself). Writes in a clone reach neither the
 * volume nor other clones, as fork's semantics are for the root disk. The
 * clone is a mount of kind "clone" in the VM's spec (`inspect` shows it),
 * and goes with the VM.
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { cloneDiskPath, mountPlans } from "../engine/volumes.js";
import type { EngineContext } from "../engine/context.js";
import type { Mount } from "../spec/machine.js";
import type { SnapshotRef } from "../store/vmdir.js";
import type { VmRecord } from "../store/store.js";
import type { VolumeLayer } from "./store.js";

/** One volume disk a capture copies: from where, to which file of the snapshot. */
export interface VolumeCopy {
  from: string;
  layer: Omit<VolumeLayer, "bytes">;
}

/** The VM's attached volume disks, in mount order (bind mounts are refused before this). */
export function volumeCopies(ctx: Pick<EngineContext, "home">, record: VmRecord): VolumeCopy[] {
  const mounts = record.config.spec.mounts ?? [];
  const plans = mountPlans(ctx, mounts, { paths: record.paths, snapshot: record.config.snapshot });
  return plans.flatMap((plan, i) => {
    const mount = mounts[i]!;
    if (plan.kind !== "disk" || mount.kind === "bind") return [];
    const format = plan.format ?? "raw";
    return [{ from: plan.diskPath, layer: { volume: mount.volume, target: mount.target, readOnly: mount.readOnly, file: `volume-${i}.${format}`, format } }];
  });
}

/**
 * After the pause: a clone's copy is a qcow2 overlay on an older snapshot's
 * layer; its backing is folded in (rebase onto nothing), so this snapshot
 * stands alone and that one can go.
 */
export async function standAlone(ctx: EngineContext, dir: string, copies: readonly VolumeCopy[]): Promise<void> {
  for (const { layer } of copies) {
    if (layer.format !== "qcow2") continue;
    await ctx.runner.run("qemu-img", ["rebase", "-q", "-f", "qcow2", "-b", "", join(dir, layer.file)], { check: true, debianPackage: "qemu-utils" });
  }
}

/** A restored VM's mounts: every volume (or clone) of the source becomes a clone of its captured layer, at the same path. */
export function cloneMounts(mounts: readonly Mount[] | undefined): Mount[] | undefined {
  return mounts?.map((m) => (m.kind === "bind" ? m : { kind: "clone", volume: m.volume, target: m.target, readOnly: m.readOnly }));
}

/** What a restored VM's record says of its clones' layers (SnapshotRef.volumes). */
export function layerRefs(dir: string, layers: readonly VolumeLayer[] | undefined): Pick<SnapshotRef, "volumes"> {
  if (layers === undefined || layers.length === 0) return {};
  return { volumes: layers.map((l) => ({ target: l.target, layer: join(dir, l.file), format: l.format })) };
}

/** Make (again) the VM's writable clones: an empty qcow2 overlay on each layer. */
export async function makeClones(ctx: EngineContext, record: VmRecord, layers: readonly VolumeLayer[] | undefined, dir: string): Promise<void> {
  await rm(record.paths.volumeClones, { recursive: true, force: true });
  const mounts = record.config.spec.mounts ?? [];
  for (const [i, m] of mounts.entries()) {
    if (m.kind !== "clone" || m.readOnly) continue;
    const layer = layers?.find((l) => l.target === m.target);
    if (layer === undefined) continue;
    await mkdir(record.paths.volumeClones, { recursive: true, mode: 0o700 });
    await ctx.runner.run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", layer.format, "-b", join(dir, layer.file), cloneDiskPath(record.paths, i)], {
      check: true,
      debianPackage: "qemu-utils",
    });
  }
}

/** For messages: what a restored VM's volumes are. */
export function clonesNote(layers: readonly VolumeLayer[] | undefined): string | undefined {
  if (layers === undefined || layers.length === 0) return undefined;
  const list = layers.map((l) => `${l.volume} at ${l.target}`).join(", ");
  return `volumes are private copy-on-write clones of their state at the snapshot, not the named volumes: ${list}`;
}
