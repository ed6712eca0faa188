/**
 * The directory skiff's locks live in, `<home>/locks`, and the checks that
 * keep it skiff's own: a lock anyone else could open, they could also hold
 * (and block skiff) or fill with a story about who holds it.
 *
 * - The home is made 0700 when skiff makes it, and must belong to skiff's
 *   user and be writable by nobody else. Anyone who can write in it can
 *   rename the locks directory away and put their own in its place.
 *   skiff refuses such a home rather than chmod it: the directory may be a
 *   shared one on purpose (SKIFF_HOME=/tmp would otherwise lose its sticky
 *   world-writable mode), and one others could write may already hold what
 *   they planted, which tightening now would not undo.
 * - The locks directory is skiff's alone: made 0700, tightened to 0700 if
 *   found looser, refused if it is not a directory of skiff's user.
 *
 * Read and search bits on the home are left alone (older skiff made homes
 * 0755): with the locks directory 0700 they reach no lock. The home's own
 * parents are not checked; they are the user's.
 *
 * Checked once per directory per process: locks are taken often.
 */
import { chmodSync, lstatSync, mkdirSync, statSync, type Stats } from "node:fs";
import { join, resolve } from "node:path";
import { errnoOf, SkiffError } from "../errors.js";

const checked = new Set<string>();

export function lockDir(home: string): string {
  return join(resolve(home), "locks");
}

/** Make `home`/locks if needed and check that only skiff's user can reach it. */
export function ensureLockDir(home: string): string {
  const dir = lockDir(home);
  if (checked.has(dir)) return dir;
  const root = resolve(home);
  makeDir(root, { recursive: true });
  checkHome(root, statSync(root));
  makeDir(dir, {});
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== euid()) {
    throw unsafe(`${dir} is not skiff's own directory (${st.isDirectory() ? `it belongs to uid ${st.uid}` : "not a directory"})`, {
      hint: `remove ${dir}; skiff makes it again (nothing in it outlives the processes holding its locks)`,
      dir,
    });
  }
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  checked.add(dir);
  return dir;
}

/** Forget that `home`/locks was checked (it was removed: check it again when it is made). */
export function forgetLockDir(home: string): void {
  checked.delete(lockDir(home));
}

/** Refuse a lock file found in skiff's locks directory that skiff's user does not own. */
export function checkLockFileOwner(path: string, st: Stats): void {
  if (st.uid === euid()) return;
  throw unsafe(`lock file ${path} belongs to uid ${st.uid}, not to skiff's user (uid ${euid()})`, {
    hint: `remove ${path} once no skiff command runs`,
    dir: path,
  });
}

function checkHome(home: string, st: Stats): void {
  const uid = euid();
  if (st.uid !== uid) {
    throw unsafe(`skiff's directory ${home} belongs to uid ${st.uid}, not to skiff's user (uid ${uid}): its owner could take or block skiff's locks`, {
      hint: `use a directory of your own (SKIFF_HOME, SKIFF_CACHE), or \`chown ${uid} ${home}\``,
      dir: home,
    });
  }
  const writers = [st.mode & 0o020 ? "group" : "", st.mode & 0o002 ? "others" : ""].filter(Boolean);
  if (writers.length > 0) {
    const mode = (st.mode & 0o7777).toString(8).padStart(4, "0");
    throw unsafe(`skiff's directory ${home} is writable by ${writers.join(" and ")} (mode ${mode}): another user could take or block skiff's locks`, {
      hint: `\`chmod go-w ${home}\` (skiff makes its home 0700), or point SKIFF_HOME elsewhere`,
      dir: home,
    });
  }
}

function makeDir(dir: string, opts: { recursive?: boolean }): void {
  try {
    mkdirSync(dir, { ...opts, mode: 0o700 });
  } catch (err) {
    if (errnoOf(err) === "EEXIST") return;
    throw new SkiffError("ERR_SKIFF_HOST", `cannot make skiff's directory ${dir}: ${(err as Error).message}`, {
      hint: "skiff's home must be a directory its user can write (SKIFF_HOME moves it)",
      cause: err,
      details: { dir },
    });
  }
}

function unsafe(message: string, opts: { hint: string; dir: string }): SkiffError {
  return new SkiffError("ERR_SKIFF_UNSAFE_HOME", message, { hint: opts.hint, details: { dir: opts.dir } });
}

function euid(): number {
  return process.geteuid?.() ?? -1;
}
