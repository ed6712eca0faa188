/**
 * Unpack a tar that a guest made into a host directory, treating it as
 * hostile: a guest's root can replace the tar that writes it, so every byte
 * of it, names and headers included, is data from an attacker.
 *
 * - Entries land beneath the destination or are refused (safe-paths.ts);
 *   links are never followed, neither on the way nor at the last component:
 *   whatever is at an entry's path is removed first and the new file is
 *   made with O_EXCL|O_NOFOLLOW, so nothing is ever written through an
 *   existing file, symlink or hard link.
 * - Files, directories and symlinks are made (a symlink pointing anywhere
 *   is harmless as long as nothing follows it). Hard links only to a
 *   regular file this archive made earlier.
 * - By default files belong to whoever runs skiff, setuid/setgid bits are
 *   cleared, and device nodes and fifos are skipped; the report counts
 *   both. `archive` (docker cp -a) keeps owners, full modes, fifos and
 *   device nodes — but still never leaves the destination.
 * - One entry at a time, file data streamed to disk: memory stays small
 *   whatever the archive holds (tar-stream caps PAX and long-name headers).
 * - A file whose data ends early (a truncated archive) is removed again:
 *   nothing half-written stays where it was to appear.
 *
 * Directory modes and times are set at the end, deepest first, as tar
 * does: a read-only directory must still take its entries, and adding them
 * changes its mtime. Filesystem calls are synchronous, as in the image
 * applier: each takes microseconds, and the event loop gets control back at
 * every chunk of the archive.
 */
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { errnoOf, isSkiffError, SkiffError } from "../../errors.js";
import { drain, readTar, type TarEntry, type TarHeader, type TarInput } from "../../image/unpack/tar-read.js";
import { defaultRunner, type Runner } from "../../process/runner.js";
import { lstatOrUndefined } from "../../util/fs.js";
import { at, Destination, nameComponents, nameProblem, unsafeEntry } from "./beneath.js";

export interface ExtractOptions {
  /** An existing directory; nothing outside it is touched. */
  dest: string;
  /** Where the archive comes from, for messages ("web:/srv"). */
  source: string;
  /** docker cp -a: keep owners and setuid/setgid bits, make fifos and device nodes. */
  archive?: boolean;
  /** Runs `mknod` (archive mode). */
  runner?: Runner;
}

/** What was not copied as it was in the archive. */
export interface ExtractReport {
  /** Entries not made: device nodes, fifos, and types skiff does not know. */
  skipped: { devices: number; fifos: number; other: number };
  /** Files and directories made without the setuid/setgid bits they had. */
  setidCleared: number;
}

interface Attributes {
  mode: number;
  uid: number;
  gid: number;
  mtime: Date | undefined;
}

const createFlags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const setidBits = 0o6000;

export async function extractUntrusted(input: TarInput, opts: ExtractOptions): Promise<ExtractReport> {
  const dest = new Destination(opts.dest, opts.source);
  try {
    const extraction = new Extraction(dest, opts);
    try {
      await readTar(input, (header, data) => extraction.entry(header, data));
      extraction.finishDirectories();
    } catch (err) {
      if (isSkiffError(err)) throw err;
      // Everything else from our side is wrapped per entry: this is the parser or the stream.
      throw brokenArchive(opts.source, undefined, err);
    }
    return extraction.report;
  } finally {
    dest.close();
  }
}

class Extraction {
  readonly report: ExtractReport = { skipped: { devices: 0, fifos: 0, other: 0 }, setidCleared: 0 };
  readonly #dest: Destination;
  readonly #archive: boolean;
  readonly #runner: Runner;
  /** Regular files this archive made, by path: the only things a hard link may point at. */
  readonly #files = new Set<string>();
  /** Attributes of the directories entries named, applied at the end. */
  readonly #dirs = new Map<string, Attributes>();

  constructor(dest: Destination, opts: ExtractOptions) {
    this.#dest = dest;
    this.#archive = opts.archive === true;
    this.#runner = opts.runner ?? defaultRunner;
  }

