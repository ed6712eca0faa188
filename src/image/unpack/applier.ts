/**
 * Applies layer tars, in order, to a staging directory, following the OCI
 * image spec's changeset rules (image-spec layer.md):
 *
 * - A member replaces whatever is at its path, except that a directory
 *   over a directory merges (the new attributes win).
 * - `.wh.NAME` deletes NAME (a whole tree) *of lower layers*; `.wh..wh..opq`
 *   deletes a directory's lower contents. Neither touches what the same
 *   layer wrote, before or after the marker: paths written in this layer
 *   (and their ancestors) are kept, everything else under the marker goes.
 * - Hard links point at paths of this or earlier layers; symlinks are
 *   written as they are and never followed when writing (see paths.ts).
 * - Owners, modes (setuid/setgid/sticky included), times and xattrs are kept.
 *
 * Ownership. As root ("native"), the staged tree gets the real owners
 * (lchown), modes and device nodes (the `mknod` command), and `mke2fs -d`
 * copies them. Rootless ("fixup") none of that is possible, so the staged
 * tree keeps the building user as owner (and u+rw / u+rwx so the build can
 * read and remove it), and every owner, mode and device node is recorded in
 * `fixups` for the debugfs pass that follows mke2fs (fixups.ts). Either way
 * the finished ext4 is the same. A root that cannot chown or mknod (a user
 * namespace, a container without CAP_MKNOD) falls back to fixups per entry.
 *
 * Metadata calls are synchronous: each is microseconds, the event loop gets
 * control back at every chunk of layer data, and the code reads top-down.
 */
