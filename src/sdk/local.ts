/**
 * The in-process backend: sandboxes are VMs of a `Skiff` in this process,
 * processes run over its guest agent (one SSH connection per sandbox, shared
 * by everything running in it).
 *
 * Connections: an open SSH socket keeps Node's event loop alive, so a
 * sandbox's connection is closed once nothing has used it for `idleMs`; a
 * script that is done exits at most that long after its last call.
 *
 * Deadlines (Sandbox.create's timeoutMs): the timeout is a label on the VM
 * (labels.ts), counted from the VM's start, so every SDK process sharing the
 * home sees the same end. It is enforced two ways: a timer in the process
 * that created or connected the sandbox (unref'd: it never keeps a process
 * alive), and lazily: create and list first kill every sandbox past its
 * end, info (connect, getInfo) the one asked about. A sandbox whose every
 * SDK process has exited lives until the next such call, unless a `skiff
 * serve` runs on the same home: its watcher removes it at its end
 * (src/server/deadlines.ts). setTimeout moves the end (the label) and the
 * timer; other processes' timers see the new end when theirs fires.
 */
import { PassThrough } from "node:stream";
import { Skiff, SkiffError, type AgentConnection, type SkiffOptions, type VmInfo } from "../index.js";
import type { CreateSandboxRequest, ExecChannel, ExecSink, ExecSpec, SandboxBackend, SandboxInfo, SnapshotRef } from "./backend.js";
import { execRequest, removed, sinkStream, writeTo } from "./exec-streams.js";
import { createLabels, expired, forkPrefix, sandboxInfo } from "./labels.js";
import { deadlineLabel } from "../api/deadline.js";

export interface LocalBackendOptions extends SkiffOptions {
  /** Close a sandbox's idle connection after this long (default 500 ms). */
  idleMs?: number;
  /** Use this Skiff instead of making one from the options. */
  skiff?: Skiff;
}

interface Lease {
  connection: Promise<AgentConnection>;
  users: number;
  idle: NodeJS.Timeout | undefined;
}

/** Timers are held off beyond this (setTimeout's limit is 2^31-1 ms); they are re-armed when they fire early. */
const maxTimerMs = 2 ** 31 - 1;

export class LocalBackend implements SandboxBackend {
  readonly skiff: Skiff;
  readonly #idleMs: number;
  readonly #leases = new Map<string, Lease>();
  readonly #deadlines = new Map<string, NodeJS.Timeout>();
  /** Kills under way: a deadline's timer and a lazy reap can reach one sandbox at once. */
  readonly #killing = new Map<string, Promise<boolean>>();
  /**
   * Sandboxes this backend paused. A new command on a paused guest would
   * wait on the open connection until it runs again (a fresh connect is
   * refused, but a held one is not asked): refused here instead.
   */
  readonly #paused = new Set<string>();

  constructor(opts: LocalBackendOptions = {}) {
    const { idleMs, skiff, ...skiffOpts } = opts;
    this.skiff = skiff ?? new Skiff(skiffOpts);
    this.#idleMs = idleMs ?? 500;
  }

  async create(req: CreateSandboxRequest): Promise<SandboxInfo> {
    const labels = createLabels(req);
    await this.#reapExpired();
    let vm: VmInfo;
    if (req.snapshot !== undefined) {
      vm = await this.skiff.restore(req.snapshot, { labels, ...(req.name === undefined ? {} : { name: req.name }) });
    } else {
      const made = await this.skiff.create({
        image: req.image ?? "base",
        labels,
        ...(req.name === undefined ? {} : { name: req.name }),
        ...(req.memory === undefined ? {} : { memory: req.memory }),
        ...(req.cpus === undefined ? {} : { cpus: req.cpus }),
        ...(req.envs === undefined ? {} : { env: req.envs }),
      });
      try {
        vm = await this.skiff.start(made.name);
      } catch (err) {
        await this.skiff.remove(made.name, { force: true }).catch(() => undefined);
        throw err;
      }
    }
    const info = sandboxInfo(vm);
    this.#arm(info);
    return info;
  }

  async info(id: string): Promise<SandboxInfo> {
    const info = sandboxInfo(await this.skiff.inspect(id));
    if (info.endAt !== undefined && info.endAt.getTime() <= Date.now()) {
      await this.kill(id);
      throw new SkiffError("ERR_SKIFF_VM_NOT_FOUND", `sandbox ${id} has reached its timeout and was killed`, { place: id, details: { endAt: info.endAt } });
    }
    if (info.state === "paused") this.#paused.add(id);
    else this.#paused.delete(id);
    this.#arm(info);
    return info;
  }

  async list(): Promise<SandboxInfo[]> {
    await this.#reapExpired();
    return (await this.skiff.list()).map(sandboxInfo);
  }

  kill(id: string): Promise<boolean> {
    let killing = this.#killing.get(id);
    if (killing === undefined) {
      killing = this.#kill(id).finally(() => this.#killing.delete(id));
      this.#killing.set(id, killing);
    }
    return killing;
  }

  async setTimeout(id: string, timeoutMs: number): Promise<void> {
    const vm = await this.skiff.setLabels(id, deadlineLabel(await this.skiff.inspect(id), timeoutMs));
    this.#arm(sandboxInfo(vm));
  }

