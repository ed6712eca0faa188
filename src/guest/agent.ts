/**
 * The host's end of the guest agent: commands, shells, copies and SFTP over
 * SSH sessions with the guest (agent-session.ts), which a pool hands out so
 * that no two commands start on one session at once (agent-pool.ts says why).
 */
import { Readable, Writable } from "node:stream";
import type { ClientChannel, PseudoTtyOptions, SFTPWrapper } from "ssh2";
import { SkiffError } from "../errors.js";
import type { CopyOptions, CopyReport } from "./agent-copy.js";
import { readFile, statFile, writeFile, type GuestStat } from "./agent-files.js";
import { watchChannel, type ExecIO, type ExecOptions, type ExecResult, type RunningExec } from "./agent-exec.js";
import { SessionPool, type PooledSession } from "./agent-pool.js";
import { openSession, resolveTarget, type SessionKind, type SshSession, type TcpTarget } from "./agent-session.js";
import { execPayload } from "./native/frames.js";
import type { NativeSession } from "./native/session.js";
import { shellCommand } from "./shell-command.js";
import { encodeExecRequest, execRecords, type ExecRequest, type PtyOptions } from "./exec-request.js";

export type { ExecIO, ExecOptions, ExecResult, RunningExec, WindowSize } from "./agent-exec.js";
export type { ExecRequest, PtyOptions } from "./exec-request.js";
export type { CopyOptions, CopyReport } from "./agent-copy.js";

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
  /**
   * How long to wait while other sessions hold every port, not counted in
   * `timeoutMs` (default 5 minutes): commands beyond the VM's ports queue.
   */
  busyTimeoutMs?: number;
  /** The VM's name, for messages (default lockPrefix). */
  vmName?: string;
  /** Stop waiting early, e.g. when QEMU exits during boot. */
  signal?: AbortSignal;
  /** Cloud images: SSH over TCP to the image's sshd instead of the agent ports (socketPaths unused). */
  tcp?: TcpTarget;
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
const skiffKill = "/dev/.skiff/bin/skiff-kill";

/** `skiff cp` and its tar handling, loaded by a copy: an exec (every `run`) needs none of it. */
const copying = () => import("./agent-copy.js");

/** Connect to a running VM's agent on the first free port. */
export function connectAgent(opts: AgentConnectOptions): Promise<AgentConnection> {
  return connect(opts, { timeoutMs: opts.timeoutMs ?? defaultTimeoutMs, waitForSockets: false });
}

/**
 * Connect to a VM that is still booting: its sockets may not exist yet and
 * its guest answers a few seconds after QEMU starts.
 */
export function waitForAgent(opts: AgentConnectOptions): Promise<AgentConnection> {
  return connect(opts, { timeoutMs: opts.timeoutMs ?? defaultWaitMs, waitForSockets: true });
}

async function connect(opts: AgentConnectOptions, mode: { timeoutMs: number; waitForSockets: boolean }): Promise<AgentConnection> {
  const target = await resolveTarget({
    ...opts,
    vmName: opts.vmName ?? opts.lockPrefix,
    portBudgetMs: opts.portBudgetMs ?? defaultPortBudgetMs,
  });
  const kind = target.tcp === undefined ? agentProtocol() : "ssh";
  const session = await openSession(target, { ...mode, kind, ...(opts.signal ? { signal: opts.signal } : {}) });
  return new AgentConnection(new SessionPool(target, session));
}

/**
 * What skiff's own commands speak to a skiff guest: its native protocol
 * (native/session.ts), unless SKIFF_AGENT_PROTOCOL=ssh says SSH (as
 * before it existed; for comparing the two). SSH is opened on demand for
 * what needs it (SFTP) either way.
 */
export function agentProtocol(env: NodeJS.ProcessEnv = process.env): SessionKind {
  const value = env.SKIFF_AGENT_PROTOCOL;
  if (value === undefined || value === "" || value === "native") return "native";
  if (value === "ssh") return "ssh";
  throw new SkiffError("ERR_SKIFF_USAGE", `SKIFF_AGENT_PROTOCOL=${value} is neither native nor ssh`, {
    place: "SKIFF_AGENT_PROTOCOL",
    hint: "unset it (skiff's own protocol), or set it to ssh",
  });
}

/** A live link to one VM's guest agent. */
export class AgentConnection {
  readonly vmName: string;
  readonly #pool: SessionPool;

  /** SSH sessions beside native ones, opened on the first call that needs SSH (SFTP). */
  #sshPool: Promise<SessionPool> | undefined;

  constructor(pool: SessionPool) {
    this.#pool = pool;
    this.vmName = pool.vmName;
  }

  /** What the connection's commands speak: "native" (skiff's protocol) or "ssh" (cloud images, old guests, SKIFF_AGENT_PROTOCOL=ssh). */
  get protocol(): SessionKind {
    return this.#pool.kind;
  }

  /** The skiff home the connection's locks (and cp's staging journal) live in. */
  get home(): string {
    return this.#pool.home;
  }

  /** Index of the agent port of the first session. */
  get port(): number {
    return this.#pool.primaryPort;
  }

