/** The errors an unpack can end in, each naming the layer or the place. */
import { errnoOf, isSkiffError, SkiffError } from "../../errors.js";

export function badArchive(layer: string, why: string, cause?: unknown): SkiffError {
  return new SkiffError("ERR_SKIFF_BAD_ARCHIVE", `layer ${layer} cannot be unpacked: ${why}`, {
    hint: "the layer is corrupt, truncated or in a format skiff does not read; pull or export the image again",
    ...(cause === undefined ? {} : { cause }),
    details: { layer },
  });
}

/** An archive given to `skiff image import` that is not what it should be. */
export function badImport(where: string, why: string, cause?: unknown): SkiffError {
  return new SkiffError("ERR_SKIFF_BAD_ARCHIVE", `${where} cannot be imported: ${why}`, {
    hint: "import takes a `docker save` archive, an OCI image layout (directory or tar), a root filesystem tar (plain, gzip, zstd, xz, bzip2) or a directory",
    ...(cause === undefined ? {} : { cause }),
    details: { where },
  });
}

/** ENOSPC or EDQUOT: the filesystem under `dir` (or the user's quota on it) is full. */
export function isNoSpace(err: unknown): boolean {
  const code = errnoOf(err);
  return code === "ENOSPC" || code === "EDQUOT";
}

export function noSpace(dir: string, what: string, cause?: unknown, opts: { hint?: string } = {}): SkiffError {
  const quota = errnoOf(cause) === "EDQUOT";
  return new SkiffError("ERR_SKIFF_NO_SPACE", `${quota ? "disk quota exceeded" : "no space left on device"} while ${what} (under ${dir})`, {
    hint:
      opts.hint ?? `free space on the filesystem holding ${dir}: remove unused images with \`skiff image prune\`, or point SKIFF_CACHE at a bigger disk`,
    ...(cause === undefined ? {} : { cause }),
    details: { dir, errno: errnoOf(cause) ?? "ENOSPC" },
  });
}

/** A full disk, however it showed (an errno, or a tool's stderr), as ERR_SKIFF_NO_SPACE naming `dir`; other errors as they are. */
export function asNoSpace(err: unknown, dir: string, what: string, opts: { hint?: string } = {}): unknown {
  if (isNoSpace(err)) return noSpace(dir, what, err, opts);
  if (isSkiffError(err)) {
    if (err.code === "ERR_SKIFF_NO_SPACE") return noSpace(dir, what, err.cause ?? err, opts);
    if ((err.code === "ERR_SKIFF_TOOL_FAILED" || err.code === "ERR_SKIFF_QEMU_FAILED") && /No space left on device|Disk quota exceeded|Could not allocate block/i.test(err.message)) {
      return noSpace(dir, what, err, opts);
    }
  }
  return err;
}

/**
 * What an error thrown while applying `layer` means for the user. Full disk
 * → NO_SPACE; other system errors (EACCES, EIO…) are the host's; anything
 * else came from the bytes (zlib, the tar parser, a decompressor's exit)
 * and is a bad archive.
 */
export function classifyUnpackError(err: unknown, layer: string, rootDir: string): SkiffError {
  if (isSkiffError(err)) return err;
  if (isNoSpace(err)) return noSpace(rootDir, `unpacking layer ${layer}`, err);
  const code = errnoOf(err);
  if (code !== undefined && /^E[A-Z0-9]+$/.test(code)) {
    const path = (err as { path?: unknown }).path;
    return new SkiffError("ERR_SKIFF_HOST", `unpacking layer ${layer} failed: ${(err as Error).message}`, {
      cause: err,
      details: { layer, errno: code, ...(typeof path === "string" ? { path } : {}) },
    });
  }
  return badArchive(layer, err instanceof Error ? err.message : String(err), err);
}
