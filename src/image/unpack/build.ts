/**
 * An image (pulled or imported) → its read-only ext4 base in the cache,
 * `<cache>/images/sha256-<hex>.ext4`, named by the image manifest digest
 * (imports without one: a digest of what was imported, see import/). Built
 * once per digest and shared by every VM; a second build of a digest that
 * exists does nothing.
 *
 * Steps, under a lock per digest: layers → a staging directory
 * (`<cache>/tmp/unpack-<hex>-*`, so on the same filesystem as the cache)
 * → `mke2fs -d` into a temp file beside the bases → the debugfs fixup pass
 * if the unpack left any (rootless owners, device nodes, xattrs) → 0444 →
 * record → rename. The rename is the commit: whatever fails or crashes
 * before it leaves no base; the staging directory and temp file are removed
 * on failure, and a crash's leftovers by the next build of that digest, or
 * by the staging sweep (../staging.ts), which tells them from a live
 * build's by this lock.
 *
 * The guest's init makes /proc, /sys and /dev in the VM's overlay when an
 * image lacks them, so nothing is added to the image here.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { SkiffError } from "../../errors.js";
import { defaultRunner, type Runner } from "../../process/runner.js";
import { syncDir } from "../../store/atomic.js";
import { withLock } from "../../store/lock.js";
import type { ImageEvent } from "../base.js";
import { cachedImage, type CachedImage, imagePath, imagesDir, writeImageRecord } from "../cache.js";
import { mke2fsFromDir, runDebugfsScript } from "../ext4.js";
import { digestHex } from "../manifest.js";
import type { ImageRuntimeConfig, Platform } from "../oci/types.js";
import type { OwnershipMode } from "./applier.js";
import { applyLayers, type LayerInput } from "./apply.js";
import { asNoSpace } from "./errors.js";
import { fixupScript } from "./fixups.js";
import { ext4SizeFor, measureTree } from "./size.js";
import { readdirOrEmpty } from "../../util/fs.js";
import { sealSharedInput } from "../../jail/ids.js";

/** Bump when the unpack or build recipe changes what a base holds; recorded beside each base. */
export const unpackLayoutVersion = 1;

/** The filesystem label of every image root (the same as the built-in base's). */
export const rootLabel = "skiff-root";

/** What a base is built from: a pulled image or an import, reduced to what the build needs. */
export interface BaseSource {
  /** Names the base: the image manifest digest, or for imports a digest of the imported content. */
  digest: string;
  name: string;
  ref?: string;
  /** Lowest first. */
  layers: LayerInput[];
  config: ImageRuntimeConfig;
  configDigest?: string;
  platform?: Platform;
  /** Free-form: where it came from ("docker save archive /x/app.tar"). */
  source?: string;
}

export type BuildEvent = ImageEvent;

export interface BuildBaseOptions {
  cacheDir: string;
  image: BaseSource;
  runner?: Runner;
  onEvent?: (event: BuildEvent) => void;
  /** How long to wait for another process building the same digest (default 10 min). */
  lockTimeoutMs?: number;
  /** See applier.ts; default: native as root, fixup otherwise. */
  ownership?: OwnershipMode;
}

export interface BuiltBase extends CachedImage {
  /** Non-fatal problems of this build; empty on a cache hit. */
  warnings: string[];
  /** False when the base was already in the cache. */
  built: boolean;
}

/** `<cache>/tmp/unpack-<hex>-*`: a build's unpacked tree (and its `.debugfs` script beside it). */
export const stagingPrefix = "unpack-";
/** `<cache>/images/.image-build-<hex>-*.ext4`: a build's ext4 before its rename. */
export const tempPrefix = ".image-build-";

/** A compressed image archive being imported is decompressed to `<cache>/tmp/import-<id>.tar`, held by this lock. */
export const importTempName = (id: string) => `import-${id}.tar`;
export const importLockName = (id: string) => `image-import-${id}`;

export function lockNameFor(digest: string): string {
  return `image-${digestHex(digest)}`;
}

