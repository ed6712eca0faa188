/**
 * The Sandbox (E2B's, in shape): a VM you create, run commands and PTYs in,
 * read and write files of, pause, snapshot, fork and kill. It talks to a
 * SandboxBackend only: with `host` (or SKIFF_HOST in the environment) the
 * remote one over a `skiff serve` (remote.ts), one per server and token;
 * otherwise the in-process one over `Skiff` (local.ts), one per skiff home.
 */
import { SkiffError } from "../index.js";
import type { SandboxBackend, SandboxInfo, SnapshotRef } from "./backend.js";
import { Commands, Pty } from "./commands.js";
import { Filesystem } from "./files.js";
import { LocalBackend, type LocalBackendOptions } from "./local.js";
import { ProcessTable } from "./process.js";
import { RemoteBackend } from "./remote.js";

export interface SandboxConnectOpts extends LocalBackendOptions {
  /** Use this backend instead of the in-process one (the home and cache options are then unused). */
  backend?: SandboxBackend;
  /** A `skiff serve` to use instead of this process (`http://host:port`, `host:port`, `unix:/path`; default SKIFF_HOST). */
  host?: string;
  /** The server's token (default SKIFF_TOKEN). */
  token?: string;
  /** https: a CA to trust for the server's certificate. */
  ca?: Buffer | string;
}

export interface SandboxOpts extends SandboxConnectOpts {
  /** A skiff image (default `base`; E2B's template). */
  image?: string;
  /** Restore this skiff snapshot (id or name) instead of booting an image. */
  snapshot?: string;
  /** The sandbox's (VM's) name; a generated one by default. */
  name?: string;
  /** MiB, or "512m", "1g". */
  memory?: number | string;
  cpus?: number;
  /** Kill the sandbox this long after it started (default 300 000, as E2B; 0: never); setTimeout moves it. See local.ts and remote.ts for how. */
  timeoutMs?: number;
  /** The sandbox's environment, for every command. */
  envs?: Record<string, string>;
  /** Kept with the sandbox (as VM labels) and returned by list() and getInfo(). */
  metadata?: Record<string, string>;
}

export const defaultSandboxTimeoutMs = 300_000;

const backends = new Map<string, SandboxBackend>();

const connectKeys = ["backend", "host", "token", "ca", "home", "cacheDir", "runner", "idleMs", "skiff"] as const;
const createKeys = [...connectKeys, "image", "snapshot", "name", "memory", "cpus", "timeoutMs", "envs", "metadata"] as const;

/** Plain JavaScript callers can pass anything: a key the SDK does not know is an error, not ignored. */
function checkKeys(opts: object, known: readonly string[], verb: string): void {
  const unknown = Object.keys(opts).find((k) => !known.includes(k));
  if (unknown !== undefined) {
    throw new SkiffError("ERR_SKIFF_USAGE", `Sandbox.${verb}: unknown option ${unknown}`, { place: unknown, hint: `known options: ${known.join(", ")}` });
  }
}

function checkTimeout(timeoutMs: unknown): number {
  if (typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new SkiffError("ERR_SKIFF_USAGE", `timeoutMs must be 0 (never) or a number of milliseconds, not ${String(timeoutMs)}`, { place: "timeoutMs" });
  }
  return Math.round(timeoutMs);
}

/** One in-process backend per home and cache, so that sandboxes of one home share connections and timers. */
function backendFor(opts: SandboxConnectOpts): SandboxBackend {
  if (opts.backend !== undefined) return opts.backend;
  // An explicit home, Skiff or runner means this process; SKIFF_HOST only stands in for a `host` not given.
  const local = opts.home !== undefined || opts.skiff !== undefined || opts.runner !== undefined;
  const host = opts.host ?? (local ? undefined : process.env.SKIFF_HOST || undefined);
  if (host !== undefined) {
    const token = opts.token ?? process.env.SKIFF_TOKEN;
    if (opts.ca !== undefined) return new RemoteBackend({ host, ca: opts.ca, ...(token === undefined ? {} : { token }) });
    return cached(JSON.stringify(["remote", host, token ?? null]), () => new RemoteBackend({ host, ...(token === undefined ? {} : { token }) }));
  }
  if (opts.skiff !== undefined || opts.runner !== undefined) return new LocalBackend(opts);
  return cached(JSON.stringify([opts.home ?? null, opts.cacheDir ?? null, opts.idleMs ?? null]), () => new LocalBackend(opts));
}

function cached(key: string, make: () => SandboxBackend): SandboxBackend {
  let backend = backends.get(key);
  if (backend === undefined) {
    backend = make();
    backends.set(key, backend);
  }
  return backend;
}

export class Sandbox {
  readonly sandboxId: string;
  readonly commands: Commands;
  readonly pty: Pty;
  readonly files: Filesystem;
  readonly #backend: SandboxBackend;

