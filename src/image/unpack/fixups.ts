/**
 * What the staging directory could not hold, to be written straight into
 * the ext4's inodes by one debugfs pass after `mke2fs -d`:
 *
 * - Extended attributes (file capabilities such as `security.capability`):
 *   Node has no setxattr, and a rootless build could not set `security.*`
 *   anyway. Always done this way.
 * - Rootless builds only: owners (lchown needs root), modes (staged files
 *   keep u+rw and directories u+rwx so the build can write into and read
 *   them; the real mode is set here), and device nodes (mknod needs root:
 *   debugfs creates them in the filesystem instead). As root none of this
 *   is needed: the staged tree already has the right owners, modes and
 *   nodes, and `mke2fs -d` copies them.
 *
 * Keys are image paths ("/usr/bin/ping"). Paths debugfs cannot be told
 * (a newline in a name) are reported as warnings rather than written wrongly.
 */

export type NodeKind = "file" | "dir" | "symlink" | "char" | "block" | "fifo";

export interface InodeFixup {
  kind: NodeKind;
  owner?: { uid: number; gid: number };
  /** Permission bits (with setuid/setgid/sticky), without the type. */
  mode?: number;
  /** A node debugfs must create: it is not in the staging directory. */
  create?: { major: number; minor: number; mtime: number };
  xattrs?: [name: string, value: Buffer][];
}

export type Fixups = Map<string, InodeFixup>;

const typeBits: Record<NodeKind, number> = {
  file: 0o100000,
  dir: 0o040000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000,
};

/** A debugfs argument: quoted, a `"` doubled (how debugfs's parser reads it). */
function quote(text: string): string {
  return `"${text.replaceAll('"', '""')}"`;
}

/** An ea_set value: every byte that is not plainly safe as a 3-digit octal escape. */
function escapeValue(value: Buffer): string {
  let out = "";
  for (const byte of value) {
    const safe = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || byte === 0x2e;
    out += safe ? String.fromCharCode(byte) : `\\${byte.toString(8).padStart(3, "0")}`;
  }
  return `"${out}"`;
}

function parentAndName(path: string): [string, string] {
  const at = path.lastIndexOf("/");
  return [at <= 0 ? "/" : path.slice(0, at), path.slice(at + 1)];
}

export interface FixupScript {
  /** debugfs commands, one per line; empty when there is nothing to do. */
  text: string;
  /** Paths left out because debugfs cannot name them. */
  skipped: string[];
}

/** The debugfs script for `fixups`. Parents before children, so created nodes find their directory. */
export function fixupScript(fixups: Fixups): FixupScript {
  const lines: string[] = [];
  const skipped: string[] = [];
  const paths = [...fixups.keys()].sort();
  for (const path of paths) {
    const fix = fixups.get(path)!;
    if (path.includes("\n")) {
      skipped.push(path);
      continue;
    }
    const p = quote(path);
    if (fix.create) {
      const [dir, name] = parentAndName(path);
      // debugfs 1.47's mknod links only a bare name into the current directory.
      const spec = fix.kind === "fifo" ? "p" : `${fix.kind === "char" ? "c" : "b"} ${fix.create.major} ${fix.create.minor}`;
      lines.push(`cd ${quote(dir)}`, `mknod ${quote(name)} ${spec}`, "cd /");
      for (const field of ["atime", "mtime", "ctime"]) lines.push(`sif ${p} ${field} @${fix.create.mtime}`);
    }
    if (fix.owner) lines.push(`sif ${p} uid ${fix.owner.uid}`, `sif ${p} gid ${fix.owner.gid}`);
    if (fix.mode !== undefined && fix.kind !== "symlink") lines.push(`sif ${p} mode 0${(typeBits[fix.kind] | fix.mode).toString(8)}`);
    for (const [name, value] of fix.xattrs ?? []) lines.push(`ea_set ${p} ${quote(name)} ${escapeValue(value)}`);
  }
  return { text: lines.length === 0 ? "" : `${lines.join("\n")}\n`, skipped };
}

/** Drop the records of `path` and everything under it, except what `keep` says stays. */
export function forgetUnder(map: Map<string, unknown>, path: string, keep?: (path: string) => boolean): void {
  const prefix = path === "/" ? "/" : `${path}/`;
  for (const key of [...map.keys()]) {
    if ((key === path || key.startsWith(prefix)) && !keep?.(key)) map.delete(key);
  }
}
