/**
 * Staging directories of `skiff cp` on the host. A file copied out of a VM
 * is unpacked into a directory next to its target and renamed into place,
 * so it appears whole. A copy that is killed cannot remove its staging
 * directory, so each one is written down first in a journal under the
 * skiff home, with the identity (pid + start time) of the process that
 * made it; the next skiff command removes those whose process is gone.
 *
 * The journal entry's file name holds the process identity and its content
 * the staging path, and the entry is written before the directory is made:
 * a copy killed at any point leaves either nothing, or an entry that the
 * sweep can act on (an empty one, killed mid-write, had no directory yet).
 */
import { chmod, lstat, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { errnoOf } from "../../errors.js";
import { currentProcess, identityAlive } from "../../process/pid.js";
import { readdirOrEmpty } from "../../util/fs.js";
import { crypto } from "../../util/builtins.js";

/** Every staging directory's name starts so; the sweep removes nothing else. */
export const stagingPrefix = ".skiff-cp-";

export interface Staging {
  readonly path: string;
  /** Remove the directory (whatever is left in it) and its journal entry. */
  discard(): Promise<void>;
}

function journalDir(home: string): string {
  return join(home, "cp-staging");
}

/** Make a fresh staging directory in `parent`, journaled under `home`. */
export async function makeStaging(home: string, parent: string): Promise<Staging> {
  const self = currentProcess();
  const tag = crypto().randomBytes(6).toString("hex");
  const path = join(parent, `${stagingPrefix}${self.pid}-${tag}`);
  const entry = join(journalDir(home), `${self.pid}-${self.startTime}-${tag}`);
  await mkdir(journalDir(home), { recursive: true, mode: 0o700 });
  await writeFile(entry, path, { mode: 0o600 });
  try {
    await mkdir(path, { mode: 0o700 });
  } catch (err) {
    await rm(entry, { force: true });
    throw err;
  }
  return {
    path,
    async discard() {
      await removeTree(path);
      await rm(entry, { force: true });
    },
  };
}

/** Remove the staging directories of copies whose process died; returns the paths removed. */
export async function sweepStaging(home: string): Promise<string[]> {
  const entries = await readdirOrEmpty(journalDir(home));
  const removed: string[] = [];
  for (const name of entries) {
    const [pid, startTime] = name.split("-").map(Number);
    if (pid !== undefined && startTime !== undefined && identityAlive({ pid, startTime })) continue;
    const entry = join(journalDir(home), name);
    const path = (await readFile(entry, "utf8").catch(() => "")).trim();
    // Only ever a path this module wrote: absolute, and named like a staging directory.
    if (path.startsWith("/") && basename(path).startsWith(stagingPrefix)) {
      // One that cannot be removed now (its disk went read-only) is tried again next time, and stops nothing.
      if (!(await removeTree(path).then(() => true, () => false))) continue;
      removed.push(path);
    }
    await rm(entry, { force: true });
  }
  return removed;
}

/**
 * rm -rf that also gets through directories the archive left without
 * write or search permission (a non-root user cannot empty those): they
 * are opened up, never following a symlink, and the removal is retried.
 */
async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch (err) {
    if (errnoOf(err) !== "EACCES" && errnoOf(err) !== "EPERM") throw err;
    await openUp(path);
    await rm(path, { recursive: true, force: true });
  }
}

async function openUp(dir: string): Promise<void> {
  if (!(await lstat(dir).catch(() => undefined))?.isDirectory()) return;
  await chmod(dir, 0o700);
  for (const name of await readdir(dir)) await openUp(join(dir, name));
}