  async #kill(id: string): Promise<boolean> {
    this.#disarm(id);
    this.#paused.delete(id);
    await this.release(id);
    return removed(this.skiff.remove(id, { force: true }));
  }

  /** Commands that run keep their connection: they go on after resume(). */
  async pause(id: string): Promise<void> {
    await this.skiff.pause(id);
    this.#paused.add(id);
  }

  async resume(id: string): Promise<void> {
    await this.skiff.unpause(id);
    this.#paused.delete(id);
  }

  async snapshot(id: string, name?: string): Promise<SnapshotRef> {
    const snap = await this.skiff.snapshot(id, name === undefined ? {} : { name });
    return { snapshotId: snap.id, name: snap.name };
  }

  async fork(id: string, count: number): Promise<SandboxInfo[]> {
    const prefix = forkPrefix(id);
    // The clones carry the original's metadata and timeout (a restore alone takes no labels).
    const { labels } = await this.skiff.inspect(id);
    const infos = (await this.skiff.fork(id, { count, prefix, labels })).map(sandboxInfo);
    for (const info of infos) this.#arm(info);
    return infos;
  }

  async exec(id: string, spec: ExecSpec, sink: ExecSink): Promise<ExecChannel> {
    if (this.#paused.has(id)) {
      throw new SkiffError("ERR_SKIFF_VM_PAUSED", `sandbox ${id} is paused`, { place: id, hint: "resume it: sandbox.resume(), or Sandbox.connect(id)" });
    }
    const { lease, connection } = await this.#acquire(id);
    const stdin = spec.stdin ? new PassThrough() : undefined;
    try {
      const running = await connection.start(
        execRequest(spec),
        {
          stdout: sinkStream((c) => sink.stdout(c)),
          stderr: sinkStream((c) => sink.stderr(c)),
          ...(stdin === undefined ? {} : { stdin }),
          ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
        },
      );
      const done = running.done.then((r) => ({ exitCode: r.code, ...(r.signal === undefined ? {} : { signal: r.signal }) }));
      const release = () => this.#unlease(id, lease);
      done.then(release, release);
      return {
        done,
        writeStdin: (data) => writeTo(stdin, data),
        closeStdin: () => stdin?.end(),
        signal: (signal) => running.sendSignal(signal),
        resize: (size) => running.setWindow(size),
      };
    } catch (err) {
      this.#unlease(id, lease);
      throw err;
    }
  }

  async release(id: string): Promise<void> {
    const lease = this.#leases.get(id);
    if (lease === undefined) return;
    this.#leases.delete(id);
    clearTimeout(lease.idle);
    await (await lease.connection.catch(() => undefined))?.close();
  }

  async #acquire(id: string): Promise<{ lease: Lease; connection: AgentConnection }> {
    const known = this.#leases.get(id);
    if (known !== undefined && !(await known.connection.then((c) => c.isOpen, () => false))) {
      // The guest went away under it (a reboot, a restore): connect again.
      if (this.#leases.get(id) === known) await this.release(id);
    }
    // No await between looking and adding: two calls at once must share one connection.
    let lease = this.#leases.get(id);
    if (lease === undefined) {
      const connection = this.skiff.connect(id);
      const made: Lease = { connection, users: 0, idle: undefined };
      this.#leases.set(id, made);
      // A failed connect is not kept: the next call tries again.
      connection.catch(() => {
        if (this.#leases.get(id) === made) this.#leases.delete(id);
      });
      lease = made;
    }
    lease.users++;
    clearTimeout(lease.idle);
    lease.idle = undefined;
    try {
      return { lease, connection: await lease.connection };
    } catch (err) {
      lease.users--;
      throw err;
    }
  }

  /** `lease` (not whatever the map holds now: a kill may have replaced it) has one user fewer. */
  #unlease(id: string, lease: Lease): void {
    lease.users--;
    if (this.#leases.get(id) !== lease) return;
    if (lease.users > 0) return;
    lease.idle = setTimeout(() => {
      if (this.#leases.get(id) === lease && lease.users === 0) void this.release(id);
    }, this.#idleMs);
  }

  /** Kill the sandbox at its end time, while this process lives. */
  #arm(info: SandboxInfo): void {
    this.#disarm(info.sandboxId);
    if (info.endAt === undefined) return;
    const endAt = info.endAt.getTime();
    const timer = setTimeout(
      () => {
        if (Date.now() < endAt) return this.#arm(info);
        this.#deadlines.delete(info.sandboxId);
        // The end is read again: another process may have moved it. info() kills a sandbox past it, or arms the new one.
        void this.info(info.sandboxId).catch(() => undefined);
      },
      Math.min(Math.max(0, endAt - Date.now()), maxTimerMs),
    );
    timer.unref();
    this.#deadlines.set(info.sandboxId, timer);
  }

  #disarm(id: string): void {
    clearTimeout(this.#deadlines.get(id));
    this.#deadlines.delete(id);
  }

  async #reapExpired(): Promise<void> {
    for (const id of expired(await this.skiff.list({ all: true }))) await this.kill(id).catch(() => undefined);
  }
}
