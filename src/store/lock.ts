/**
 * Cross-process locks that cannot go stale.
 *
 * A lock is a listening Linux *abstract* unix socket: binding the name
 * succeeds for exactly one process, and the kernel frees the name the moment
 * that process dies, however it dies (SIGKILL included). No lock files, no
 * pid checks, nothing to clean up after a crash.
 *
 * Abstract socket names are per network namespace. skiff itself always runs
 * in the host's namespace (guests and test namespaces are other processes),
 * so every skiff process sees the same names.
 *
 * The name carries a hash of the skiff home, so two homes (parallel test
 * suites with their own SKIFF_HOME) never contend. The holder answers anyone
 * who connects with who it is, so a waiter that gives up can say what holds
 * the lock.
 */
import { createHash } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { resolve } from "node:path";
import { errnoOf, SkiffError } from "../errors.js";
import { skiffHome } from "./paths.js";

export interface LockOptions {
  /** skiff home the lock belongs to (default: the resolved SKIFF_HOME). */
  home?: string;
  /** How long to wait for a held lock; 0 tries once (default 10 s). */
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

/** The abstract socket address of lock `name` under `home` (leading NUL). */
export function lockAddress(home: string, name: string): string {
  if (!namePattern.test(name)) {
    throw new SkiffError("ERR_SKIFF_INTERNAL", `invalid lock name: ${JSON.stringify(name)}`);
  }
  const hash = createHash("sha256").update(resolve(home)).digest("hex").slice(0, 16);
  return `\0skiff-${hash}-${name}`;
}

/** Take lock `name` if it is free; undefined if another holder has it. */
export async function tryLock(name: string, opts: Omit<LockOptions, "timeoutMs"> = {}): Promise<LockHandle | undefined> {
  const address = lockAddress(opts.home ?? skiffHome(), name);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.unref();
    const holder: LockHolder = { pid: process.pid, ...(opts.purpose === undefined ? {} : { purpose: opts.purpose }) };
    socket.end(`${JSON.stringify(holder)}\n`);
  });
  const bound = await listen(server, address);
  if (!bound) return undefined;
  // A held lock must not keep the process alive: exiting releases it anyway.
  server.unref();
  let released: Promise<void> | undefined;
  return {
    name,
    release() {
      released ??= new Promise<void>((done) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => done());
      });
      return released;
    },
  };
}

function listen(server: Server, address: string): Promise<boolean> {
  return new Promise((done, fail) => {
    const onError = (err: Error) => {
      server.off("listening", onListening);
      if (errnoOf(err) === "EADDRINUSE") done(false);
      else fail(new SkiffError("ERR_SKIFF_HOST", `cannot create lock socket: ${err.message}`, { cause: err }));
    };
    const onListening = () => {
      server.off("error", onError);
      done(true);
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(address);
  });
}

/**
 * Waiters inside this process queue here first, so they are served in order
 * and at once on release instead of polling the socket against each other.
 */
const localQueues = new Map<string, Promise<void>>();

/** Take lock `name`, waiting with backoff up to `timeoutMs`; ERR_SKIFF_LOCKED after that. */
export async function acquireLock(name: string, opts: LockOptions = {}): Promise<LockHandle> {
  const home = opts.home ?? skiffHome();
  const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
  const deadline = Date.now() + timeoutMs;
  const address = lockAddress(home, name);
  const previous = localQueues.get(address) ?? Promise.resolve();
  let leave!: () => void;
  const turn = new Promise<void>((done) => (leave = done));
  // Whatever happens to us, the next local waiter runs after our predecessor and us.
  const tail = previous.then(() => turn);
  localQueues.set(address, tail);
  void tail.then(() => {
    if (localQueues.get(address) === tail) localQueues.delete(address);
  });
  try {
    const first = await raceDeadline(previous, deadline);
    const handle = first ? await pollSocket(name, { ...opts, home }, deadline) : undefined;
    if (handle) {
      return {
        name,
        release: async () => {
          await handle.release();
          leave();
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
  throw new SkiffError("ERR_SKIFF_LOCKED", `lock "${name}" is held${by}; gave up after ${timeoutMs} ms`, {
    hint: holder
      ? `wait for pid ${holder.pid} to finish, or stop it if it hangs (\`ps -p ${holder.pid}\`)`
      : "another skiff command is working on this; wait for it to finish and retry",
    details: { lock: name, home, ...(holder ? { holder } : {}) },
  });
}

/** Bind the lock socket, retrying with backoff until `deadline`. */
async function pollSocket(name: string, opts: LockOptions, deadline: number): Promise<LockHandle | undefined> {
  for (let attempt = 0; ; attempt++) {
    const handle = await tryLock(name, opts);
    if (handle) return handle;
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

/** Ask the holder of lock `name` who it is; undefined if free or it does not answer quickly. */
export function lockHolder(name: string, opts: { home?: string; timeoutMs?: number } = {}): Promise<LockHolder | undefined> {
  const address = lockAddress(opts.home ?? skiffHome(), name);
  return new Promise((done) => {
    let text = "";
    const socket = connect(address);
    const finish = (holder: LockHolder | undefined) => {
      socket.destroy();
      done(holder);
    };
    socket.setTimeout(opts.timeoutMs ?? 250, () => finish(undefined));
    socket.on("error", () => finish(undefined));
    socket.on("data", (chunk) => (text += chunk.toString("utf8")));
    socket.on("end", () => finish(parseHolder(text)));
  });
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockHolder>;
    if (typeof value.pid !== "number") return undefined;
    return { pid: value.pid, ...(typeof value.purpose === "string" ? { purpose: value.purpose } : {}) };
  } catch {
    return undefined;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