  async entry(header: TarHeader, data: TarEntry): Promise<void> {
    const name = header.name;
    const problem = nameProblem(name);
    if (problem !== undefined) throw unsafeEntry(this.#dest.source, name, problem);
    const parts = nameComponents(name);
    if (header.type !== "file" && header.type !== "contiguous-file") await drain(data);
    if (parts.length === 0 && header.type !== "directory") {
      throw unsafeEntry(this.#dest.source, name, "it would replace the destination itself");
    }
    try {
      switch (header.type) {
        case "directory":
          return this.#directory(parts, header);
        case "file":
        case "contiguous-file":
          return await this.#file(parts, header, data);
        case "symlink":
          return this.#symlink(parts, header);
        case "link":
          return this.#hardLink(parts, header);
        case "character-device":
        case "block-device":
        case "fifo":
          return await this.#special(parts, header);
        default:
          this.report.skipped.other++;
      }
    } catch (err) {
      throw isSkiffError(err) ? err : hostError(err, this.#dest.shown(parts), name, this.#archive);
    }
  }

  /** Modes and times (and owners) of the directories, deepest first. */
  finishDirectories(): void {
    this.#dest.forget();
    const byDepth = [...this.#dirs].sort(([a], [b]) => depth(b) - depth(a));
    for (const [key, attrs] of byDepth) {
      const parts = key === "" ? [] : key.split("/");
      try {
        const fd = this.#dest.openDir(parts, key);
        try {
          if (this.#archive) fchownSync(fd, attrs.uid, attrs.gid);
          fchmodSync(fd, attrs.mode);
          if (attrs.mtime !== undefined) futimesSync(fd, attrs.mtime, attrs.mtime);
        } finally {
          this.#dest.release(fd);
        }
      } catch (err) {
        throw isSkiffError(err) ? err : hostError(err, this.#dest.shown(parts), key, this.#archive);
      }
    }
  }

  #directory(parts: string[], header: TarHeader): void {
    if (parts.length > 0) {
      const dirFd = this.#dest.dir(parts.slice(0, -1), header.name);
      const leaf = parts[parts.length - 1] as string;
      const existing = lstatOrUndefined(at(dirFd, leaf));
      if (existing?.isDirectory() !== true) {
        if (existing !== undefined) unlinkSync(at(dirFd, leaf));
        // Owner-only until finishDirectories gives it its mode.
        mkdirSync(at(dirFd, leaf), 0o700);
      }
    }
    this.#files.delete(parts.join("/"));
    this.#dirs.set(parts.join("/"), this.#attributes(header));
  }

  async #file(parts: string[], header: TarHeader, data: TarEntry): Promise<void> {
    const dirFd = this.#clear(parts, header.name);
    const path = at(dirFd, parts[parts.length - 1] as string);
    const attrs = this.#attributes(header);
    const fd = openSync(path, createFlags, 0o600);
    let complete = false;
    try {
      await this.#copyData(data, fd, header.name);
      if (this.#archive) fchownSync(fd, attrs.uid, attrs.gid);
      fchmodSync(fd, attrs.mode);
      if (attrs.mtime !== undefined) futimesSync(fd, attrs.mtime, attrs.mtime);
      complete = true;
    } finally {
      closeSync(fd);
      if (!complete) unlinkSync(path);
    }
    this.#files.add(parts.join("/"));
  }

  /** The entry's data into `fd`, a chunk at a time: the next chunk is read only once this one is written. */
  async #copyData(data: TarEntry, fd: number, entry: string): Promise<void> {
    const chunks = data[Symbol.asyncIterator]();
    for (;;) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await chunks.next();
      } catch (err) {
        throw brokenArchive(this.#dest.source, entry, err);
      }
      if (next.done === true) return;
      for (let offset = 0; offset < next.value.byteLength; ) offset += writeSync(fd, next.value, offset);
    }
  }

  #symlink(parts: string[], header: TarHeader): void {
    const target = header.linkname ?? "";
    if (target === "" || target.includes("\0")) throw unsafeEntry(this.#dest.source, header.name, "its link target is empty or holds a NUL byte");
    const path = at(this.#clear(parts, header.name), parts[parts.length - 1] as string);
    symlinkSync(target, path);
    const attrs = this.#attributes(header);
    if (this.#archive) lchownSync(path, attrs.uid, attrs.gid);
    if (attrs.mtime !== undefined) lutimesSync(path, attrs.mtime, attrs.mtime);
  }

  #hardLink(parts: string[], header: TarHeader): void {
    const target = header.linkname ?? "";
    const refuse = (why: string) => unsafeEntry(this.#dest.source, header.name, `it is a hard link to ${JSON.stringify(target)}, ${why}`);
    const problem = nameProblem(target);
    if (problem !== undefined) throw refuse(problem.replace(/^it /, "which "));
    const targetParts = nameComponents(target);
    if (!this.#files.has(targetParts.join("/"))) throw refuse("which is not a regular file made earlier from this archive");
    if (targetParts.join("/") === parts.join("/")) throw refuse("itself");
    const targetDir = this.#dest.openDir(targetParts.slice(0, -1), header.name);
    try {
      const targetPath = at(targetDir, targetParts[targetParts.length - 1] as string);
      if (lstatOrUndefined(targetPath)?.isFile() !== true) throw refuse("which is no longer a regular file");
      linkSync(targetPath, at(this.#clear(parts, header.name), parts[parts.length - 1] as string));
    } finally {
      this.#dest.release(targetDir);
    }
    this.#files.add(parts.join("/"));
  }

  /** Device nodes and fifos: made only in archive mode, by `mknod` (Node has no mknod). */
  async #special(parts: string[], header: TarHeader): Promise<void> {
    const fifo = header.type === "fifo";
    if (!this.#archive) {
      if (fifo) this.report.skipped.fifos++;
      else this.report.skipped.devices++;
      return;
    }
    const path = at(this.#clear(parts, header.name), parts[parts.length - 1] as string);
    const attrs = this.#attributes(header);
    const kind = fifo ? ["p"] : [header.type === "block-device" ? "b" : "c", String(header.devmajor ?? 0), String(header.devminor ?? 0)];
    const made = await this.#runner.run("mknod", ["-m", attrs.mode.toString(8), path, ...kind], { debianPackage: "coreutils" });
    if (made.code !== 0) {
      const denied = /not permitted/i.test(made.stderr);
      throw new SkiffError(denied ? "ERR_SKIFF_NEEDS_ROOT" : "ERR_SKIFF_HOST", `cannot make ${this.#dest.shown(parts)} (${header.type}): ${made.stderr.trim()}`, {
        ...(denied ? { hint: "device nodes are made only as root; copy without -a to skip them" } : {}),
        details: { entry: header.name },
      });
    }
    lchownSync(path, attrs.uid, attrs.gid);
    // chown cleared setuid/setgid; the node is ours and new, so chmod (which would follow a link) meets no link.
    if ((attrs.mode & setidBits) !== 0) chmodSync(path, attrs.mode);
  }

  /**
   * Make room for a non-directory at `parts`: remove whatever is there (an
   * empty directory too, as tar does). Returns the parent's descriptor.
   */
  #clear(parts: string[], entry: string): number {
    const key = parts.join("/");
    this.#files.delete(key);
    const dirFd = this.#dest.dir(parts.slice(0, -1), entry);
    const path = at(dirFd, parts[parts.length - 1] as string);
    const existing = lstatOrUndefined(path);
    if (existing?.isDirectory() === true) {
      try {
        rmdirSync(path);
      } catch (err) {
        if (errnoOf(err) !== "ENOTEMPTY" && errnoOf(err) !== "EEXIST") throw err;
        throw new SkiffError("ERR_SKIFF_BAD_PATH", `cannot overwrite a directory with a file on the host: ${this.#dest.shown(parts)}`, {
          details: { source: this.#dest.source, entry },
        });
      }
      this.#dirs.delete(key);
      // A directory at that path could be one of the open ones.
      this.#dest.forget();
      return this.#dest.dir(parts.slice(0, -1), entry);
    }
    if (existing !== undefined) unlinkSync(path);
    return dirFd;
  }

  #attributes(header: TarHeader): Attributes {
    const mode = (header.mode ?? 0o644) & 0o7777;
    if (!this.#archive && (mode & setidBits) !== 0 && (header.type === "file" || header.type === "contiguous-file" || header.type === "directory")) {
      this.report.setidCleared++;
    }
    const mtime = header.mtime instanceof Date && Number.isFinite(header.mtime.getTime()) ? header.mtime : undefined;
    return { mode: this.#archive ? mode : mode & ~setidBits, uid: header.uid ?? 0, gid: header.gid ?? 0, mtime };
  }
}

function depth(key: string): number {
  return key === "" ? 0 : key.split("/").length;
}

/** The archive itself is broken: truncated (the guest's tar died), or not a tar. */
function brokenArchive(source: string, entry: string | undefined, cause: unknown): SkiffError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new SkiffError("ERR_SKIFF_COPY_FAILED", `the archive from ${source} is truncated or corrupt${entry === undefined ? "" : ` at ${JSON.stringify(entry)}`}: ${why}`, {
    cause,
    details: { source, ...(entry === undefined ? {} : { entry }) },
  });
}

function hostError(err: unknown, shown: string, entry: string, archive: boolean): SkiffError {
  const code = errnoOf(err);
  if (archive && code === "EPERM") {
    return new SkiffError("ERR_SKIFF_NEEDS_ROOT", `cannot keep the owner of ${shown} (-a): ${code}`, {
      hint: "keeping owners takes root; copy without -a to own the files yourself",
      cause: err,
      details: { entry },
    });
  }
  return new SkiffError("ERR_SKIFF_HOST", `cannot write ${shown}: ${code ?? (err as Error).message}`, { cause: err, details: { entry } });
}
