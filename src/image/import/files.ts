/**
 * The files of an image archive (`docker save`, OCI layout), whether they
 * sit in a directory or inside a tar: named by their path in the archive,
 * located as byte ranges, small ones (manifests, configs) read and checked
 * against the digest that names them.
 */
import { createHash } from "node:crypto";
import { realpathSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { join, sep } from "node:path";
import { errnoOf, SkiffError } from "../../errors.js";
import type { ByteRange } from "../unpack/compression.js";
import { badImport } from "../unpack/errors.js";
import { memberComponents } from "../unpack/paths.js";
import { type ArchiveScan, locateMember } from "./archive.js";

export interface ImageFiles {
  /** The archive or directory, for messages. */
  where: string;
  /** Where `name` is; undefined if the archive has no such file. */
  locate(name: string): ByteRange | undefined;
}

/** Files of a scanned plain tar (`tarPath` is the tar itself, or its decompressed copy). */
export function tarFiles(scan: ArchiveScan, tarPath: string): ImageFiles {
  return { where: scan.path, locate: (name) => locateMember(scan.members, tarPath, name) };
}

/** Files of a directory. Symlinks are followed, but not out of the directory. */
export function dirFiles(dir: string): ImageFiles {
  const root = realpathSync(dir);
  return {
    where: dir,
    locate(name) {
      const parts = memberComponents(name);
      if (parts.length === 0) return undefined;
      let real: string;
      try {
        real = realpathSync(join(root, ...parts));
      } catch (err) {
        if (errnoOf(err) === "ENOENT" || errnoOf(err) === "ENOTDIR") return undefined;
        throw err;
      }
      if (!real.startsWith(root + sep)) return undefined;
      return statSync(real).isFile() ? { path: real } : undefined;
    },
  };
}

/** Largest manifest, index or config read into memory. */
const maxSmallBytes = 16 * 1024 ** 2;

/** Read `name`, checked against `digest` when given. Missing → ERR_SKIFF_BAD_ARCHIVE. */
export async function readSmall(files: ImageFiles, name: string, digest?: string): Promise<Buffer> {
  const range = files.locate(name);
  if (range === undefined) throw badImport(files.where, `${name} is missing`);
  const file = await open(range.path, "r");
  let bytes: Buffer;
  try {
    const length = range.length ?? (await file.stat()).size;
    if (length > maxSmallBytes) throw badImport(files.where, `${name} is ${length} bytes, too big for a manifest or config`);
    bytes = Buffer.alloc(length);
    const { bytesRead } = await file.read(bytes, 0, length, range.offset ?? 0);
    if (bytesRead !== length) throw badImport(files.where, `${name} is truncated`);
  } finally {
    await file.close();
  }
  if (digest !== undefined) verify(files, name, bytes, digest);
  return bytes;
}

export function verify(files: ImageFiles, name: string, bytes: Uint8Array, digest: string): void {
  const actual = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  if (actual !== digest) {
    throw new SkiffError("ERR_SKIFF_DIGEST_MISMATCH", `${name} in ${files.where} hashes to ${actual}, not ${digest}`, {
      hint: "the archive is damaged or was edited after it was made; export it again",
      details: { where: files.where, name, expected: digest, actual },
    });
  }
}

/** "blobs/sha256/<hex>" for a digest, as OCI layouts (and Docker 25's save) store blobs. */
export function blobName(digest: string, where: string): string {
  const match = /^(sha256|sha512):([a-f0-9]+)$/.exec(digest);
  if (!match || (match[1] === "sha256" && match[2]!.length !== 64)) throw badImport(where, `malformed digest ${JSON.stringify(digest)}`);
  if (match[1] !== "sha256") throw badImport(where, `digest algorithm ${match[1]} is not supported (sha256 only)`);
  return `blobs/${match[1]}/${match[2]}`;
}

export function parseJson(bytes: Buffer, where: string, name: string): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw badImport(where, `${name} is not JSON (${(err as Error).message})`, err);
  }
}