  protected constructor(backend: SandboxBackend, sandboxId: string) {
    this.#backend = backend;
    this.sandboxId = sandboxId;
    const table = new ProcessTable(backend, sandboxId);
    this.commands = new Commands(table);
    this.pty = new Pty(table);
    this.files = new Filesystem(backend, sandboxId);
  }

  /** A new sandbox, booted (or restored from `snapshot`) and ready for commands. E2B's `create(template, opts)` works too. */
  static create(opts?: SandboxOpts): Promise<Sandbox>;
  static create(image: string, opts?: Omit<SandboxOpts, "image">): Promise<Sandbox>;
  static async create(first: string | SandboxOpts = {}, rest: SandboxOpts = {}): Promise<Sandbox> {
    const opts: SandboxOpts = typeof first === "string" ? { ...rest, image: first } : first;
    checkKeys(opts, createKeys, "create");
    const backend = backendFor(opts);
    const timeoutMs = checkTimeout(opts.timeoutMs ?? defaultSandboxTimeoutMs);
    const info = await backend.create({
      ...pick(opts, ["image", "snapshot", "name", "memory", "cpus", "envs", "metadata"]),
      ...(timeoutMs > 0 ? { timeoutMs } : {}),
    });
    return new Sandbox(backend, info.sandboxId);
  }

  /** A running sandbox by id; a paused one is resumed (as E2B's connect does). */
  static async connect(sandboxId: string, opts: SandboxConnectOpts = {}): Promise<Sandbox> {
    checkKeys(opts, connectKeys, "connect");
    const backend = backendFor(opts);
    const info = await backend.info(sandboxId);
    if (info.state === "paused") await backend.resume(sandboxId);
    else if (info.state !== "running") {
      throw new SkiffError("ERR_SKIFF_VM_NOT_RUNNING", `sandbox ${sandboxId} is ${info.state}`, { place: sandboxId, hint: "Sandbox.list() shows the running ones" });
    }
    return new Sandbox(backend, sandboxId);
  }

  /** Running and paused sandboxes (every running VM of the home). */
  static list(opts: SandboxConnectOpts = {}): Promise<SandboxInfo[]> {
    return backendFor(opts).list();
  }

  /** Kill a sandbox by id; false when there was none. */
  static kill(sandboxId: string, opts: SandboxConnectOpts = {}): Promise<boolean> {
    return backendFor(opts).kill(sandboxId);
  }

  /**
   * Kill the sandbox `sandboxId` `timeoutMs` from now instead of at its old end, sooner or later (E2B's;
   * 0: never). Remotely the server holds the end and kills it there, whether or not this process is left.
   */
  static setTimeout(sandboxId: string, timeoutMs: number, opts: SandboxConnectOpts = {}): Promise<void> {
    checkKeys(opts, connectKeys, "setTimeout");
    return backendFor(opts).setTimeout(sandboxId, checkTimeout(timeoutMs));
  }

  /** Kill this sandbox `timeoutMs` from now (0: never); see the static setTimeout. */
  setTimeout(timeoutMs: number): Promise<void> {
    return this.#backend.setTimeout(this.sandboxId, checkTimeout(timeoutMs));
  }

  getInfo(): Promise<SandboxInfo> {
    return this.#backend.info(this.sandboxId);
  }

  async isRunning(): Promise<boolean> {
    try {
      return (await this.getInfo()).state === "running";
    } catch (err) {
      if (err instanceof SkiffError && err.code === "ERR_SKIFF_VM_NOT_FOUND") return false;
      throw err;
    }
  }

  /** End the sandbox and remove it; false when it was already gone. */
  kill(): Promise<boolean> {
    return this.#backend.kill(this.sandboxId);
  }

  /** Freeze the guest's CPUs (skiff pause); it keeps its memory and runs on after resume(). */
  pause(): Promise<void> {
    return this.#backend.pause(this.sandboxId);
  }

  resume(): Promise<void> {
    return this.#backend.resume(this.sandboxId);
  }

  /** A snapshot (memory, devices, disk) that Sandbox.create({ snapshot }) restores; the sandbox runs on. */
  snapshot(name?: string): Promise<SnapshotRef> {
    return this.#backend.snapshot(this.sandboxId, name);
  }

  /** `count` live clones, each where this one is now; writes in one are nobody else's. */
  async fork(count = 1): Promise<Sandbox[]> {
    const infos = await this.#backend.fork(this.sandboxId, count);
    return infos.map((info) => new Sandbox(this.#backend, info.sandboxId));
  }

  /** Let go of this process's connection to the sandbox (it runs on); the next call connects again. */
  close(): Promise<void> {
    return this.#backend.release(this.sandboxId);
  }
}

function pick<T extends object, K extends keyof T>(obj: T, keys: readonly K[]): Pick<T, K> {
  const out: Partial<T> = {};
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k];
  return out as Pick<T, K>;
}
