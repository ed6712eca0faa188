/**
 * Image verbs of the library: pull, import, list, inspect, remove, prune,
 * disk usage. Bases live in the cache shared by every VM of a host; a base a
 * VM is made from is never removed under it.
 */
import { fetchCloudImage, listCloudImages, type CloudImage } from "../image/cloud.js";
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { SkiffError } from "../errors.js";
import { imagePath, imageRecordPath, listImages, type CachedImage } from "../image/cache.js";
import { importImage, type ImportResult } from "../image/import/import.js";
import type { PullEvent } from "../image/oci/types.js";
import { blobsDir, readPulledImage, readRefIndex, updateRefs } from "../image/registry/index.js";
import { resolveImage, type ResolvedImage } from "../image/resolve.js";
import { parsePlatform } from "../image/registry/platform.js";
import { measureImageStaging, sweepImageStaging, type StagingUsage } from "../image/staging.js";
import type { BuildEvent } from "../image/unpack/build.js";
import type { Runner } from "../process/runner.js";
import type { VmInfo } from "./info.js";
import { listSnapshots, snapshotRoots } from "../snapshot/store.js";

export interface ImageContext {
  cacheDir: string;
  home: string;
  runner: Runner;
  /** Every VM of this home (broken ones too: their disks still rest on a base), to know which bases are in use. */
  vms: () => Promise<Pick<VmInfo, "name" | "imageDigest" | "dir">[]>;
}

export interface ImageSummary extends CachedImage {
  /** A microVM base (ext4) or a cloud image (a whole disk fetched by URL or path). */
  kind: "base" | "cloud";
  /** References pulled as this image (a cloud image's: its URL or path). */
  refs: string[];
  /** VMs whose disks sit on it. */
  usedBy: string[];
  /** No name and no reference: what `image prune` removes (Docker's dangling image). */
  dangling: boolean;
  /** Snapshots whose disks stand on it, by id: its boot snapshots (src/snapshot/boot.ts) and users' snapshots. */
  snapshots: { id: string; kind: string; name?: string; path: string }[];
}

export async function pullImageBase(
  ctx: ImageContext,
  ref: string,
  opts: { platform?: string; onPull?: (e: PullEvent) => void; onBuild?: (e: BuildEvent) => void } = {},
): Promise<ResolvedImage> {
  return resolveImage(ref, {
    cacheDir: ctx.cacheDir,
    home: ctx.home,
    runner: ctx.runner,
    pull: "always",
    place: "ref",
    ...(opts.platform === undefined ? {} : { platform: opts.platform }),
    ...(opts.onPull === undefined ? {} : { onPull: opts.onPull }),
    ...(opts.onBuild === undefined ? {} : { onEvent: opts.onBuild }),
  });
}

export async function importImageBase(
  ctx: ImageContext,
  path: string,
  opts: { name?: string; platform?: string; onBuild?: (e: BuildEvent) => void },
): Promise<ImportResult> {
  return importImage(path, {
    cacheDir: ctx.cacheDir,
    runner: ctx.runner,
    ...(opts.name === undefined ? {} : { name: opts.name }),
    ...(opts.platform === undefined ? {} : { platform: parsePlatform(opts.platform, "platform") }),
    ...(opts.onBuild === undefined ? {} : { onEvent: opts.onBuild }),
  });
}

/**
 * Every image, newest first: microVM bases and cloud images. A name belongs
 * to one image, as a tag does in Docker: when two have it (two imports of
 * `rootfs.tar` without --name, a pull that moved a tag), the newest keeps it
 * and the older ones are listed as <none>, dangling unless a reference still
 * points at them.
 */
export async function listImageSummaries(ctx: ImageContext): Promise<ImageSummary[]> {
  // Staging of killed imports and pulls is not an image; `image ls` is where a user looks, so it goes now.
  await sweepImageStaging(ctx.cacheDir);
  const [images, clouds, refs, vms, snaps] = await Promise.all([
    listImages(ctx.cacheDir),
    listCloudImages(ctx.cacheDir),
    readRefIndex(ctx.cacheDir),
    ctx.vms(),
    listSnapshots(ctx),
  ]);
  const all = [
    ...images.map((image) => ({ ...image, kind: "base" as const, refs: Object.keys(refs).filter((r) => refs[r] === image.digest) })),
    ...clouds.map((c) => ({
      name: c.name,
      digest: c.digest,
      basePath: c.path,
      sizeBytes: c.virtualSize,
      diskUsageBytes: c.diskUsageBytes,
      builtin: false,
      createdAt: c.fetchedAt,
      ref: c.source,
      kind: "cloud" as const,
      refs: [c.source],
    })),
  ].sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  const named = new Set<string>();
  return all.map((image) => {
    const name = image.name === undefined || named.has(image.name) ? undefined : image.name;
    if (name !== undefined) named.add(name);
    const usedBy = vms.filter((v) => v.imageDigest === image.digest).map((v) => v.name);
    const snapshots = snaps
      .filter((s) => s.image.digest === image.digest)
      .map((s) => ({ id: s.id, kind: s.kind, ...(s.name === undefined ? {} : { name: s.name }), path: s.dir }));
    return { ...image, name, usedBy, snapshots, dangling: name === undefined && image.refs.length === 0 };
  });
}