export async function buildImageBase(opts: BuildBaseOptions): Promise<BuiltBase> {
  const { cacheDir, image } = opts;
  const ready = await cachedImage(cacheDir, image.digest);
  if (ready) return { ...ready, warnings: [], built: false };
  return withLock(
    lockNameFor(image.digest),
    async () => {
      const raced = await cachedImage(cacheDir, image.digest);
      if (raced) return { ...raced, warnings: [], built: false };
      const warnings = await build(opts);
      const built = await cachedImage(cacheDir, image.digest);
      if (!built) throw new SkiffError("ERR_SKIFF_INTERNAL", `image base vanished right after it was built: ${imagePath(cacheDir, image.digest)}`);
      return { ...built, warnings, built: true };
    },
    { home: cacheDir, timeoutMs: opts.lockTimeoutMs ?? 600_000, purpose: `build image ${image.name}` },
  );
}

/** The build itself; the caller holds the digest's lock. Returns the warnings. */
async function build(opts: BuildBaseOptions): Promise<string[]> {
  const { cacheDir, image } = opts;
  const runner = opts.runner ?? defaultRunner;
  const hex = digestHex(image.digest);
  const started = Date.now();
  opts.onEvent?.({ type: "image-build-start", name: image.name, digest: image.digest });
  const dir = imagesDir(cacheDir);
  const tmp = join(cacheDir, "tmp");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  await removeLeftoversOf(cacheDir, hex);
  const staging = await mkdtemp(join(tmp, `${stagingPrefix}${hex}-`));
  const temp = join(dir, `${tempPrefix}${hex}-${randomBytes(6).toString("hex")}.ext4`);
  try {
    const applied = await applyLayers(image.layers, staging, {
      runner,
      ...(opts.ownership === undefined ? {} : { ownership: opts.ownership }),
      onLayer: (e) => opts.onEvent?.({ type: "image-layer", digest: image.digest, ...e }),
    });
    const tree = measureTree(staging);
    const created = [...applied.fixups.values()].filter((f) => f.create).length;
    const size = ext4SizeFor({ bytes: tree.bytes, inodes: tree.inodes + created });
    opts.onEvent?.({ type: "image-mkfs", digest: image.digest, contentBytes: tree.bytes, sizeBytes: size.sizeBytes });
    await mke2fsFromDir({ sourceDir: staging, target: temp, sizeBytes: size.sizeBytes, inodes: size.inodes, label: rootLabel, digest: image.digest, runner });
    const script = fixupScript(applied.fixups);
    const warnings = [...applied.warnings, ...script.skipped.map((p) => `${JSON.stringify(p)}: a newline in the name; owner, mode and xattrs not set`)];
    if (script.text !== "") {
      await runDebugfsScript({ target: temp, script: script.text, scriptPath: `${staging}.debugfs`, purpose: "write owners, modes, device nodes and xattrs", runner });
    }
    // The tree is in the ext4 now; free its space before the record and rename.
    await rm(staging, { recursive: true, force: true });
    await sealSharedInput(temp);
    await writeImageRecord(cacheDir, {
      name: image.name,
      digest: image.digest,
      builtin: false,
      createdAt: new Date().toISOString(),
      ...(image.source === undefined ? {} : { source: image.source }),
      ...(image.ref === undefined ? {} : { ref: image.ref }),
      config: image.config,
      ...(image.configDigest === undefined ? {} : { configDigest: image.configDigest }),
      ...(image.platform === undefined ? {} : { platform: image.platform }),
      contentBytes: tree.bytes,
      sizeBytes: size.sizeBytes,
      layoutVersion: unpackLayoutVersion,
      ...(warnings.length === 0 ? {} : { warnings }),
    });
    await rename(temp, imagePath(cacheDir, image.digest));
    await syncDir(dir);
    opts.onEvent?.({ type: "image-build-done", name: image.name, digest: image.digest, ms: Date.now() - started });
    return warnings;
  } catch (err) {
    throw asNoSpace(err, cacheDir, `building image ${image.name}`);
  } finally {
    await rm(staging, { recursive: true, force: true });
    await rm(`${staging}.debugfs`, { force: true });
    await rm(temp, { force: true });
  }
}


/** What crashed builds of digest `hex` left. Safe under that digest's lock. */
async function removeLeftoversOf(cacheDir: string, hex: string): Promise<void> {
  const tmp = join(cacheDir, "tmp");
  for (const name of await readdirOrEmpty(tmp)) {
    if (name.startsWith(`${stagingPrefix}${hex}-`)) await rm(join(tmp, name), { recursive: true, force: true });
  }
  for (const name of await readdirOrEmpty(imagesDir(cacheDir))) {
    if (name.startsWith(`${tempPrefix}${hex}-`)) await rm(join(imagesDir(cacheDir), name), { force: true });
  }
}
