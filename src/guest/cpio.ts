/**
 * A minimal writer for the cpio "newc" format, the one the Linux kernel
 * unpacks as an initramfs. Entries are written in the order given; parents
 * must come before children. Concatenated archives are unpacked in order by
 * the kernel, which is how a per-VM config is layered on the shared base.
 */

export type CpioEntry =
  | { type: "dir"; path: string; mode?: number }
  | { type: "file"; path: string; data: Uint8Array; mode?: number }
  | { type: "symlink"; path: string; target: string }
  | { type: "chardev"; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}

function pad4(length: number): number {
  return (4 - (length % 4)) % 4;
}

function header(fields: {
  ino: number;
  mode: number;
  nlink: number;
  size: number;
  rdevMajor?: number;
  rdevMinor?: number;
  nameSize: number;
}): string {
  return (
    "070701" +
    hex8(fields.ino) +
    hex8(fields.mode) +
    hex8(0) + // uid
    hex8(0) + // gid
    hex8(fields.nlink) +
    hex8(0) + // mtime: fixed, so equal inputs give equal archives
    hex8(fields.size) +
    hex8(0) + // devmajor
    hex8(0) + // devminor
    hex8(fields.rdevMajor ?? 0) +
    hex8(fields.rdevMinor ?? 0) +
    hex8(fields.nameSize) +
    hex8(0) // check
  );
}

function record(ino: number, name: string, mode: number, data: Uint8Array, rdev?: [number, number]): Uint8Array[] {
  const nameBytes = Buffer.from(name + "\0", "utf8");
  const head = Buffer.from(
    header({
      ino,
      mode,
      nlink: (mode & S_IFDIR) === S_IFDIR ? 2 : 1,
      size: data.length,
      rdevMajor: rdev?.[0],
      rdevMinor: rdev?.[1],
      nameSize: nameBytes.length,
    }),
    "ascii",
  );
  const parts: Uint8Array[] = [head, nameBytes, Buffer.alloc(pad4(head.length + nameBytes.length))];
  if (data.length > 0) parts.push(data, Buffer.alloc(pad4(data.length)));
  return parts;
}

/** Serialise entries into one newc archive, ending with the TRAILER!!! record. */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Uint8Array[] = [];
  let ino = 1;
  for (const entry of entries) {
    const name = entry.path.replace(/^\/+/, "");
    if (name === "") throw new Error("cpio entry needs a path");
    switch (entry.type) {
      case "dir":
        parts.push(...record(ino++, name, S_IFDIR | (entry.mode ?? 0o755), new Uint8Array()));
        break;
      case "file":
        parts.push(...record(ino++, name, S_IFREG | (entry.mode ?? 0o644), entry.data));
        break;
      case "symlink":
        parts.push(...record(ino++, name, S_IFLNK | 0o777, Buffer.from(entry.target, "utf8")));
        break;
      case "chardev":
        parts.push(...record(ino++, name, S_IFCHR | (entry.mode ?? 0o600), new Uint8Array(), [entry.major, entry.minor]));
        break;
    }
  }
  parts.push(...record(0, "TRAILER!!!", 0, new Uint8Array()));
  return Buffer.concat(parts);
}
