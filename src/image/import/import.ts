/**
 * `skiff image import FILE|DIR [--name N]`, the library side. What it takes,
 * tried in this order:
 *
 * - an OCI image layout (oci-layout + index.json + blobs/), as a directory
 *   or a tar of one — Docker 25+'s `docker save` is one of these too;
 * - a classic `docker save` archive (manifest.json + <id>/layer.tar), or
 *   such an archive extracted into a directory;
 * - otherwise a tar is a root filesystem tarball (plain, gzip, zstd, xz,
 *   bzip2) and a directory is a root filesystem, copied as it is (owners
 *   included).
 *
 * A file is read once up front (hash, compression, member list). A
 * compressed image archive is then decompressed once into the cache's tmp
 * directory, since its layers are read by offset; a plain one is read in
 * place. The name defaults to what the archive calls the image, else the
 * file's name without its extensions.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { errnoOf, SkiffError } from "../../errors.js";
import type { Runner } from "../../process/runner.js";
import { acquireLock, removeLockFiles } from "../../store/lock.js";
import type { Platform } from "../oci/types.js";
import type { OwnershipMode } from "../unpack/applier.js";
import { sweepImageStaging } from "../staging.js";
import { type BaseSource, buildImageBase, type BuildEvent, type BuiltBase, importLockName, importTempName } from "../unpack/build.js";
import { decompress, rangeStream } from "../unpack/compression.js";
import { classifyUnpackError, isNoSpace, noSpace } from "../unpack/errors.js";
import { type ArchiveScan, scanArchive } from "./archive.js";
import { defaultImportName } from "./choose.js";
import { dockerSaveSource, isDockerSave } from "./docker-save.js";
import { dirFiles, type ImageFiles, tarFiles } from "./files.js";
import { type ArchiveImportOptions, isOciLayout, ociLayoutSource } from "./oci-layout.js";
import { rootfsArchiveSource, rootfsDirectorySource } from "./rootfs.js";

export type ImportKind = "oci-layout" | "docker-save" | "rootfs-archive" | "rootfs-directory";

export interface ImportOptions {
  cacheDir: string;
  /** The image's name in `skiff image ls` (default: the archive's own name for it, else the file name). */
  name?: string;
  /** Which image of an archive holding several ("alpine:3.20"). */
  ref?: string;
  /** Which platform of a multi-platform layout (default linux/amd64). */
  platform?: Platform;
  runner?: Runner;
  onEvent?: (event: BuildEvent) => void;
  ownership?: OwnershipMode;
}

export interface ImportResult extends BuiltBase {
  kind: ImportKind;
  name: string;
}

export async function importImage(input: string, opts: ImportOptions): Promise<ImportResult> {
  // What killed imports and pulls left in the cache goes before this one adds its own.
  await sweepImageStaging(opts.cacheDir);
  const path = resolve(input);
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    if (errnoOf(err) !== "ENOENT") throw err;
    throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `nothing to import at ${input}`, { place: input, details: { path } });
  }
  const fallbackName = defaultImportName(path);
  if (st.isDirectory()) {
    const files = dirFiles(path);
    const found = await imageSource(files, { ...archiveOptions(opts, fallbackName), source: `directory ${path}` });
    if (found) return finish(found.kind, found.image, opts);
    return finish("rootfs-directory", await rootfsDirectorySource(path, { name: opts.name ?? fallbackName, source: `root filesystem directory ${path}` }), opts);
  }
  if (!st.isFile()) throw new SkiffError("ERR_SKIFF_USAGE", `${input} is neither a file nor a directory`, { place: input });
  const scan = await scanArchive(path);
  const rootfs = () => finish("rootfs-archive", rootfsArchiveSource(scan, { name: opts.name ?? fallbackName, source: `root filesystem archive ${path}` }), opts);
  // Layout files sit at the top of an image archive; a root filesystem has neither.
  if (!scan.members.has("index.json") && !scan.members.has("manifest.json")) return rootfs();
  const plain = scan.compression === "none" ? undefined : await decompressToTemp(scan, opts.cacheDir);
  try {
    const files = tarFiles(scan, plain?.path ?? path);
    const found = await imageSource(files, { ...archiveOptions(opts, fallbackName), source: `image archive ${path}` });
    return found ? await finish(found.kind, found.image, opts) : await rootfs();
  } finally {
    await plain?.remove();
  }
}

function archiveOptions(opts: ImportOptions, fallbackName: string): Omit<ArchiveImportOptions, "source"> {
  return {
    fallbackName,
    ...(opts.name === undefined ? {} : { name: opts.name }),
    ...(opts.ref === undefined ? {} : { ref: opts.ref }),
    ...(opts.platform === undefined ? {} : { platform: opts.platform }),
  };
}

/** The image of an OCI layout or `docker save` archive; undefined if the files are neither. */
async function imageSource(files: ImageFiles, opts: ArchiveImportOptions): Promise<{ kind: ImportKind; image: BaseSource } | undefined> {
  if (isOciLayout(files)) return { kind: "oci-layout", image: await ociLayoutSource(files, opts) };
  if (await isDockerSave(files)) return { kind: "docker-save", image: await dockerSaveSource(files, opts) };
  return undefined;
}

async function finish(kind: ImportKind, image: BaseSource, opts: ImportOptions): Promise<ImportResult> {
  const built = await buildImageBase({
    cacheDir: opts.cacheDir,
    image,
    ...(opts.runner === undefined ? {} : { runner: opts.runner }),
    ...(opts.onEvent === undefined ? {} : { onEvent: opts.onEvent }),
    ...(opts.ownership === undefined ? {} : { ownership: opts.ownership }),
  });
  return { ...built, kind, name: built.name ?? image.name };
}

/**
 * A compressed image archive, decompressed into `<cache>/tmp` so its members
 * can be read by offset. The file is held under a lock for as long as it
 * exists, so the staging sweep can tell a killed import's from a live one.
 */
async function decompressToTemp(scan: ArchiveScan, cacheDir: string): Promise<{ path: string; remove(): Promise<void> }> {
  const tmp = join(cacheDir, "tmp");
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  const id = randomBytes(6).toString("hex");
  const lock = await acquireLock(importLockName(id), { home: cacheDir, purpose: `import ${scan.path}` });
  const path = join(tmp, importTempName(id));
  const remove = async () => {
    await rm(path, { force: true });
    await lock.release();
    removeLockFiles([importLockName(id)], { home: cacheDir });
  };
  const stage = decompress(rangeStream({ path: scan.path }), scan.compression);
  try {
    await pipeline(stage.output, createWriteStream(path, { flags: "wx" }));
    await stage.done;
    return { path, remove };
  } catch (err) {
    stage.abort();
    await remove();
    if (isNoSpace(err)) throw noSpace(cacheDir, `decompressing ${scan.path}`, err);
    throw classifyUnpackError(err, scan.path, tmp);
  }
}
