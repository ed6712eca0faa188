/**
 * The image cache: `<cache>/images/sha256-<hex>.ext4`, read-only bases that
 * every VM's qcow2 overlay sits on, each with a small JSON record beside it
 * saying what it is. The .ext4 file is the commit point: it is renamed into
 * place last, so a base that exists is whole, and a record without its base
 * is ignored.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { errnoOf } from "../errors.js";
import { readJsonIfExists, writeJsonAtomic } from "../store/atomic.js";
import { digestHex } from "./manifest.js";
import type { ImageRuntimeConfig, Platform } from "./oci/types.js";
import { readdirOrEmpty } from "../util/fs.js";

/** What the cache knows about one base. */
export interface CachedImage {
  /** The name it was made or pulled as ("base"); undefined if its record is lost. */
  name: string | undefined;
  digest: string;
  basePath: string;
  /** The ext4's size: the disk size the guest sees. */
  sizeBytes: number;
  /** What it takes on the host's disk (the file is sparse). */
  diskUsageBytes: number;
  builtin: boolean;
  /** ISO time the base was made. */
  createdAt: string;
  /** From the record, for OCI images and imports. */
  ref?: string;
  config?: ImageRuntimeConfig;
}

/** The record stored beside a base. Fields past `source` came with OCI images; older records lack them. */
export interface ImageRecord {
  name: string;
  digest: string;
  builtin: boolean;
  createdAt: string;
  /** Free-form facts about the source ("busybox 1.35.0", "docker save archive /x/y.tar"). */
  source?: string;
  /** The reference it was pulled or imported as ("docker.io/library/alpine:3.20"). */
  ref?: string;
  /** What `run` honours, so the engine needs no registry to start it. */
  config?: ImageRuntimeConfig;
  /** "sha256:…" of the image config blob, when there is one. */
  configDigest?: string;
  platform?: Platform;
  /** Bytes of the unpacked tree that went into the ext4. */
  contentBytes?: number;
  /** The ext4's size (the disk the guest sees). */
  sizeBytes?: number;
  /** Version of the unpack recipe that built it (unpack/build.ts), so a changed recipe can tell old bases apart. */
  layoutVersion?: number;
  /** Non-fatal problems of the build (dropped xattrs, nodes made by debugfs). */
  warnings?: string[];
}

export function imagesDir(cacheDir: string): string {
  return join(cacheDir, "images");
}

export function imagePath(cacheDir: string, digest: string): string {
  return join(imagesDir(cacheDir), `sha256-${digestHex(digest)}.ext4`);
}

export function imageRecordPath(cacheDir: string, digest: string): string {
  return join(imagesDir(cacheDir), `sha256-${digestHex(digest)}.json`);
}

/** The record beside base `digest`; undefined if there is none (or it is unreadable). */
export async function readImageRecord(cacheDir: string, digest: string): Promise<ImageRecord | undefined> {
  try {
    return await readJsonIfExists<ImageRecord>(imageRecordPath(cacheDir, digest));
  } catch {
    return undefined;
  }
}

export async function writeImageRecord(cacheDir: string, record: ImageRecord): Promise<void> {
  await writeJsonAtomic(imageRecordPath(cacheDir, record.digest), record);
}

/** The cached base with this digest, or undefined if it has not been made. */
export async function cachedImage(cacheDir: string, digest: string): Promise<CachedImage | undefined> {
  const basePath = imagePath(cacheDir, digest);
  let st;
  try {
    st = await stat(basePath);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return undefined;
    throw err;
  }
  // A broken record costs the name, not the base.
  const record = await readImageRecord(cacheDir, digest);
  return {
    name: record?.name,
    digest,
    basePath,
    sizeBytes: st.size,
    diskUsageBytes: st.blocks * 512,
    builtin: record?.builtin ?? false,
    createdAt: record?.createdAt ?? st.mtime.toISOString(),
    ...(record?.ref === undefined ? {} : { ref: record.ref }),
    ...(record?.config === undefined ? {} : { config: record.config }),
  };
}

/** Every base in the cache, newest first. */
export async function listImages(cacheDir: string): Promise<CachedImage[]> {
  const names = await readdirOrEmpty(imagesDir(cacheDir));
  const images: CachedImage[] = [];
  for (const name of names) {
    const hex = /^sha256-([0-9a-f]{64})\.ext4$/.exec(name)?.[1];
    if (hex === undefined) continue;
    const image = await cachedImage(cacheDir, `sha256:${hex}`);
    if (image) images.push(image);
  }
  return images.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
}