import {
  chmodSync,
  closeSync,
  constants,
  linkSync,
  lchownSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from "node:fs";
import { errnoOf } from "../../errors.js";
import { defaultRunner, type Runner } from "../../process/runner.js";
import { lstatOrUndefined } from "../../util/fs.js";
import { imageEpoch } from "../ext4.js";
import { badArchive } from "./errors.js";
import { type Fixups, forgetUnder, type InodeFixup, type NodeKind } from "./fixups.js";
import { isSparse, memberMeta, type MemberMeta } from "./meta.js";
import { imagePathOf, LookupError, memberComponents, ScopedRoot } from "./paths.js";
import { drain, readTar, type TarEntry, type TarHeader, type TarInput } from "./tar-read.js";

export type OwnershipMode = "native" | "fixup";

export interface ApplierOptions {
  /** Runs `mknod` (native mode). */
  runner?: Runner;
  /** Default: "native" when running as root, else "fixup". */
  ownership?: OwnershipMode;
}

export interface ApplyResult {
  /** What did not stop the unpack but the user may want to know ("xattr dropped", "mknod refused"). */
  warnings: string[];
  /** Owners, modes, nodes and xattrs for the ext4 fixup pass (fixups.ts). Empty for a plain root build. */
  fixups: Fixups;
  /** Members read, whiteouts included. */
  entries: number;
}

export function defaultOwnership(): OwnershipMode {
  return process.getuid?.() === 0 ? "native" : "fixup";
}

const openFlags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export class LayerApplier {
  readonly #root: ScopedRoot;
  readonly #runner: Runner;
  readonly #ownership: OwnershipMode;
  readonly #warnings: string[] = [];
  readonly #fixups: Fixups = new Map();
  /** Directory times, applied once at the end: creating anything inside a directory moves its mtime. */
  readonly #dirTimes = new Map<string, { host: string; atime: number; mtime: number }>();
  /** This layer: paths it wrote, and those paths with all their ancestors (what whiteouts must spare). */
  #written = new Set<string>();
  #keep = new Set<string>();
  #entries = 0;
  #layer = "";
  #chownRefused = false;

  constructor(rootDir: string, opts: ApplierOptions = {}) {
    this.#root = new ScopedRoot(rootDir);
    this.#runner = opts.runner ?? defaultRunner;
    this.#ownership = opts.ownership ?? defaultOwnership();
  }

  /** Apply one layer's plain tar stream. `label` names the layer in errors (its digest). */
  async applyTar(input: TarInput, label: string, onChunk?: (chunk: Buffer) => void): Promise<void> {
    this.#layer = label;
    this.#written = new Set();
    this.#keep = new Set();
    await readTar(input, (header, data) => this.#member(header, data), onChunk);
  }

  /** After the last layer: directory times (set last, since creating entries moves them), and the result. */
  finish(): ApplyResult {
    // lutimes: a path recorded as a directory is never followed, even if something replaced it.
    for (const { host, atime, mtime } of this.#dirTimes.values()) lutimesSync(host, atime, mtime);
    return { warnings: this.#warnings, fixups: this.#fixups, entries: this.#entries };
  }

  async #member(header: TarHeader, data: TarEntry): Promise<void> {
    this.#entries++;
    if (isSparse(header)) throw badArchive(this.#layer, `${header.name} is a GNU sparse file, which skiff does not read`);
    const parts = memberComponents(header.name);
    const base = parts[parts.length - 1];
    // AUFS bookkeeping at the top of old Docker layers (".wh..wh.plnk/…", ".wh..wh.aufs"), not image content.
    const aufs = parts[0]?.startsWith(".wh..wh.") === true && !(parts.length === 1 && base === ".wh..wh..opq");
    // Only regular files have data to read; the rest is drained here (whiteouts are empty files).
    const hasData = (header.type === "file" || header.type === "contiguous-file") && base !== undefined && !base.startsWith(".wh.") && !aufs;
    if (!hasData) await drain(data);
    if (aufs) return;
    if (base === undefined) {
      if (header.type === "directory") this.#rootAttributes(memberMeta(header));
      return;
    }
    try {
      if (base.startsWith(".wh.")) {
        this.#whiteout(parts.slice(0, -1), base);
        return;
      }
      const dir = this.#root.resolveDir(parts.slice(0, -1), { create: true, onCreate: (r) => this.#implicitDir(r) })!;
      const resolved = [...dir, base];
      await this.#write(header, data, resolved);
      this.#markWritten(resolved);
    } catch (err) {
      if (err instanceof LookupError) throw badArchive(this.#layer, `${header.name}: ${err.message}`);
      throw err;
    }
  }

  async #write(header: TarHeader, data: TarEntry, resolved: string[]): Promise<void> {
    const path = imagePathOf(resolved);
    const host = this.#root.hostPath(resolved);
    const meta = memberMeta(header);
    for (const why of meta.dropped) this.#warn(`${path}: xattr ${why}`);
    switch (header.type) {
      case "file":
      case "contiguous-file":
        this.#clear(host, path, false);
        await writeFile(host, data);
        this.#attributes(host, path, "file", meta);
        utimesSync(host, meta.atime, meta.mtime);
        return;
      case "directory":
        if (!this.#clear(host, path, true)) mkdirSync(host, 0o700);
        this.#attributes(host, path, "dir", meta);
        this.#dirTimes.set(path, { host, atime: meta.atime, mtime: meta.mtime });
        return;
      case "symlink":
        if (!header.linkname) throw badArchive(this.#layer, `symlink ${header.name} has no target`);
        this.#clear(host, path, false);
        symlinkSync(header.linkname, host);
        this.#attributes(host, path, "symlink", meta);
        lutimesSync(host, meta.atime, meta.mtime);
        return;
      case "link":
        return this.#hardLink(header, host, path);
      case "character-device":
      case "block-device":
      case "fifo":
        return this.#node(header, host, path, meta);
      default:
        throw badArchive(this.#layer, `${header.name} has an unsupported tar entry type (${String(header.type)})`);
    }
  }

  /**
   * Make room at `host` for a new member. An existing directory stays when
   * a directory is coming (returns true); anything else is removed, with
   * whatever was recorded for it.
   */
  #clear(host: string, path: string, keepDir: boolean): boolean {
    const st = lstatOrUndefined(host);
    if (st === undefined) {
      this.#fixups.delete(path); // a node only recorded (rootless) may sit here
      return false;
    }
    if (keepDir && st.isDirectory()) return true;
    if (st.isDirectory()) {
      rmSync(host, { recursive: true, force: true });
      this.#forget(path);
      this.#root.invalidate();
    } else {
      unlinkSync(host);
      this.#fixups.delete(path);
      if (st.isSymbolicLink()) this.#root.invalidate();
    }
    return false;
  }

  #hardLink(header: TarHeader, host: string, path: string): void {
    const target = memberComponents(header.linkname ?? "");
    const targetName = target[target.length - 1];
    const targetDir = targetName === undefined ? undefined : this.#root.resolveDir(target.slice(0, -1), { create: false });
    if (targetName === undefined || targetDir === undefined) {
      throw badArchive(this.#layer, `hard link ${header.name} points to ${JSON.stringify(header.linkname)}, which does not exist`);
    }
    const resolved = [...targetDir, targetName];
    const targetPath = imagePathOf(resolved);
    if (targetPath === path) return; // a link to itself: the file is already there
    const targetHost = this.#root.hostPath(resolved);
    const st = lstatOrUndefined(targetHost);
    const recorded = this.#fixups.get(targetPath);
    if (st === undefined && recorded?.create) {
      // A device node that only exists as a record (rootless): it becomes a second node, not a second name.
      this.#clear(host, path, false);
      this.#fixups.set(path, recorded);
      this.#warn(`${path}: hard link to device node ${targetPath} made as a separate node (not root)`);
      return;
    }
    if (st === undefined) throw badArchive(this.#layer, `hard link ${header.name} points to ${header.linkname}, which does not exist`);
    if (st.isDirectory()) throw badArchive(this.#layer, `hard link ${header.name} points to a directory (${header.linkname})`);
    this.#clear(host, path, false);
    // link(2) does not follow a symlink target: the new name shares the symlink's own inode.
    linkSync(targetHost, host);
    if (recorded) this.#fixups.set(path, recorded);
  }

  async #node(header: TarHeader, host: string, path: string, meta: MemberMeta): Promise<void> {
    const kind: NodeKind = header.type === "fifo" ? "fifo" : header.type === "block-device" ? "block" : "char";
    this.#clear(host, path, false);
    const numbers = kind === "fifo" ? [] : [kind === "char" ? "c" : "b", String(header.devmajor), String(header.devminor)];
    if (this.#ownership === "native") {
      const made = await this.#runner.run("mknod", ["-m", meta.mode.toString(8), host, ...(kind === "fifo" ? ["p"] : numbers)], {
        debianPackage: "coreutils",
        timeoutMs: 10_000,
      });
      if (made.code === 0) {
        this.#attributes(host, path, kind, meta);
        utimesSync(host, meta.atime, meta.mtime);
        return;
      }
      if (/No space left|quota exceeded/i.test(made.stderr)) {
        throw Object.assign(new Error(`mknod ${host}: ${made.stderr.trim()}`), { code: "ENOSPC" });
      }
      this.#warn(`${path}: mknod refused (${made.stderr.trim()}); the node is made in the ext4 by debugfs instead`);
    } else {
      this.#warn(`${path}: ${kind} node not created in the staging directory (not root); made in the ext4 by debugfs`);
    }
    this.#fixups.set(path, {
      kind,
      owner: { uid: meta.uid, gid: meta.gid },
      mode: meta.mode,
      create: { major: header.devmajor, minor: header.devminor, mtime: Math.floor(meta.mtime) },
      ...(meta.xattrs.length > 0 ? { xattrs: meta.xattrs } : {}),
    });
  }

  /** Owner, mode and xattrs of a node just written (times are the caller's). */
  #attributes(host: string, path: string, kind: NodeKind, meta: MemberMeta): void {
    const fix: InodeFixup = { kind };
    if (this.#ownership === "native") {
      try {
        lchownSync(host, meta.uid, meta.gid);
      } catch (err) {
        const code = errnoOf(err);
        if (code !== "EPERM" && code !== "EINVAL") throw err;
        if (!this.#chownRefused) this.#warn(`lchown refused (${code}): owners are written into the ext4 by debugfs instead`);
        this.#chownRefused = true;
        fix.owner = { uid: meta.uid, gid: meta.gid };
      }
      // After lchown, which clears setuid/setgid.
      if (kind !== "symlink") chmodSync(host, meta.mode);
    } else {
      fix.owner = { uid: meta.uid, gid: meta.gid };
      fix.mode = meta.mode;
      if (kind !== "symlink") chmodSync(host, meta.mode | (kind === "dir" ? 0o700 : 0o600));
    }
    if (meta.xattrs.length > 0) fix.xattrs = meta.xattrs;
    if (fix.owner || fix.mode !== undefined || fix.xattrs) this.#fixups.set(path, fix);
    else this.#fixups.delete(path);
  }

  /** A directory a member needs that no member made: root's, 0755, at the image epoch. */
  #implicitDir(resolved: readonly string[]): void {
    const path = imagePathOf(resolved);
    const host = this.#root.hostPath(resolved);
    chmodSync(host, 0o755); // mkdir's mode went through the umask
    if (this.#ownership === "fixup") this.#fixups.set(path, { kind: "dir", owner: { uid: 0, gid: 0 }, mode: 0o755 });
    this.#dirTimes.set(path, { host, atime: imageEpoch, mtime: imageEpoch });
  }

  #rootAttributes(meta: MemberMeta): void {
    // mke2fs -d gives the root 0755 and root_owner; only a different root needs the fixup pass.
    if (meta.uid === 0 && meta.gid === 0 && meta.mode === 0o755 && meta.xattrs.length === 0) {
      this.#fixups.delete("/");
      return;
    }
    this.#fixups.set("/", {
      kind: "dir",
      owner: { uid: meta.uid, gid: meta.gid },
      mode: meta.mode,
      ...(meta.xattrs.length > 0 ? { xattrs: meta.xattrs } : {}),
    });
  }

  #markWritten(resolved: readonly string[]): void {
    this.#written.add(imagePathOf(resolved));
    for (let i = resolved.length; i >= 1; i--) {
      const path = imagePathOf(resolved.slice(0, i));
      if (this.#keep.has(path)) break;
      this.#keep.add(path);
    }
  }

  #whiteout(dirParts: string[], base: string): void {
    let dir: readonly string[] | undefined;
    try {
      dir = this.#root.resolveDir(dirParts, { create: false });
    } catch (err) {
      if (err instanceof LookupError) return; // no directory there: nothing to hide
      throw err;
    }
    if (dir === undefined) return;
    if (base === ".wh..wh..opq") this.#removeLowerChildren(dir);
    // Other ".wh..wh." names are AUFS bookkeeping (".wh..wh.plnk"), not image content.
    else if (!base.startsWith(".wh..wh.")) this.#removeLower([...dir, base.slice(".wh.".length)]);
  }

  /** Remove what lower layers put at `resolved`, sparing what this layer wrote. */
  #removeLower(resolved: readonly string[]): void {
    const path = imagePathOf(resolved);
    const host = this.#root.hostPath(resolved);
    const st = lstatOrUndefined(host);
    if (this.#keep.has(path)) {
      if (st?.isDirectory()) this.#removeLowerChildren(resolved);
      return;
    }
    this.#forget(path);
    if (st === undefined) return;
    if (st.isDirectory()) rmSync(host, { recursive: true, force: true });
    else unlinkSync(host);
    if (st.isDirectory() || st.isSymbolicLink()) this.#root.invalidate();
  }

  #removeLowerChildren(resolved: readonly string[]): void {
    const path = imagePathOf(resolved);
    for (const name of readdirSync(this.#root.hostPath(resolved))) this.#removeLower([...resolved, name]);
    // Nodes that exist only as records (rootless devices) have no directory entry to find above.
    const spare = (key: string) => key === path || this.#keep.has(key);
    forgetUnder(this.#fixups, path, spare);
    forgetUnder(this.#dirTimes, path, spare);
  }

  #forget(path: string): void {
    forgetUnder(this.#fixups, path);
    forgetUnder(this.#dirTimes, path);
  }

  #warn(message: string): void {
    this.#warnings.push(`layer ${this.#layer}: ${message}`);
  }
}

async function writeFile(host: string, data: TarEntry): Promise<void> {
  const fd = openSync(host, openFlags, 0o600);
  try {
    for await (const chunk of data) {
      for (let at = 0; at < chunk.byteLength; ) at += writeSync(fd, chunk, at, chunk.byteLength - at);
    }
  } finally {
    closeSync(fd);
  }
}
