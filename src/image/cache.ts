/**
 * The image cache: `<cache>/images/sha256-<hex>.ext4`, read-only bases that
 * every VM's qcow2 overlay sits on, each with a small JSON record beside it
 * saying what it is. The .ext4 file is the commit point: it is renamed into
 * place last, so a base that exists is whole, and a record without its base
 * is ignored.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { errnoOf } from "../errors.js";
import { readJsonIfExists, writeJsonAtomic } from "../store/atomic.js";
import { digestHex } from "./manifest.js";

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
}

/** The record stored beside a base. */
export interface ImageRecord {
  name: string;
  digest: string;
  builtin: boolean;
  createdAt: string;
  /** Free-form facts about the source ("busybox 1.35.0"). */
  source?: string;
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
  let record: ImageRecord | undefined;
  try {
    record = await readJsonIfExists<ImageRecord>(imageRecordPath(cacheDir, digest));
  } catch {
    record = undefined; // a broken record costs the name, not the base
  }
  return {
    name: record?.name,
    digest,
    basePath,
    sizeBytes: st.size,
    diskUsageBytes: st.blocks * 512,
    builtin: record?.builtin ?? false,
    createdAt: record?.createdAt ?? st.mtime.toISOString(),
  };
}

/** Every base in the cache, newest first. */
export async function listImages(cacheDir: string): Promise<CachedImage[]> {
  let names: string[];
  try {
    names = await readdir(imagesDir(cacheDir));
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return [];
    throw err;
  }
  const images: CachedImage[] = [];
  for (const name of names) {
    const hex = /^sha256-([0-9a-f]{64})\.ext4$/.exec(name)?.[1];
    if (hex === undefined) continue;
    const image = await cachedImage(cacheDir, `sha256:${hex}`);
    if (image) images.push(image);
  }
  return images.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
}
