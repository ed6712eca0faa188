/**
 * Cross-process locks that cannot go stale, and that only skiff's user can
 * touch.
 *
 * A lock is flock(2) on `<home>/locks/<name>.lock` (lock-dir.ts keeps that
 * directory 0700 in a home nobody else can write). The kernel drops the lock
 * the moment its holder dies, however it dies (SIGKILL included), so there
 * is nothing to clean up after a crash. flock belongs to the open file
 * description: two opens in one process contend like two processes do. The
 * fd is close-on-exec, so QEMU and other children never inherit a lock.
 *
 * Earlier locks were abstract unix sockets: any local user could bind the
 * name first and block skiff, or answer waiters with a made-up holder.
 *
 * The holder writes who it is (pid, start time, purpose) into the file after
 * locking and empties it before unlocking, so a waiter that gives up can say
 * what holds the lock; the reader still validates it and quotes it only
 * while that very process lives.
 *
 * Lock files are left in place: deleting a file someone has open would let
 * a second process lock a new file of the same name. The one exception is
 * `removeLockFiles`, which deletes a file only while holding its lock, and
 * every taker checks after locking that the file it holds is still the one
 * at the path (else it retries). The store uses it for the locks of VMs that
 * are gone; all other names are few and reused (one per network, image).
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync, statSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { errnoOf, SkiffError } from "../errors.js";
import { currentProcess, processAlive, type ProcessIdentity } from "../process/pid.js";
import { lockExclusive, unlock } from "./flock.js";
import { checkLockFileOwner, ensureLockDir, forgetLockDir, lockDir } from "./lock-dir.js";
import { readdirOrEmpty } from "../util/fs.js";
import { skiffHome } from "./paths.js";
import { crypto } from "../util/builtins.js";

export interface LockOptions {
  /** skiff home the lock belongs to (default: the resolved SKIFF_HOME). */
  home?: string;
  /**
   * How long to wait for a held lock that does not change hands; 0 tries
   * once (default 10 s). A lock that passes from holder to holder is a line
   * that moves, and its waiters wait on (see pollLock).
   */
  timeoutMs?: number;
  /** What the holder is doing, told to waiters ("create VM web"). */
  purpose?: string;
}

export interface LockHandle {
  readonly name: string;
  release(): Promise<void>;
}

/** What a lock's holder says about itself. */
export interface LockHolder {
  pid: number;
  purpose?: string;
}

const defaultTimeoutMs = 10_000;
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/;
/** Longest purpose written or believed: it goes into an error message. */
const maxPurpose = 200;

/** The file of lock `name` under `home`. */
export function lockPath(home: string, name: string): string {
  if (!namePattern.test(name)) {
    throw new SkiffError("ERR_SKIFF_INTERNAL", `invalid lock name: ${JSON.stringify(name)}`);
  }
  return join(lockDir(home), `${name}.lock`);
}

/** Take lock `name` if it is free; undefined if another holder has it. */
export async function tryLock(name: string, opts: Omit<LockOptions, "timeoutMs"> = {}): Promise<LockHandle | undefined> {
  const home = opts.home ?? skiffHome();
  const fd = takeFile(home, lockPath(home, name));
  if (fd === undefined) return undefined;
  writeHolder(fd, opts.purpose);
  let released: Promise<void> | undefined;
  return {
    name,
    release() {
      released ??= Promise.resolve().then(() => releaseFile(fd));
      return released;
    },
  };
}

/**
 * An fd holding the lock on the file now at `path`; undefined if it is held
 * (or, with `create` false, if there is no such file).
 */
function takeFile(home: string, path: string, create = true): number | undefined {
  for (;;) {
    const fd = openLockFile(home, path, create);
    if (fd === undefined) return undefined;
    let held = false;
    try {
      if (!lockExclusive(fd)) return undefined;
      const st = fstatSync(fd);
      checkLockFileOwner(path, st);
      // removeLockFiles unlinks while holding: if it did so before we got the
      // lock, ours is on a file nobody else will open again. Take the new one.
      held = isFileAt(path, st);
      if (held) return fd;
    } finally {
      if (!held) closeSync(fd);
    }
  }
}

