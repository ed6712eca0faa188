/**
 * A file given to `skiff image import`, read once: its sha256, its
 * compression, and (it must be a tar) where each member's bytes are. Layers
 * of an uncompressed `docker save` or OCI archive are then read straight
 * out of it by byte range, with no extraction.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { type ByteRange, type Compression, decompress, detectCompression, rangeStream } from "../unpack/compression.js";
import { badImport, classifyUnpackError } from "../unpack/errors.js";
import { memberComponents } from "../unpack/paths.js";
import { drain, readTar, type TarHeader } from "../unpack/tar-read.js";

export interface ArchiveMember {
  type: TarHeader["type"];
  /** Where the data starts in the plain tar. */
  offset: number;
  size: number;
  linkname?: string;
}

export interface ArchiveScan {
  path: string;
  compression: Compression;
  /** "sha256:…" of the file as it is. */
  digest: string;
  /** By cleaned name ("blobs/sha256/ab…", "manifest.json"); a later member of the same name wins, as in tar. */
  members: Map<string, ArchiveMember>;
}

export async function scanArchive(path: string): Promise<ArchiveScan> {
  const compression = await detectCompression({ path });
  const raw = rangeStream({ path });
  const hash = createHash("sha256");
  raw.on("data", (chunk: Buffer) => hash.update(chunk));
  const stage = decompress(raw, compression);
  const members = new Map<string, ArchiveMember>();
  try {
    await readTar(stage.output, async (header, data) => {
      const name = memberComponents(header.name).join("/");
      members.set(name, {
        type: header.type,
        offset: data.offset + 512,
        size: header.size,
        ...(header.linkname ? { linkname: header.linkname } : {}),
      });
      await drain(data);
    });
    await stage.done;
  } catch (err) {
    stage.abort();
    const classified = classifyUnpackError(err, path, path);
    if (classified.code !== "ERR_SKIFF_BAD_ARCHIVE") throw classified;
    throw badImport(path, `not a readable tar (plain, or gzip, zstd, xz or bzip2 of one): ${(err as Error).message}`, err);
  }
  return { path, compression, digest: `sha256:${hash.digest("hex")}`, members };
}

/**
 * Where member `name` of a plain tar at `tarPath` is, following symlinks
 * and hard links between members (old `docker save` links a layer shared by
 * two images as `../<id>/layer.tar`). Undefined when it is not there.
 */
export function locateMember(members: Map<string, ArchiveMember>, tarPath: string, name: string): ByteRange | undefined {
  let current = memberComponents(name).join("/");
  for (let hops = 0; hops < 16; hops++) {
    const member = members.get(current);
    if (member === undefined) return undefined;
    if (member.type === "file" || member.type === "contiguous-file") return { path: tarPath, offset: member.offset, length: member.size };
    if (member.linkname === undefined) return undefined;
    if (member.type === "link") current = memberComponents(member.linkname).join("/");
    else if (member.type === "symlink") {
      const base = member.linkname.startsWith("/") ? "" : posix.dirname(current);
      current = memberComponents(`${base}/${member.linkname}`).join("/");
    } else return undefined;
  }
  return undefined;
}
