/**
 * What an import needs from the archive formats' shared side: the config
 * for images that have none, the digest of an import without a manifest,
 * picking one image out of several, and registry-parser errors restated as
 * archive errors.
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import { isSkiffError, SkiffError } from "../../errors.js";
import type { ImageRuntimeConfig, Platform } from "../oci/types.js";
import { defaultPlatform, normalizePlatform, platformError, platformMatches } from "../registry/platform.js";
import { baseRuntimeConfig } from "../resolve.js";
import { badImport } from "../unpack/errors.js";

/** A plain root filesystem says nothing about how to run it: a shell, like the built-in base. */
export const importedRuntimeConfig: ImageRuntimeConfig = baseRuntimeConfig;

/** Bump when what an import of the same bytes builds changes. */
const importFormat = 1;

/**
 * The digest naming the base of an import that has no image manifest: of
 * what was imported (the file's sha256, or the directory's canonical tar)
 * and the config it runs with. Prefixed so it can never name a manifest.
 */
export function importDigest(kind: string, content: string, config: ImageRuntimeConfig): string {
  const text = JSON.stringify({ "skiff-import": importFormat, kind, content, config });
  return `sha256:${createHash("sha256").update(text).digest("hex")}`;
}

/** "alpine-rootfs.tar.gz" → "alpine-rootfs"; a directory's own name. */
export function defaultImportName(path: string): string {
  const base = basename(path.replace(/\/+$/, ""));
  return base.replace(/\.(tar(\.(gz|gzip|zst|zstd|xz|bz2))?|tgz|tzst|txz|tbz2?)$/i, "") || base;
}

/** Whether `name` (a tag like "alpine:3.20" or "docker.io/library/alpine:3.20") is what `wanted` asks for. */
export function refMatches(name: string, wanted: string): boolean {
  return name === wanted || name.endsWith(`/${wanted}`) || name === `${wanted}:latest` || name.endsWith(`/${wanted}:latest`);
}

/** One of several images: by `ref` when given, else the only one. */
export function chooseImage<T>(images: T[], namesOf: (image: T) => string[], where: string, ref: string | undefined): T {
  const matching = ref === undefined ? images : images.filter((image) => namesOf(image).some((n) => refMatches(n, ref)));
  if (matching.length === 1) return matching[0]!;
  const names = images.flatMap((image) => namesOf(image));
  if (matching.length === 0 && ref !== undefined) {
    throw new SkiffError("ERR_SKIFF_IMAGE_NOT_FOUND", `${where} holds no image named ${ref}; it has: ${names.join(", ") || "(unnamed images)"}`, {
      details: { where, ref, names },
    });
  }
  if (matching.length === 0) throw badImport(where, "it holds no image");
  throw new SkiffError("ERR_SKIFF_USAGE", `${where} holds ${matching.length} images (${names.join(", ") || "unnamed"}); say which one to import`, {
    hint: "import one image per archive, or choose one by its name",
    details: { where, names },
  });
}

/** Refuse an image built for another machine: it would not boot. An unstated platform passes; so does any variant unless one was asked for. */
export function checkPlatform(have: Platform | undefined, want: Platform | undefined, where: string): void {
  if (have === undefined) return;
  const wanted = want ?? defaultPlatform;
  const a = normalizePlatform(have);
  const b = normalizePlatform(wanted);
  const ok = want === undefined ? a.os === b.os && a.architecture === b.architecture : platformMatches(have, wanted);
  if (!ok) throw platformError(where, wanted, [have]);
}

/** Run a registry-side parser on archive content: its ERR_SKIFF_REGISTRY becomes a bad archive. */
export function asArchive<T>(where: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (isSkiffError(err) && err.code === "ERR_SKIFF_REGISTRY") throw badImport(where, err.message, err);
    throw err;
  }
}