function openLockFile(home: string, path: string, create: boolean): number | undefined {
  const flags = constants.O_RDWR | constants.O_NOFOLLOW | (create ? constants.O_CREAT : 0);
  ensureLockDir(home);
  for (let attempt = 0; ; attempt++) {
    try {
      return openSync(path, flags, 0o600);
    } catch (err) {
      if (errnoOf(err) !== "ENOENT" || attempt > 0) throw lockFileError(path, err);
      if (!create) return undefined;
    }
    // The home was removed since this process checked it (tests do): once more from the start.
    forgetLockDir(home);
    ensureLockDir(home);
  }
}

function lockFileError(path: string, err: unknown): SkiffError {
  return new SkiffError("ERR_SKIFF_HOST", `cannot open lock file ${path}: ${(err as Error).message}`, { cause: err, details: { path } });
}

function isFileAt(path: string, held: { dev: number; ino: number }): boolean {
  try {
    const st = statSync(path);
    return st.dev === held.dev && st.ino === held.ino;
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return false;
    throw err;
  }
}

let self: ProcessIdentity | undefined;

/**
 * Say who holds the lock; best effort: a full disk must not stop skiff from
 * locking (`rm` frees space). `take` is new with each taking, so a waiter
 * sees the lock change hands even between two takings by one process.
 */
function writeHolder(fd: number, purpose: string | undefined): void {
  self ??= currentProcess();
  const clean = purpose === undefined ? undefined : cleanPurpose(purpose);
  const take = crypto().randomBytes(4).toString("hex");
  const text = Buffer.from(JSON.stringify({ ...self, ...(clean === undefined ? {} : { purpose: clean }), take }));
  try {
    writeSync(fd, text, 0, text.length, 0);
    ftruncateSync(fd, text.length);
  } catch {
    truncateQuietly(fd);
  }
}

function truncateQuietly(fd: number): void {
  try {
    ftruncateSync(fd, 0);
  } catch {
    // The words stay; readers believe them only while this process lives.
  }
}

function cleanPurpose(purpose: string): string {
  return purpose.replace(/[\u0000-\u001f\u007f]/g, " ").slice(0, maxPurpose);
}

function releaseFile(fd: number): void {
  try {
    // Empty before unlocking, so the next holder's words are never cut.
    truncateQuietly(fd);
    unlock(fd);
  } finally {
    // Closing drops the lock in any case.
    closeSync(fd);
  }
}

/**
 * Delete the files of locks `names` that nobody holds, each while holding
 * it (see the top of this file); held ones stay. Returns the names removed.
 */
export function removeLockFiles(names: string[], opts: { home?: string } = {}): string[] {
  const home = opts.home ?? skiffHome();
  const removed: string[] = [];
  for (const name of names) {
    const path = lockPath(home, name);
    const fd = takeFile(home, path, false);
    if (fd === undefined) continue;
    try {
      unlinkSync(path);
      removed.push(name);
    } finally {
      closeSync(fd);
    }
  }
  return removed;
}

/** Names of the lock files under `home`, held or not. */
export async function lockFileNames(home: string): Promise<string[]> {
  const suffix = ".lock";
  return (await readdirOrEmpty(lockDir(home)))
    .filter((entry) => entry.endsWith(suffix))
    .map((entry) => entry.slice(0, -suffix.length))
    .filter((name) => namePattern.test(name));
}

/**
 * Waiters inside this process queue here first, so they are served in order
 * and at once on release instead of polling the file against each other.
 */
const localQueues = new Map<string, Promise<void>>();

