/**
 * Where an entry of an untrusted tar may go: beneath one destination
 * directory and nowhere else.
 *
 * Names are checked as text first (no absolute path, no `..`, no NUL, not
 * empty). Then every directory on the way is opened relative to the one
 * before it with O_DIRECTORY|O_NOFOLLOW, through `/proc/<pid>/fd/<fd>/<name>`:
 * Node has no openat(2), and that path is what openat does — the kernel
 * looks `name` up in the directory the descriptor holds, whatever happened to
 * the path since. So a symlink on the way is never followed, whether an
 * earlier copy left it or an earlier entry of the same archive made it, and
 * a rename racing the copy cannot steer it elsewhere either. The last
 * component is the caller's, with calls that never follow it (lstat,
 * unlink, symlink, link, open with O_NOFOLLOW|O_EXCL).
 */
import { closeSync, constants, lstatSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import { errnoOf, SkiffError } from "../../errors.js";

const dirFlags = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** `name` inside the directory open as `dirFd`, as a path any call (or a child process of ours) can take. */
export function at(dirFd: number, name: string): string {
  return `/proc/${process.pid}/fd/${dirFd}/${name}`;
}

/** Why an entry name could reach outside the destination, or undefined when it cannot. */
export function nameProblem(name: string): string | undefined {
  if (name === "") return "its name is empty";
  if (name.includes("\0")) return "its name holds a NUL byte";
  if (name.startsWith("/")) return "it is an absolute path";
  if (name.split("/").includes("..")) return 'it has a ".." component';
  return undefined;
}

/** "./a//b/" → ["a", "b"]; "./" → [] (the destination itself). Check nameProblem first. */
export function nameComponents(name: string): string[] {
  return name.split("/").filter((part) => part !== "" && part !== ".");
}

/** ERR_SKIFF_COPY_UNSAFE: an entry that would write outside the destination, or through a link. */
export function unsafeEntry(source: string, entry: string, why: string): SkiffError {
  return new SkiffError("ERR_SKIFF_COPY_UNSAFE", `refused ${JSON.stringify(entry)} in the archive from ${source}: ${why}`, {
    hint: "the archive tried to write outside the destination or through a link; nothing outside the destination was touched",
    details: { source, entry, reason: why },
  });
}

/**
 * One destination directory, open for the length of an extraction. The
 * directories of the last entry stay open, so that the next entry in the
 * same directory (the usual order of a tar) opens nothing new.
 */
export class Destination {
  readonly #root: number;
  #chain: { name: string; fd: number }[] = [];

  constructor(
    readonly path: string,
    /** Where the archive comes from, for messages ("web:/srv"). */
    readonly source: string,
  ) {
    this.#root = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY);
  }

  get rootFd(): number {
    return this.#root;
  }

  /** The host path of `parts`, for messages. */
  shown(parts: readonly string[]): string {
    return join(this.path, ...parts);
  }

  /**
   * The directory `parts` (an entry's parents), missing ones made with the
   * default mode. Valid until the next call, forget() or close().
   */
  dir(parts: readonly string[], entry: string): number {
    let kept = 0;
    while (kept < parts.length && kept < this.#chain.length && this.#chain[kept]?.name === parts[kept]) kept++;
    this.#closeFrom(kept);
    for (let i = kept; i < parts.length; i++) {
      const name = parts[i] as string;
      const fd = this.#openDir(this.#chain[i - 1]?.fd ?? this.#root, name, parts.slice(0, i + 1), entry, true);
      this.#chain.push({ name, fd });
    }
    return this.#chain[parts.length - 1]?.fd ?? this.#root;
  }

  /** A descriptor of its own for the existing directory `parts` (the root's is shared): the caller closes it with release(). */
  openDir(parts: readonly string[], entry: string): number {
    let fd = this.#root;
    for (let i = 0; i < parts.length; i++) {
      const next = this.#openDir(fd, parts[i] as string, parts.slice(0, i + 1), entry, false);
      this.release(fd);
      fd = next;
    }
    return fd;
  }

  release(fd: number): void {
    if (fd !== this.#root) closeSync(fd);
  }

  /** Drop the open directories: one of them may have just been removed. */
  forget(): void {
    this.#closeFrom(0);
  }

  close(): void {
    this.forget();
    closeSync(this.#root);
  }

  #closeFrom(index: number): void {
    for (const { fd } of this.#chain.splice(index)) closeSync(fd);
  }

  #openDir(parentFd: number, name: string, parts: readonly string[], entry: string, create: boolean): number {
    try {
      return openSync(at(parentFd, name), dirFlags);
    } catch (err) {
      const code = errnoOf(err);
      if (code === "ENOENT" && create) {
        mkdirSync(at(parentFd, name), 0o777);
        return openSync(at(parentFd, name), dirFlags);
      }
      // O_DIRECTORY|O_NOFOLLOW on a symlink fails with ENOTDIR (or ELOOP): say which it was.
      if (code !== "ENOTDIR" && code !== "ELOOP") throw err;
      if (lstatSync(at(parentFd, name)).isSymbolicLink()) {
        throw unsafeEntry(this.source, entry, `${this.shown(parts)} is a symbolic link, and links are never followed`);
      }
      throw new SkiffError("ERR_SKIFF_BAD_PATH", `cannot copy ${JSON.stringify(entry)} from ${this.source}: ${this.shown(parts)} is not a directory`, {
        details: { source: this.source, entry },
      });
    }
  }
}
