/**
 * The server's agent connections: one open AgentConnection per running VM,
 * shared by every exec request (REST and WebSocket) on it. Opening one is an
 * SSH handshake with the guest, which under TCG costs more than the command
 * it is for; the connection's session pool (src/guest/agent-pool.ts) runs
 * commands that come at once on sessions of their own.
 *
 * A connection is dropped (closed once no command runs on it; the next use
 * connects again):
 * - when the server changes the VM's life: stop, kill, restart, remove,
 *   pause, unpause (a paused guest gets a fresh connect, which refuses it
 *   with ERR_SKIFF_VM_PAUSED instead of a command that waits);
 * - when it closed under us (the guest went away: a stop, restart or
 *   removal by another process ends QEMU, and with it the agent's sockets):
 *   `isOpen` is looked at before each use;
 * - after `idleMs` without a command, giving the VM's agent port back;
 * - all of them when the server shuts down.
 * A connect still under way when a drop comes is not kept either: what the
 * drop was for may have changed the VM under it.
 */
import type { AgentConnection, Skiff } from "../index.js";

interface Held {
  connection: Promise<AgentConnection>;
  /** Commands on it now. */
  users: number;
  idle: NodeJS.Timeout | undefined;
  /** Set when it is no longer handed out: closed when its last user leaves. */
  dropped: boolean;
}

/** A connection nobody used for this long is closed (its port is one of the VM's few). */
const defaultIdleMs = 60_000;

export class AgentConnections {
  readonly #skiff: Skiff;
  readonly #idleMs: number;
  readonly #held = new Map<string, Held>();
  #closed = false;

  constructor(skiff: Skiff, opts: { idleMs?: number } = {}) {
    this.#skiff = skiff;
    this.#idleMs = opts.idleMs ?? defaultIdleMs;
  }

  /**
   * Run `fn` on the VM's connection, made if there is none (or it died).
   * The connection stays open for the next caller; `fn` must not close it.
   */
  async use<T>(name: string, fn: (conn: AgentConnection) => Promise<T>): Promise<T> {
    const held = await this.#acquire(name);
    try {
      return await fn(await held.connection);
    } finally {
      this.#release(name, held);
    }
  }

  /** Stop handing out the VM's connection: it closes once its commands end. Called after a verb changed the VM. */
  drop(name: string): void {
    const held = this.#held.get(name);
    if (held === undefined) return;
    this.#held.delete(name);
    held.dropped = true;
    if (held.users === 0) void this.#close(held);
  }

  /** Close every connection (server shutdown); commands still running are hung up. */
  async closeAll(): Promise<void> {
    this.#closed = true;
    const all = [...this.#held.values()];
    this.#held.clear();
    await Promise.all(all.map((held) => this.#close(held)));
  }

  /** How many connections are held (for tests and the curious). */
  get size(): number {
    return this.#held.size;
  }

  async #acquire(name: string): Promise<Held> {
    const known = this.#held.get(name);
    if (known !== undefined && !(await known.connection.then((c) => c.isOpen, () => false))) {
      // The guest went away under it (another process stopped, restarted or removed the VM): connect again.
      if (this.#held.get(name) === known) this.drop(name);
    }
    // No await between looking and adding: requests that come at once share one connect.
    let held = this.#held.get(name);
    if (held === undefined) {
      const made: Held = { connection: this.#skiff.connect(name), users: 0, idle: undefined, dropped: this.#closed };
      held = made;
      if (!this.#closed) this.#held.set(name, made);
      // A failed connect is not kept: the next request tries again.
      made.connection.catch(() => {
        if (this.#held.get(name) === made) this.#held.delete(name);
      });
    }
    held.users++;
    clearTimeout(held.idle);
    held.idle = undefined;
    try {
      await held.connection;
    } catch (err) {
      held.users--;
      throw err;
    }
    return held;
  }

  #release(name: string, held: Held): void {
    held.users--;
    if (held.users > 0) return;
    if (held.dropped) {
      void this.#close(held);
      return;
    }
    held.idle = setTimeout(() => {
      if (this.#held.get(name) === held && held.users === 0) this.drop(name);
    }, this.#idleMs);
    // An idle connection must not keep a server that is shutting down alive.
    held.idle.unref();
  }

  async #close(held: Held): Promise<void> {
    clearTimeout(held.idle);
    held.dropped = true;
    await (await held.connection.catch(() => undefined))?.close().catch(() => undefined);
  }
}
