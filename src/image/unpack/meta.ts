/**
 * The attributes of a tar member, with PAX records taking precedence over
 * the ustar fields as POSIX says (tar-stream applies PAX path, linkpath
 * and size itself; uid, gid, times and xattrs are read here). Go's
 * archive/tar, which writes most image layers, uses PAX for ids above
 * 2097151 and for sub-second times.
 */
import { paxOf, type TarHeader } from "./tar-read.js";

export interface MemberMeta {
  uid: number;
  gid: number;
  /** Permission bits including setuid, setgid and sticky. */
  mode: number;
  /** Seconds since the epoch, fractional. */
  mtime: number;
  atime: number;
  xattrs: [name: string, value: Buffer][];
  /** Xattrs that could not be kept, and why. */
  dropped: string[];
}

function paxNumber(value: string | undefined, parse: (text: string) => number): number | undefined {
  if (value === undefined) return undefined;
  const n = parse(value);
  return Number.isFinite(n) ? n : undefined;
}

export function memberMeta(header: TarHeader): MemberMeta {
  const pax = paxOf(header);
  const mtime = paxNumber(pax.mtime, Number.parseFloat) ?? header.mtime.getTime() / 1000;
  const xattrs: [string, Buffer][] = [];
  const dropped: string[] = [];
  for (const [key, value] of Object.entries(pax)) {
    let name: string;
    let bytes: Buffer;
    if (key.startsWith("SCHILY.xattr.")) {
      name = key.slice("SCHILY.xattr.".length);
      // tar-stream hands PAX values over as UTF-8 text: a binary value that
      // is not valid UTF-8 arrives with U+FFFD in it and cannot be restored.
      if (value.includes("\uFFFD")) {
        dropped.push(`${name} (binary value not readable through tar-stream's PAX decoding)`);
        continue;
      }
      bytes = Buffer.from(value, "utf8");
    } else if (key.startsWith("LIBARCHIVE.xattr.")) {
      name = decodeURIComponent(key.slice("LIBARCHIVE.xattr.".length));
      bytes = Buffer.from(value, "base64");
    } else continue;
    // system.* (POSIX ACLs) is a kernel-encoded namespace debugfs cannot take as given.
    if (name.startsWith("system.")) dropped.push(`${name} (system.* attributes are not carried over)`);
    else xattrs.push([name, bytes]);
  }
  return {
    uid: paxNumber(pax.uid, (t) => Number.parseInt(t, 10)) ?? header.uid,
    gid: paxNumber(pax.gid, (t) => Number.parseInt(t, 10)) ?? header.gid,
    mode: header.mode & 0o7777,
    mtime,
    atime: paxNumber(pax.atime, Number.parseFloat) ?? mtime,
    xattrs,
    dropped,
  };
}

/** PAX records that mean a GNU sparse file, whose data tar-stream would hand over as the sparse map. */
export function isSparse(header: TarHeader): boolean {
  return Object.keys(paxOf(header)).some((key) => key.startsWith("GNU.sparse."));
}