/** An image by local name, reference, digest or digest prefix. */
export async function findImage(ctx: ImageContext, query: string): Promise<ImageSummary> {
  const all = await listImageSummaries(ctx);
  const q = query.replace(/^sha256:/, "");
  const hit =
    all.find((i) => i.name === query || i.refs.includes(query) || i.ref === query) ??
    all.find((i) => i.name === `${query}:latest` || i.refs.some((r) => r.endsWith(`/${query}`) || r.endsWith(`/library/${query}:latest`))) ??
    (q.length >= 6 ? all.filter((i) => i.digest.slice(7).startsWith(q)) : []).at(0);
  if (hit === undefined) {
    throw new SkiffError("ERR_SKIFF_IMAGE_NOT_FOUND", `no such image: ${query}`, { place: query, hint: "list images with `skiff image ls`" });
  }
  return hit;
}

async function removeBase(ctx: ImageContext, image: ImageSummary): Promise<void> {
  if (image.kind === "cloud") {
    // The meta file first: a cloud image without it is not listed, one without its disk is fetched again.
    await rm(image.basePath.replace(/\.[a-z0-9]+$/, ".json"), { force: true });
    await rm(image.basePath, { force: true });
    return;
  }
  await removeBootSnapshots(image);
  await rm(imagePath(ctx.cacheDir, image.digest), { force: true });
  await rm(imageRecordPath(ctx.cacheDir, image.digest), { force: true });
  const refs = await readRefIndex(ctx.cacheDir);
  const forget: Record<string, undefined> = {};
  for (const [ref, digest] of Object.entries(refs)) if (digest === image.digest) forget[ref] = undefined;
  if (Object.keys(forget).length > 0) await updateRefs(ctx.cacheDir, forget);
}

/**
 * Refused while a VM uses the image's disk or a user's snapshot stands on it
 * (its disk layer is an overlay on it): `image rm`, and `layer build --force`,
 * which writes a new disk under the same digest. Boot snapshots do not count.
 */
export function refuseDependents(image: ImageSummary, place: string): void {
  if (image.usedBy.length > 0) {
    throw new SkiffError("ERR_SKIFF_VM_RUNNING", `image ${image.name ?? image.digest} is used by VM ${image.usedBy.join(", ")}`, {
      place,
      hint: `remove the VMs first (\`skiff rm -f ${image.usedBy.join(" ")}\`)`,
    });
  }
  const kept = image.snapshots.filter((s) => s.kind !== "boot");
  if (kept.length > 0) {
    const names = kept.map((s) => s.name ?? s.id.slice(0, 12));
    throw new SkiffError("ERR_SKIFF_SNAPSHOT_IN_USE", `image ${image.name ?? image.digest} is the disk of snapshot ${names.join(", ")}`, {
      place,
      hint: `remove the snapshots first (\`skiff snapshot rm ${names.join(" ")}\`)`,
    });
  }
}

/**
 * The image's boot snapshots, which are nothing without its disk as it was:
 * their guests hold its filesystem in RAM (no VM stands on them, or it would
 * be listed in usedBy).
 */
export async function removeBootSnapshots(image: ImageSummary): Promise<void> {
  for (const s of image.snapshots) if (s.kind === "boot") await rm(s.path, { recursive: true, force: true });
}

/** Remove an image's base; refused while a VM uses it. */
export async function removeImage(ctx: ImageContext, query: string): Promise<ImageSummary> {
  const image = await findImage(ctx, query);
  refuseDependents(image, query);
  await removeBase(ctx, image);
  return image;
}

/**
 * Docker's prune: dangling images no VM uses (no name, no reference), or
 * with `all` every image no VM uses (the built-in base is made again when
 * needed); then blobs no pulled image needs and staging of killed imports
 * and pulls. Returns what went and the bytes freed.
 */
