/**
 * Paths inside the root being built, resolved the way a container runtime
 * resolves them: as if the root were `/` (a chroot). A member name is
 * cleaned lexically first, `..` stopping at the root (containerd's
 * `filepath.Join("/", name)`); then each directory on the way is looked up
 * with lstat, and a symlink met on the way is followed *inside* the root — an
 * absolute target restarts at the root, `..` stops there. Merged-/usr images
 * need that (`lib -> usr/lib`, then a later layer writes `lib/x`), and it is
 * also why no member can reach outside: every host path is the root joined
 * with plain names that were looked up one by one. The last component of a
 * member is never followed: it is what gets replaced.
 *
 * Nothing else writes into the staging directory while a layer is applied,
 * so looking up and then acting is not a race.
 */
import { lstatSync, mkdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { errnoOf } from "../../errors.js";

/** Components of a member name: "./usr/../etc//passwd" → ["etc", "passwd"]. */
export function memberComponents(name: string): string[] {
  const out: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return out;
}

/** "/etc/passwd" for ["etc", "passwd"]; "/" for []. The key every record of the unpack uses. */
export function imagePathOf(components: readonly string[]): string {
  return `/${components.join("/")}`;
}

/** Linux's limit on symlinks followed in one lookup. */
const maxSymlinkHops = 40;

/** A lookup that cannot finish: ENOTDIR or ELOOP, raised as an error with that code. */
export class LookupError extends Error {
  constructor(
    readonly code: "ENOTDIR" | "ELOOP",
    readonly imagePath: string,
  ) {
    super(code === "ENOTDIR" ? `${imagePath} is not a directory` : `too many levels of symbolic links at ${imagePath}`);
  }
}

export class ScopedRoot {
  /** Resolved directories by the components that named them; cleared whenever a directory or symlink goes away. */
  readonly #dirs = new Map<string, string[]>();

  constructor(readonly root: string) {}

  hostPath(resolved: readonly string[]): string {
    return join(this.root, ...resolved);
  }

  /** Forget cached lookups: after anything that was a directory or a symlink is removed or replaced. */
  invalidate(): void {
    this.#dirs.clear();
  }

  /**
   * The resolved components of directory `components`. Missing directories
   * are made (mode 0755; `onCreate` hears of each) when `create` is set,
   * otherwise the answer is undefined. A non-directory on the way is ENOTDIR.
   */
  resolveDir(
    components: readonly string[],
    opts: { create: boolean; onCreate?: (resolved: readonly string[]) => void },
  ): readonly string[] | undefined {
    const key = components.join("/");
    const cached = this.#dirs.get(key);
    if (cached) return cached;
    const resolved: string[] = [];
    const pending = [...components];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === "" || part === ".") continue;
      if (part === "..") {
        resolved.pop();
        continue;
      }
      const host = join(this.root, ...resolved, part);
      let st;
      try {
        st = lstatSync(host);
      } catch (err) {
        if (errnoOf(err) !== "ENOENT") throw err;
        if (!opts.create) return undefined;
        mkdirSync(host, 0o755);
        resolved.push(part);
        opts.onCreate?.([...resolved]);
        continue;
      }
      if (st.isSymbolicLink()) {
        if (++hops > maxSymlinkHops) throw new LookupError("ELOOP", imagePathOf([...resolved, part]));
        const target = readlinkSync(host);
        if (target.startsWith("/")) resolved.length = 0;
        pending.unshift(...target.split("/"));
      } else if (st.isDirectory()) {
        resolved.push(part);
      } else {
        throw new LookupError("ENOTDIR", imagePathOf([...resolved, part]));
      }
    }
    this.#dirs.set(key, resolved);
    return resolved;
  }
}
