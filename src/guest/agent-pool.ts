/**
 * The SSH sessions of one AgentConnection, handed out so that a command
 * starts on a session with no other command running.
 *
 * Why: the guest's dropbear (2022.83, Debian 12) closes a session channel it
 * has just opened when a child of the same dropbear exits at that moment
 * (mkj/dropbear#173, fixed upstream in 2024.86 by PR #326). The command of
 * that channel may still run, its output and exit status lost, and under
 * load the failures cascade. Measured on one session: 8 workers running
 * `true` back to back lost 309 of 320 commands; one worker lost none of 200;
 * one worker beside 4 commands ending on their own lost 9 of 200.
 *
 * So a command takes an idle session, else a new one on a free port (one
 * handshake, ~150 ms, then kept while busy and 10 s after), else it queues
 * for the first session to fall idle or port to come free (other processes'
 * sessions end too), however many commands come at once: a VM has only a
 * few ports. Only a signal for a running command (Ctrl-C) does not queue
 * behind long-running commands: after a short wait it shares a busy
 * session, and carries the risk.
 */
import { isSkiffError, SkiffError } from "../errors.js";
import { endAgentSession, onSessionClosed, openSession, type AgentSession, type SessionKind, type SessionTarget } from "./agent-session.js";

export interface PooledSession {
  readonly session: AgentSession;
  /** Pidfile slots of its running commands; names are reused so the guest's /dev/.skiff-run stays small. */
  readonly slots: Set<number>;
}

interface Entry extends PooledSession {
  readonly ended: Promise<void>;
  open: boolean;
  /** Channels opening or open on it. */
  busy: number;
  idleTimer?: NodeJS.Timeout;
}

/** Budget for opening an extra session. */
const extraSessionTimeoutMs = 3_000;
/** How long a signal waits for a session to fall idle before sharing a busy one. */
const shareAfterMs = 2_000;
/** While queued, how often a command looks for a port other processes let go. */
const portRetryMs = 500;
/** Extra sessions idle this long are closed, giving their ports back. */
const extraSessionIdleMs = 10_000;

export class SessionPool {
  readonly vmName: string;
  readonly #target: SessionTarget;
  readonly #primary: Entry;
  readonly #entries: Entry[] = [];
  /** Commands waiting for a session to fall idle, first come first served. */
  readonly #waiters = new Set<(entry: Entry | undefined) => void>();
  #closing = false;

  constructor(target: SessionTarget, first: AgentSession) {
    this.#target = target;
    this.vmName = target.vmName;
    this.kind = first.kind;
    this.#primary = this.#adopt(first);
  }

  /** What the pool's sessions speak: the first one's kind (native falls back on SSH for old guests). */
  readonly kind: SessionKind;

  /** What the sessions are opened for. */
  get target(): SessionTarget {
    return this.#target;
  }

  /** The skiff home the port locks live in. */
  get home(): string {
    return this.#target.home;
  }

  /** Commands are plain shell command lines for the image's sshd (cloud images), not skiff-exec requests. */
  get plainShell(): boolean {
    return this.#target.tcp !== undefined;
  }

  /** The SSH user of plain-shell sessions. */
  get sshUser(): string {
    return this.#target.tcp?.username ?? "root";
  }

  get primaryPort(): number {
    return this.#primary.session.port;
  }

  /** False once close() was called or the first session ended (the guest went away). */
  get isOpen(): boolean {
    return this.#primary.open && !this.#closing;
  }

  /**
   * A session for one command; give it back with release() when the
   * command has ended. Queues while every port is busy; `share` (for a
   * signal) shares a busy session instead after a short wait.
   */
  async acquire(opts: { share?: boolean } = {}): Promise<PooledSession> {
    const busyDeadline = Date.now() + this.#target.busyTimeoutMs;
    for (;;) {
      if (!this.isOpen) throw this.#closed();
      const idle = this.#idle() ?? (await this.#extraSession());
      if (idle) return take(idle);
      const nowIdle = this.#idle();
      if (nowIdle) return take(nowIdle);
      const left = busyDeadline - Date.now();
      const handed = await this.#nextIdle(opts.share === true ? shareAfterMs : Math.max(0, Math.min(portRetryMs, left)));
      if (handed) return handed;
      if (opts.share === true) {
        const shared = this.#entries.filter((e) => e.open).sort((a, b) => a.busy - b.busy)[0];
        if (!shared || !this.isOpen) throw this.#closed();
        return take(shared);
      }
      if (left <= 0) throw this.#busy();
    }
  }