export async function pruneImages(ctx: ImageContext, opts: { all?: boolean } = {}): Promise<{ removed: string[]; freedBytes: number }> {
  const removed: string[] = [];
  // First, so that the listing's own sweep does not take the staging away uncounted.
  let freed = (await sweepImageStaging(ctx.cacheDir)).bytes;
  for (const image of await listImageSummaries(ctx)) {
    if (image.usedBy.length > 0 || image.snapshots.some((s) => s.kind !== "boot") || !(image.dangling || opts.all === true)) continue;
    freed += image.diskUsageBytes;
    await removeBase(ctx, image);
    removed.push(image.name ?? image.digest);
  }
  freed += await pruneBlobs(ctx.cacheDir);
  return { removed, freedBytes: freed };
}

/** Blobs not reachable from a remaining reference (manifest, config, layers). */
async function pruneBlobs(cacheDir: string): Promise<number> {
  const keep = new Set<string>();
  const refs = await readRefIndex(cacheDir);
  for (const digest of new Set(Object.values(refs))) {
    keep.add(digest);
    try {
      const pulled = await readPulledImage(cacheDir, digest);
      keep.add(pulled.configDigest);
      if (pulled.indexDigest !== undefined) keep.add(pulled.indexDigest);
      for (const l of pulled.layers) keep.add(l.digest);
    } catch {
      // an index or an incomplete image: its own blob is kept, the rest may go
    }
  }
  let freed = 0;
  const dir = join(blobsDir(cacheDir), "sha256");
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  for (const hex of names) {
    if (keep.has(`sha256:${hex}`)) continue;
    const path = join(dir, hex);
    freed += (await stat(path)).blocks * 512;
    await rm(path, { force: true });
  }
  return freed;
}

export interface DiskUsage {
  images: { count: number; bytes: number };
  /** Memory snapshots (RAM, device state, disk layer), boot snapshots included. */
  snapshots: { count: number; bytes: number };
  blobs: { count: number; bytes: number };
  vms: { count: number; bytes: number };
  /** Unfinished builds, imports and pulls; the reclaimable part is theirs whose process is gone. */
  staging: StagingUsage;
}

function sumUsage(parts: readonly { count: number; bytes: number }[]): { count: number; bytes: number } {
  return parts.reduce((a, b) => ({ count: a.count + b.count, bytes: a.bytes + b.bytes }), { count: 0, bytes: 0 });
}

/** `count`: the entries of `dir` that `counts` (all by default); `bytes`: everything under it. */
async function dirUsage(dir: string, counts: (name: string) => boolean = () => true): Promise<{ count: number; bytes: number }> {
  let count = 0;
  let bytes = 0;
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    return { count, bytes };
  }
  for (const name of names) {
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st === undefined) continue;
    if (st.isDirectory()) {
      const sub = await dirUsage(join(dir, name));
      bytes += sub.bytes;
    } else {
      bytes += st.blocks * 512;
    }
    if (counts(name)) count++;
  }
  return { count, bytes };
}

export async function diskUsage(ctx: ImageContext): Promise<DiskUsage> {
  const images = await listImages(ctx.cacheDir);
  const staging = await measureImageStaging(ctx.cacheDir);
  const blobs = await dirUsage(join(blobsDir(ctx.cacheDir), "sha256"));
  const vms = await ctx.vms();
  let vmBytes = 0;
  for (const vm of vms) vmBytes += (await dirUsage(vm.dir)).bytes;
  return {
    images: { count: images.length, bytes: images.reduce((s, i) => s + i.diskUsageBytes, 0) },
    // A snapshot is a directory named by its id; staging and the boot snapshots' key notes take room but are none.
    snapshots: sumUsage(await Promise.all(snapshotRoots(ctx).map((root) => dirUsage(root, (name) => /^[0-9a-f]{64}$/.test(name))))),
    blobs,
    vms: { count: vms.length, bytes: vmBytes },
    staging,
  };
}


/** `skiff image pull https://…`: fetch a cloud image into the cache (once per URL unless `refetch`). */
export function pullCloudImage(ctx: ImageContext, ref: string, opts: { refetch?: boolean } = {}): Promise<CloudImage> {
  return fetchCloudImage(ref, { cacheDir: ctx.cacheDir, runner: ctx.runner, place: "ref", ...(opts.refetch === undefined ? {} : { refetch: opts.refetch }) });
}
