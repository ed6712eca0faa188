/**
 * The host's end of the guest agent: SSH over virtio-serial ports (sessions
 * in agent-session.ts), with commands, shells, copies and SFTP on top.
 *
 * Why an AgentConnection may hold several sessions: the guest's dropbear
 * (2022.83, Debian 12) closes a session channel it has just opened when a
 * child of the same dropbear exits at that moment (mkj/dropbear#173, fixed
 * upstream in 2024.86 by PR #326). The command of that channel may still
 * run, its output and exit status lost; under load the failures cascade.
 * Measured here: 8 workers running `true` back to back on one session lost
 * 309 of 320 commands; one worker lost none in 200. So a command is started
 * on a session that has no other command running, and a command started
 * while all are busy gets a new session on another port (one handshake,
 * ~150 ms, then reused). Only when no port is free does a command share a
 * busy session, and then it carries that risk.
 */
import { Readable, Writable } from "node:stream";
import type { ClientChannel, PseudoTtyOptions, SFTPWrapper } from "ssh2";
import { isSkiffError, SkiffError } from "../errors.js";
import { copyFrom, copyTo } from "./agent-copy.js";
import { watchChannel, type ExecIO, type ExecOptions, type ExecResult, type RunningExec } from "./agent-exec.js";
import { openSession, resolveTarget, type AgentSession, type SessionTarget } from "./agent-session.js";
import { encodeExecRequest, type ExecRequest, type PtyOptions } from "./exec-request.js";

export type { ExecIO, ExecOptions, ExecResult, RunningExec, WindowSize } from "./agent-exec.js";
export type { ExecRequest, PtyOptions } from "./exec-request.js";

export interface AgentConnectOptions {
  /** The VM's agent port sockets, in order of preference. */
  socketPaths: readonly string[];
  /** Port i is locked as `${lockPrefix}-agent-${i}`. */
  lockPrefix: string;
  /** skiff home the locks belong to. */
  home: string;
  /** The VM's client key (OpenSSH private key file). */
  privateKeyPath: string;
  /** The guest's host key, as an OpenSSH public key line ("ssh-ed25519 AAAA… comment"). */
  hostPublicKey: string;
  /** Give up after this long (default 10 s for connectAgent, 60 s for waitForAgent). */
  timeoutMs?: number;
  /** Wait this long for an answer on one port before trying the next (default 1.5 s). */
  portBudgetMs?: number;
  /** The VM's name, for messages (default lockPrefix). */
  vmName?: string;
  /** Stop waiting early, e.g. when QEMU exits during boot. */
  signal?: AbortSignal;
}

export interface RunOptions extends Omit<ExecRequest, "argv"> {
  /** Written to the command's stdin, which is then closed. */
  input?: string | Uint8Array;
  timeoutMs?: number;
}

export interface RunOutput extends ExecResult {
  stdout: string;
  stderr: string;
}

export interface ShellOptions {
  /** Allocate a PTY (default true). */
  tty?: boolean | PtyOptions;
}

const defaultTimeoutMs = 10_000;
const defaultWaitMs = 60_000;
const defaultPortBudgetMs = 1_500;
/** Budget for opening an extra session. */
const extraSessionTimeoutMs = 3_000;
/** How long a command waits for a session to fall idle before sharing a busy one. */
const shareAfterMs = 2_000;
/** Extra sessions idle this long are closed, giving their ports back. */
const extraSessionIdleMs = 10_000;
const skiffKill = "/dev/.skiff/bin/skiff-kill";