  /** A new session on a free port, while this connection holds fewer than the VM has; undefined when none is free or answers. */
  async #extraSession(): Promise<Entry | undefined> {
    if (this.#entries.length >= (this.#target.tcp?.maxSessions ?? this.#target.socketPaths.length)) return undefined;
    const session = await openSession(this.#target, { timeoutMs: extraSessionTimeoutMs, waitForSockets: false, singlePass: true, kind: this.kind }).catch(
      (err: unknown) => {
        // No port free or answering: fall back on the sessions we have.
        if (isSkiffError(err) && (err.code === "ERR_SKIFF_VM_BUSY" || err.code === "ERR_SKIFF_AGENT")) return undefined;
        throw err;
      },
    );
    if (session === undefined) return undefined;
    const entry = this.#adopt(session);
    if (!this.isOpen) {
      await endSession(entry);
      throw this.#closed();
    }
    return entry;
  }

  release(pooled: PooledSession): void {
    const entry = pooled as Entry;
    entry.busy--;
    if (entry.busy > 0 || !entry.open) return;
    const [waiter] = this.#waiters;
    if (waiter) {
      this.#waiters.delete(waiter);
      waiter(take(entry));
      return;
    }
    if (entry === this.#primary) return;
    entry.idleTimer = setTimeout(() => void endSession(entry), extraSessionIdleMs);
    entry.idleTimer.unref();
  }

  /** End the extra sessions no command uses, freeing their ports now instead of after their idle time (for another kind of session). */
  async endIdleExtras(): Promise<void> {
    const idle = this.#entries.filter((e) => e !== this.#primary && e.open && e.busy === 0);
    await Promise.all(idle.map((entry) => endSession(entry)));
  }

  /** End every session and free their ports. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const waiter of this.#waiters) waiter(undefined);
    this.#waiters.clear();
    await Promise.all([...this.#entries].map((entry) => endSession(entry)));
  }

  #idle(): Entry | undefined {
    return this.#entries.find((e) => e.open && e.busy === 0);
  }

  /** The next session to fall idle, already taken for the caller; undefined after `ms`. */
  #nextIdle(ms: number): Promise<Entry | undefined> {
    return new Promise((resolve) => {
      const waiter = (entry: Entry | undefined) => {
        clearTimeout(timer);
        resolve(entry);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        resolve(undefined);
      }, ms);
      this.#waiters.add(waiter);
    });
  }

  #adopt(session: AgentSession): Entry {
    let entry!: Entry;
    const ended = new Promise<void>((done) =>
      onSessionClosed(session, () => {
        entry.open = false;
        clearTimeout(entry.idleTimer);
        const at = this.#entries.indexOf(entry);
        if (at >= 0) this.#entries.splice(at, 1);
        // Without its first session the connection is gone: end the others too.
        if (entry === this.#primary) for (const other of this.#entries) void endSession(other);
        void session.lock.release().then(done);
      }),
    );
    entry = { session, ended, open: true, busy: 0, slots: new Set() };
    // Failures after the handshake surface as closed channels; keep them from crashing the process.
    if (session.kind === "ssh") session.client.on("error", () => {});
    this.#entries.push(entry);
    return entry;
  }

  #busy(): SkiffError {
    return new SkiffError("ERR_SKIFF_VM_BUSY", `every agent session with ${this.vmName} stayed busy for ${this.#target.busyTimeoutMs / 1000} s`, {
      hint: "commands that run long (or interactive sessions) hold them; end some, or retry when they finish",
      details: { vm: this.vmName },
    });
  }

  #closed(): SkiffError {
    return new SkiffError("ERR_SKIFF_AGENT", `the connection to the guest agent of ${this.vmName} is closed`, {
      hint: `check that the VM still runs (\`skiff ps -a\`) and read \`skiff logs ${this.vmName}\``,
    });
  }
}

function take(entry: Entry): Entry {
  entry.busy++;
  clearTimeout(entry.idleTimer);
  return entry;
}

/** Disconnect a session; a guest past answering gets 2 s before the socket is cut. */
async function endSession(entry: Entry): Promise<void> {
  if (entry.open) {
    endAgentSession(entry.session);
    const timer = setTimeout(() => entry.session.socket.destroy(), 2_000);
    await entry.ended;
    clearTimeout(timer);
  }
  await entry.ended;
}