  /** Cloud images: the user their own sshd runs commands as; undefined when skiff's agent runs them. */
  get sshUser(): string | undefined {
    return this.#pool.plainShell ? this.#pool.sshUser : undefined;
  }

  /** False once close() was called or the guest went away. */
  get isOpen(): boolean {
    return this.#pool.isOpen;
  }

  /** Start `req`; resolves once the command runs, with a handle to signal and await it. */
  async start(req: ExecRequest, io: ExecOptions = {}): Promise<RunningExec> {
    if (this.#pool.plainShell) return this.#startPlain(req, io);
    if (this.#pool.kind === "native") return this.#startNative(execRecords(req), req.tty, `\`${describe(req.argv)}\` in VM ${this.vmName}`, io);
    encodeExecRequest(req); // refuse a bad request before taking a session for it
    const pooled = await this.#pool.acquire();
    let slot = 0;
    while (pooled.slots.has(slot)) slot++;
    pooled.slots.add(slot);
    const finished = () => {
      pooled.slots.delete(slot);
      this.#pool.release(pooled);
    };
    try {
      const pidfile = `agent${pooled.session.port}-${slot}`;
      const command = encodeExecRequest({ ...req, pidfile });
      return await this.#execOn(pooled, command, req, io, finished, (signo) => this.#kill(pidfile, signo));
    } catch (err) {
      finished();
      throw err;
    }
  }

  /** Run request records on a native session of the pool; the session goes back to the pool once the command ended. */
  async #startNative(records: string[], tty: ExecRequest["tty"], what: string, io: ExecOptions): Promise<RunningExec> {
    const pty = ptyOptions(tty);
    const payload = execPayload(records, pty === undefined ? undefined : { term: pty.term ?? "xterm-256color", rows: pty.rows ?? 24, cols: pty.cols ?? 80 });
    const pooled = await this.#pool.acquire();
    const finished = () => this.#pool.release(pooled);
    try {
      if (pooled.session.kind !== "native") throw new SkiffError("ERR_SKIFF_INTERNAL", "a native command on an SSH session");
      const running = await pooled.session.native.exec(
        { payload, what, ...(io.timeoutMs === undefined ? {} : { timeoutMs: io.timeoutMs }) },
        { ...io, tty: pty !== undefined },
      );
      running.done.then(finished, finished);
      return running;
    } catch (err) {
      finished();
      throw err;
    }
  }

  /** Open a channel running `command` on a pooled session and watch it; `finished` runs once it ends. */
  async #execOn(
    pooled: PooledSession,
    command: string,
    req: ExecRequest,
    io: ExecOptions,
    finished: () => void,
    killViaPidfile?: (signo: number) => Promise<void>,
  ): Promise<RunningExec> {
    const pty = ptyOptions(req.tty);
    const client = sshOf(pooled.session).client;
    const running = await this.#channel(
      (cb) => (pty ? client.exec(command, { pty }, cb) : client.exec(command, cb)),
      (channel) =>
        watchChannel(channel, io, {
          what: `\`${describe(req.argv)}\` in VM ${this.vmName}`,
          vmName: this.vmName,
          ...(io.timeoutMs === undefined ? {} : { timeoutMs: io.timeoutMs }),
          ...(killViaPidfile === undefined ? {} : { killViaPidfile }),
          sessionAlive: () => !pooled.session.socket.destroyed,
        }),
    );
    running.done.then(finished, finished);
    return running;
  }

  /** Cloud images: a plain command line for the image's sshd; signals go as SSH signal requests. */
  async #startPlain(req: ExecRequest, io: ExecOptions): Promise<RunningExec> {
    const command = shellCommand(req, this.#pool.sshUser);
    const pooled = await this.#pool.acquire();
    const finished = () => this.#pool.release(pooled);
    try {
      return await this.#execOn(pooled, command, req, io, finished);
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
    // No request records: the guest starts the user's login shell.
    if (this.#pool.kind === "native") return this.#startNative([], opts.tty ?? true, `the login shell in VM ${this.vmName}`, io);
    const pty = ptyOptions(opts.tty ?? true);
    const pooled = await this.#pool.acquire();
    try {
      const client = sshOf(pooled.session).client;
      const running = await this.#channel(
        (cb) => client.shell(pty ?? false, cb),
        (channel) =>
          watchChannel(channel, io, {
            what: `the login shell in VM ${this.vmName}`,
            vmName: this.vmName,
            sessionAlive: () => !pooled.session.socket.destroyed,
          }),
      );
      const finished = () => this.#pool.release(pooled);
      running.done.then(finished, finished);
      return running;
    } catch (err) {
      this.#pool.release(pooled);
      throw err;
    }
  }

  /** Copy a host file or directory into the VM (docker cp semantics). */
  async copyTo(hostPath: string, guestPath: string, opts: CopyOptions = {}): Promise<void> {
    return (await copying()).copyTo(this, hostPath, guestPath, opts);
  }

  /**
   * Copy a file or directory out of the VM (docker cp semantics). What the
   * guest sends is unpacked as untrusted data (agent-copy.ts); the report
   * counts what was not copied as it was (device nodes, fifos, setuid bits).
   */
  async copyFrom(guestPath: string, hostPath: string, opts: CopyOptions = {}): Promise<CopyReport> {
    return (await copying()).copyFrom(this, guestPath, hostPath, opts);
  }

  /** `docker cp NAME:/path -`: a tar of the guest's path (named by its base name) written to `out`, which stays open. */
  async copyOutTar(guestPath: string, out: Writable): Promise<void> {
    return (await copying()).copyOutTar(this, guestPath, out);
  }

  /** What a path in the guest is (agent-files.ts); undefined when nothing is there. `follow: false` tells a symlink itself. */
  stat(path: string, opts: { follow?: boolean } = {}): Promise<GuestStat | undefined> {
    return statFile(this, path, opts);
  }

  /** A regular file of the guest's, copied into `out` (which is left open). */
  readFile(path: string, out: Writable): Promise<void> {
    return readFile(this, path, out);
  }

  /** `input` written to a file of the guest (made or truncated, its parent must exist), with `mode` (default 0644). */
  writeFile(path: string, input: Readable, mode?: number): Promise<void> {
    return writeFile(this, path, input, mode);
  }

  /** `docker cp - NAME:/dir`: unpack a tar read from `input` into the guest's existing directory. */
  async copyInTar(input: Readable, guestDir: string, opts: CopyOptions = {}): Promise<void> {
    return (await copying()).copyInTar(this, input, guestDir, opts);
  }

  /**
   * Run `fn` on one of the connection's native sessions (agent-files.ts:
   * STAT, GET, PUT), which goes back to the pool when `fn` settles;
   * undefined, without calling it, on a connection that speaks SSH.
   */
  async withNativeSession<T>(fn: (session: NativeSession) => Promise<T>): Promise<T | undefined> {
    if (this.#pool.kind !== "native" || this.#pool.plainShell) return undefined;
    const pooled = await this.#pool.acquire();
    try {
      if (pooled.session.kind !== "native") throw new SkiffError("ERR_SKIFF_INTERNAL", "a native file operation on an SSH session");
      return await fn(pooled.session.native);
    } finally {
      this.#pool.release(pooled);
    }
  }

  /** An SFTP session with the guest (paths inside the image); end() it when done. */
  async sftp(): Promise<SFTPWrapper> {
    const pool = await this.#ssh();
    const pooled = await pool.acquire();
    try {
      const sftp = await new Promise<SFTPWrapper>((resolve, reject) => {
        try {
          sshOf(pooled.session).client.sftp((err, wrapper) => (err ? reject(this.#agentError("cannot start SFTP", err)) : resolve(wrapper)));
        } catch (err) {
          reject(this.#agentError("cannot start SFTP", err));
        }
      });
      sftp.once("close", () => pool.release(pooled));
      return sftp;
    } catch (err) {
      pool.release(pooled);
      throw err;
    }
  }

  /** The pool of SSH sessions: the connection's own, or one opened beside its native sessions. */
  #ssh(): Promise<SessionPool> {
    if (this.#pool.kind === "ssh") return Promise.resolve(this.#pool);
    if (!this.#pool.isOpen) return Promise.reject(new SkiffError("ERR_SKIFF_AGENT", `the connection to the guest agent of ${this.vmName} is closed`));
    // This connection's idle native sessions may hold every port: let them go first.
    this.#sshPool ??= this.#pool
      .endIdleExtras()
      .then(() => openSession(this.#pool.target, { timeoutMs: defaultTimeoutMs, waitForSockets: false, kind: "ssh" }))
      .then((session) => new SessionPool(this.#pool.target, session));
    // A failed open is not kept: the next call tries again.
    this.#sshPool.catch(() => (this.#sshPool = undefined));
    return this.#sshPool;
  }

  /** End every session and free the ports; commands still running in the guest are hung up. */
  async close(): Promise<void> {
    const ssh = this.#sshPool;
    this.#sshPool = undefined;
    await Promise.all([this.#pool.close(), ssh?.then((pool) => pool.close(), () => {})]);
  }

  async #kill(pidfile: string, signo: number): Promise<void> {
    // Exit 1 means the command is already gone, which is what the caller wanted.
    const pooled = await this.#pool.acquire({ share: true });
    try {
      const client = sshOf(pooled.session).client;
      const command = encodeExecRequest({ argv: [skiffKill, pidfile, String(signo)] });
      const running = await this.#channel(
        (cb) => client.exec(command, cb),
        (channel) => watchChannel(channel, {}, { what: "skiff-kill", vmName: this.vmName }),
      );
      await running.done;
    } finally {
      this.#pool.release(pooled);
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
      hint: `check that the VM still runs (\`skiff ps -a\`) and read \`skiff logs ${this.vmName}\``,
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

function sshOf(session: PooledSession["session"]): SshSession {
  if (session.kind !== "ssh") throw new SkiffError("ERR_SKIFF_INTERNAL", "an SSH call on a native session");
  return session;
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