/** Take lock `name`, waiting with backoff up to `timeoutMs`; ERR_SKIFF_LOCKED after that. */
export async function acquireLock(name: string, opts: LockOptions = {}): Promise<LockHandle> {
  const home = opts.home ?? skiffHome();
  const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
  const deadline = Date.now() + timeoutMs;
  const path = lockPath(home, name);
  const previous = localQueues.get(path) ?? Promise.resolve();
  let leave!: () => void;
  const turn = new Promise<void>((done) => (leave = done));
  // Whatever happens to us, the next local waiter runs after our predecessor and us.
  const tail = previous.then(() => turn);
  localQueues.set(path, tail);
  void tail.then(() => {
    if (localQueues.get(path) === tail) localQueues.delete(path);
  });
  try {
    const first = await raceDeadline(previous, deadline);
    const handle = first ? await pollLock(name, { ...opts, home }, deadline, timeoutMs) : undefined;
    if (handle) {
      return {
        name,
        release: async () => {
          try {
            await handle.release();
          } finally {
            leave();
          }
        },
      };
    }
  } catch (err) {
    void previous.then(leave);
    throw err;
  }
  void previous.then(leave);
  const holder = await lockHolder(name, { home });
  const by = holder ? ` by pid ${holder.pid}${holder.purpose ? ` (${holder.purpose})` : ""}` : "";
  throw new SkiffError("ERR_SKIFF_LOCKED", `lock "${name}" is held${by}; gave up after it did not change hands for ${timeoutMs} ms`, {
    hint: holder
      ? `wait for pid ${holder.pid} to finish, or stop it if it hangs (\`ps -p ${holder.pid}\`)`
      : "another skiff command is working on this; wait for it to finish and retry",
    details: { lock: name, home, ...(holder ? { holder } : {}) },
  });
}

/**
 * Try the lock, retrying with backoff until `deadline`, which moves `patienceMs`
 * on whenever the lock changes hands: a wait gives up when the line stands
 * still, not when it is long. (Sixteen `run -d` at once on a loaded host
 * queue on the ports lock, each holding it for seconds: a fixed deadline
 * failed the last ones while the line was moving.)
 */
async function pollLock(name: string, opts: LockOptions, deadline: number, patienceMs: number): Promise<LockHandle | undefined> {
  const path = lockPath(opts.home ?? skiffHome(), name);
  let seen = readHead(path);
  for (let attempt = 0; ; attempt++) {
    const handle = await tryLock(name, opts);
    if (handle) return handle;
    const now = readHead(path);
    if (now !== "" && now !== seen) {
      seen = now;
      deadline = Math.max(deadline, Date.now() + patienceMs);
    }
    const left = deadline - Date.now();
    if (left <= 0) return undefined;
    // Short first waits (locks are usually held for milliseconds), capped so
    // a freed lock is noticed quickly; jitter keeps waiters from lockstep.
    const backoff = Math.min(200, 5 * 1.6 ** attempt) * (0.5 + Math.random());
    await sleep(Math.min(backoff, left));
  }
}

/** True if `promise` settled before `deadline` (always try at least once when it already has). */
async function raceDeadline(promise: Promise<void>, deadline: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((done) => (timer = setTimeout(() => done(false), Math.max(0, deadline - Date.now()))));
  try {
    return await Promise.race([promise.then(() => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Run `fn` holding lock `name`; the lock is released when `fn` settles. */
export async function withLock<T>(name: string, fn: () => Promise<T> | T, opts: LockOptions = {}): Promise<T> {
  const handle = await acquireLock(name, opts);
  try {
    return await fn();
  } finally {
    await handle.release();
  }
}

/** Who holds lock `name`, by what it wrote; undefined if free, unreadable, or its writer is gone. */
export async function lockHolder(name: string, opts: { home?: string } = {}): Promise<LockHolder | undefined> {
  const said = parseHolder(readHead(lockPath(opts.home ?? skiffHome(), name)));
  if (said === undefined || !processAlive(said.pid, said.startTime)) return undefined;
  return { pid: said.pid, ...(said.purpose === undefined ? {} : { purpose: said.purpose }) };
}

/** The first KiB of `path` ("" if it cannot be read). */
function readHead(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return "";
  }
  try {
    const buffer = Buffer.alloc(1024);
    return buffer.toString("utf8", 0, readSync(fd, buffer, 0, buffer.length, 0));
  } catch {
    return "";
  } finally {
    closeSync(fd);
  }
}

function parseHolder(text: string): (ProcessIdentity & { purpose?: string }) | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const { pid, startTime, purpose } = value as Record<string, unknown>;
  if (!Number.isSafeInteger(pid) || (pid as number) <= 0) return undefined;
  if (!Number.isSafeInteger(startTime) || (startTime as number) < 0) return undefined;
  const believable = typeof purpose === "string" && purpose.length <= maxPurpose && cleanPurpose(purpose) === purpose;
  return { pid: pid as number, startTime: startTime as number, ...(believable ? { purpose } : {}) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