/** Connect to a running VM's agent on the first free port. */
export async function connectAgent(opts: AgentConnectOptions): Promise<AgentConnection> {
  const target = await targetOf(opts);
  const session = await openSession(target, {
    timeoutMs: opts.timeoutMs ?? defaultTimeoutMs,
    waitForSockets: false,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return new AgentConnection(target, session);
}

/**
 * Connect to a VM that is still booting: its sockets may not exist yet and
 * its guest answers a few seconds after QEMU starts.
 */
export async function waitForAgent(opts: AgentConnectOptions): Promise<AgentConnection> {
  const target = await targetOf(opts);
  const session = await openSession(target, {
    timeoutMs: opts.timeoutMs ?? defaultWaitMs,
    waitForSockets: true,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return new AgentConnection(target, session);
}

function targetOf(opts: AgentConnectOptions): Promise<SessionTarget> {
  return resolveTarget({ ...opts, vmName: opts.vmName ?? opts.lockPrefix, portBudgetMs: opts.portBudgetMs ?? defaultPortBudgetMs });
}

interface PooledSession {
  readonly session: AgentSession;
  readonly ended: Promise<void>;
  open: boolean;
  /** Channels opening or open on it. */
  busy: number;
  /** Pidfile slots of its running commands; names are reused so the guest's /dev/.skiff-run stays small. */
  readonly slots: Set<number>;
  idleTimer?: NodeJS.Timeout;
}

/** A live link to one VM's guest agent. */
export class AgentConnection {
  readonly vmName: string;
  readonly #target: SessionTarget;
  readonly #primary: PooledSession;
  readonly #sessions: PooledSession[] = [];
  /** Commands waiting for a session to fall idle, first come first served. */
  readonly #idleWaiters = new Set<(pooled: PooledSession | undefined) => void>();
  #closing = false;

  constructor(target: SessionTarget, session: AgentSession) {
    this.#target = target;
    this.vmName = target.vmName;
    this.#primary = this.#adopt(session);
  }

  /** Index of the agent port of the first session. */
  get port(): number {
    return this.#primary.session.port;
  }

  /** False once close() was called or the guest went away. */
  get isOpen(): boolean {
    return this.#primary.open && !this.#closing;
  }

  /** Start `req`; resolves once the command runs, with a handle to signal and await it. */
  async start(req: ExecRequest, io: ExecOptions = {}): Promise<RunningExec> {
    encodeExecRequest(req); // refuse a bad request before taking a session for it
    const pooled = await this.#acquire();
    let slot = 0;
    while (pooled.slots.has(slot)) slot++;
    pooled.slots.add(slot);
    const finished = () => {
      pooled.slots.delete(slot);
      this.#release(pooled);
    };
    try {
      const pidfile = `agent${pooled.session.port}-${slot}`;
      const command = encodeExecRequest({ ...req, pidfile });
      const pty = ptyOptions(req.tty);
      const client = pooled.session.client;
      const running = await this.#channel(
        (cb) => (pty ? client.exec(command, { pty }, cb) : client.exec(command, cb)),
        (channel) =>
          watchChannel(channel, io, {
            what: `\`${describe(req.argv)}\` in VM ${this.vmName}`,
            vmName: this.vmName,
            ...(io.timeoutMs === undefined ? {} : { timeoutMs: io.timeoutMs }),
            killViaPidfile: (signo) => this.#kill(pidfile, signo),
            sessionAlive: () => !pooled.session.socket.destroyed,
          }),
      );
      running.done.then(finished, finished);
      return running;
    } catch (err) {
      finished();
      throw err;
    }
  }

  /** Run `req` to its end, streaming through `io`. */
  async exec(req: ExecRequest, io: ExecOptions = {}): Promise<ExecResult> {
    return (await this.start(req, io)).done;
  }

  /** Run `argv` and collect its output as text. */
  async run(argv: string[], opts: RunOptions = {}): Promise<RunOutput> {
    const { input, timeoutMs, ...rest } = opts;
    const stdout = new Collector();
    const stderr = new Collector();
    const io: ExecOptions = { stdout, stderr, ...(timeoutMs === undefined ? {} : { timeoutMs }) };
    if (input !== undefined) io.stdin = Readable.from([Buffer.from(input)]);
    const result = await this.exec({ ...rest, argv }, io);
    return { ...result, stdout: stdout.text(), stderr: stderr.text() };
  }

  /** An interactive login shell (root's shell in the image). */
  async shell(opts: ShellOptions = {}, io: ExecIO = {}): Promise<RunningExec> {
    const pty = ptyOptions(opts.tty ?? true);
    const pooled = await this.#acquire();
    try {
      const client = pooled.session.client;
      const running = await this.#channel(
        (cb) => client.shell(pty ?? false, cb),
        (channel) =>
          watchChannel(channel, io, {
            what: `the login shell in VM ${this.vmName}`,
            vmName: this.vmName,
            sessionAlive: () => !pooled.session.socket.destroyed,
          }),
      );
      const finished = () => this.#release(pooled);
      running.done.then(finished, finished);
      return running;
    } catch (err) {
      this.#release(pooled);
      throw err;
    }
  }

  /** Copy a host file or directory into the VM (docker cp semantics). */
  copyTo(hostPath: string, guestPath: string): Promise<void> {
    return copyTo(this, hostPath, guestPath);
  }

  /** Copy a file or directory out of the VM (docker cp semantics). */
  copyFrom(guestPath: string, hostPath: string): Promise<void> {
    return copyFrom(this, guestPath, hostPath);
  }

  /** An SFTP session with the guest (paths inside the image); end() it when done. */
  async sftp(): Promise<SFTPWrapper> {
    const pooled = await this.#acquire();
    try {
      const sftp = await new Promise<SFTPWrapper>((resolve, reject) => {
        try {
          pooled.session.client.sftp((err, wrapper) => (err ? reject(this.#agentError("cannot start SFTP", err)) : resolve(wrapper)));
        } catch (err) {
          reject(this.#agentError("cannot start SFTP", err));
        }
      });
      sftp.once("close", () => this.#release(pooled));
      return sftp;
    } catch (err) {
      this.#release(pooled);
      throw err;
    }
  }

  /** End every session and free the ports; commands still running in the guest are hung up. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const waiter of this.#idleWaiters) waiter(undefined);
    this.#idleWaiters.clear();
    await Promise.all([...this.#sessions].map((pooled) => endSession(pooled)));
  }

  /**
   * A session with no command running: an idle one, else a new one on a
   * free port, else the first of ours to fall idle; after a short wait
   * (all ports in use, say by long-running commands) the least busy one.
   */
  async #acquire(): Promise<PooledSession> {
    if (!this.isOpen) throw this.#agentError("the connection is closed");
    const idle = this.#idle();
    if (idle) return take(idle);
    if (this.#sessions.length < this.#target.socketPaths.length) {
      const session = await openSession(this.#target, { timeoutMs: extraSessionTimeoutMs, waitForSockets: false, singlePass: true }).catch(
        (err: unknown) => {
          if (isSkiffError(err) && (err.code === "ERR_SKIFF_VM_BUSY" || err.code === "ERR_SKIFF_AGENT")) return undefined;
          throw err;
        },
      );
      if (session) {
        const pooled = this.#adopt(session);
        if (!this.isOpen) {
          await endSession(pooled);
          throw this.#agentError("the connection is closed");
        }
        return take(pooled);
      }
    }
    const nowIdle = this.#idle();
    if (nowIdle) return take(nowIdle);
    const handed = await this.#nextIdle(shareAfterMs);
    if (handed) return handed;
    if (!this.isOpen) throw this.#agentError("the connection is closed");
    const shared = this.#sessions.filter((s) => s.open).sort((a, b) => a.busy - b.busy)[0];
    if (!shared) throw this.#agentError("the connection is closed");
    return take(shared);
  }

  #idle(): PooledSession | undefined {
    return this.#sessions.find((s) => s.open && s.busy === 0);
  }

  /** The next session to fall idle, already taken for the caller; undefined after `ms`. */
  #nextIdle(ms: number): Promise<PooledSession | undefined> {
    return new Promise((resolve) => {
      const waiter = (pooled: PooledSession | undefined) => {
        clearTimeout(timer);
        resolve(pooled);
      };
      const timer = setTimeout(() => {
        this.#idleWaiters.delete(waiter);
        resolve(undefined);
      }, ms);
      this.#idleWaiters.add(waiter);
    });
  }

  #release(pooled: PooledSession): void {
    pooled.busy--;
    if (pooled.busy > 0 || !pooled.open) return;
    const [waiter] = this.#idleWaiters;
    if (waiter) {
      this.#idleWaiters.delete(waiter);
      waiter(take(pooled));
      return;
    }
    if (pooled === this.#primary) return;
    pooled.idleTimer = setTimeout(() => void endSession(pooled), extraSessionIdleMs);
    pooled.idleTimer.unref();
  }

  #adopt(session: AgentSession): PooledSession {
    let pooled!: PooledSession;
    const ended = new Promise<void>((done) =>
      session.client.once("close", () => {
        pooled.open = false;
        clearTimeout(pooled.idleTimer);
        const at = this.#sessions.indexOf(pooled);
        if (at >= 0) this.#sessions.splice(at, 1);
        // Without its first session the connection is gone: end the helpers too.
        if (pooled === this.#primary) for (const other of this.#sessions) void endSession(other);
        void session.lock.release().then(done);
      }),
    );
    pooled = { session, ended, open: true, busy: 0, slots: new Set() };
    // Failures after the handshake surface as closed channels; keep them from crashing the process.
    session.client.on("error", () => {});
    this.#sessions.push(pooled);
    return pooled;
  }

  async #kill(pidfile: string, signo: number): Promise<void> {
    // Exit 1 means the command is already gone, which is what the caller wanted.
    const pooled = await this.#acquire();
    try {
      const client = pooled.session.client;
      const command = encodeExecRequest({ argv: [skiffKill, pidfile, String(signo)] });
      const running = await this.#channel(
        (cb) => client.exec(command, cb),
        (channel) => watchChannel(channel, {}, { what: "skiff-kill", vmName: this.vmName }),
      );
      await running.done;
    } finally {
      this.#release(pooled);
    }
  }

  /**
   * Open a channel and wire it up inside ssh2's callback: a quick command's
   * output, exit status and close can arrive in the same chunk as the
   * channel's confirmation, and events emitted before listeners exist are lost.
   */
  #channel<T>(open: (cb: (err: Error | undefined, channel: ClientChannel) => void) => void, wire: (channel: ClientChannel) => T): Promise<T> {
    return new Promise((resolve, reject) => {
      try {
        open((err, channel) => (err ? reject(this.#agentError("cannot start a command", err)) : resolve(wire(channel))));
      } catch (err) {
        reject(this.#agentError("cannot start a command", err));
      }
    });
  }

  #agentError(what: string, cause?: unknown): SkiffError {
    const why = cause instanceof Error ? `: ${cause.message}` : "";
    return new SkiffError("ERR_SKIFF_AGENT", `guest agent of ${this.vmName}: ${what}${why}`, {
      hint: `check that the VM still runs (\`skiff ls\`) and read \`skiff logs ${this.vmName}\``,
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

function take(pooled: PooledSession): PooledSession {
  pooled.busy++;
  clearTimeout(pooled.idleTimer);
  return pooled;
}

/** Disconnect a session; a guest past answering gets 2 s before the socket is cut. */
async function endSession(pooled: PooledSession): Promise<void> {
  if (pooled.open) {
    pooled.session.client.end();
    const timer = setTimeout(() => pooled.session.socket.destroy(), 2_000);
    await pooled.ended;
    clearTimeout(timer);
  }
  await pooled.ended;
}

function ptyOptions(tty: ExecRequest["tty"]): PseudoTtyOptions | undefined {
  if (!tty) return undefined;
  const size = tty === true ? { cols: 80, rows: 24 } : tty;
  return { cols: size.cols, rows: size.rows, term: (tty === true ? undefined : tty.term) ?? "xterm-256color" };
}

function describe(argv: string[]): string {
  const text = argv.join(" ");
  return text.length <= 60 ? text : `${text.slice(0, 57)}...`;
}

/** Collects a command's output as text. */
class Collector extends Writable {
  readonly #chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.#chunks.push(chunk);
    callback();
  }
  text(): string {
    return Buffer.concat(this.#chunks).toString("utf8");
  }
}
