/**
 * One file of a running guest: what it is (stat), its bytes out (read) and
 * in (write), paths as the image sees them. On skiff's own protocol these
 * are its STAT, GET and PUT (guest/files.c: resolved with the image as the
 * root, under the same flow control as a command's streams), so no SSH
 * session is opened for them; a connection that speaks SSH (a cloud image,
 * an older guest, SKIFF_AGENT_PROTOCOL=ssh) uses SFTP instead.
 */
import { constants } from "node:os";
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { SFTPWrapper, Stats } from "ssh2";
import { SkiffError } from "../errors.js";
import type { AgentConnection } from "./agent.js";
import { filePath, H, type GuestStat } from "./native/frames.js";

export type { GuestStat } from "./native/frames.js";

/** What a path is in the guest; undefined when there is nothing there. */
export async function statFile(conn: AgentConnection, path: string, opts: { follow?: boolean } = {}): Promise<GuestStat | undefined> {
  checkPath(path);
  const native = await conn.withNativeSession((s) => s.stat(path, opts));
  if (native !== undefined) {
    if (!("errno" in native)) return native;
    if (native.errno === constants.errno.ENOENT || native.errno === constants.errno.ENOTDIR) return undefined;
    throw fileError(path, errnoName(native.errno));
  }
  return withSftp(conn, (sftp) =>
    new Promise((resolve, reject) =>
      (opts.follow === false ? sftp.lstat.bind(sftp) : sftp.stat.bind(sftp))(path, (err, st) =>
        err ? ((err as { code?: unknown }).code === 2 ? resolve(undefined) : reject(fileError(path, err.message))) : resolve(fromSftp(st)),
      ),
    ),
  );
}

/** Copy a regular file of the guest into `out` (not ended here); fails on anything else. */
export async function readFile(conn: AgentConnection, path: string, out: Writable): Promise<void> {
  checkPath(path);
  const done = await conn.withNativeSession(async (s) => {
    const running = await s.exec({ type: H.get, payload: filePath(path), what: `reading ${path} in VM ${conn.vmName}` }, { stdout: out });
    const exit = await running.done;
    if (exit.code !== 0) throw fileError(path, errnoName(exit.code));
    return true;
  });
  if (done) return;
  await withSftp(conn, (sftp) => pipeline(sftp.createReadStream(path), out, { end: false }).catch((err: unknown) => Promise.reject(sftpError(err, path))));
}

/** Write `input` to a regular file of the guest (made or truncated; its parent must exist), with `mode` (default 0644). */
export async function writeFile(conn: AgentConnection, path: string, input: Readable, mode = 0o644): Promise<void> {
  checkPath(path);
  const payload = Buffer.concat([Buffer.from([(mode >>> 24) & 0xff, (mode >>> 16) & 0xff, (mode >>> 8) & 0xff, mode & 0xff]), filePath(path)]);
  const done = await conn.withNativeSession(async (s) => {
    const running = await s.exec({ type: H.put, payload, what: `writing ${path} in VM ${conn.vmName}` }, { stdin: input });
    const exit = await running.done;
    if (exit.code !== 0) throw fileError(path, errnoName(exit.code));
    return true;
  });
  if (done) return;
  await withSftp(conn, (sftp) => pipeline(input, sftp.createWriteStream(path, { mode })).catch((err: unknown) => Promise.reject(sftpError(err, path))));
}

function checkPath(path: string): void {
  try {
    filePath(path);
  } catch {
    throw new SkiffError("ERR_SKIFF_BAD_PATH", `not an absolute path in the guest: ${JSON.stringify(path.slice(0, 100))}`, {
      place: "path",
      hint: "give an absolute path (at most 4095 bytes, no NUL)",
    });
  }
}

async function withSftp<T>(conn: AgentConnection, fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
  const sftp = await conn.sftp();
  try {
    return await fn(sftp);
  } finally {
    sftp.end();
  }
}

function fromSftp(st: Stats): GuestStat {
  return {
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    mtimeMs: st.mtime * 1000,
    nlink: 1,
    isFile: st.isFile(),
    isDirectory: st.isDirectory(),
    isSymlink: st.isSymbolicLink(),
  };
}

function errnoName(errno: number): string {
  return Object.entries(constants.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`;
}

function fileError(path: string, why: string): SkiffError {
  if (why === "ENOENT") return new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `no such file in the guest: ${path}`, { place: "path" });
  if (why === "ENOSPC") return new SkiffError("ERR_SKIFF_COPY_FAILED", `${path} in the guest: no space left on the guest's disk (ENOSPC)`, { place: "path" });
  return new SkiffError("ERR_SKIFF_COPY_FAILED", `${path} in the guest: ${why}`, { place: "path" });
}

/** What sftp's numeric status codes mean to a caller. */
function sftpError(err: unknown, path: string): SkiffError {
  if ((err as { code?: unknown }).code === 2) return fileError(path, "ENOENT");
  return fileError(path, err instanceof Error ? err.message : String(err));
}
