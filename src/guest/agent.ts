/**
 * The host's end of the guest agent: SSH over a virtio-serial port.
 *
 * A VM has a few agent ports (QEMU chardev sockets), each serving one client
 * at a time. A connection takes a free port under a lock named after it, so
 * skiff processes never queue behind each other on a port; the lock is held
 * for the connection's life and, being a socket lock, vanishes if we die.
 * Over the port runs the greeting of agent-handshake.ts, then SSH (ssh2 on
 * the host, dropbear in the guest), authenticated both ways with the VM's
 * own keys. One connection carries any number of concurrent commands, each
 * on its own SSH channel.
 */
import { readFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { Readable, Writable } from "node:stream";
import ssh2, { type ClientChannel, type PseudoTtyOptions, type SFTPWrapper } from "ssh2";

// ssh2 is CommonJS: Node's ESM loader gives only its default export.
const { Client, utils } = ssh2;
type Client = InstanceType<typeof Client>;
import { errnoOf, SkiffError } from "../errors.js";
import { tryLock, type LockHandle } from "../store/lock.js";
import { agentHandshake } from "./agent-handshake.js";
import { copyFrom, copyTo } from "./agent-copy.js";
import { watchChannel, type ExecIO, type ExecOptions, type ExecResult, type RunningExec } from "./agent-exec.js";
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
/** Once a guest answered, the SSH handshake gets at least this long, whatever is left of the deadline. */
const minSshMs = 5_000;
const skiffKill = "/dev/.skiff/bin/skiff-kill";

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
  const vmName = opts.vmName ?? opts.lockPrefix;
  const deadline = Date.now() + mode.timeoutMs;
  const privateKey = await readKey(opts.privateKeyPath);
  const hostKey = parseHostKey(opts.hostPublicKey, vmName);
  let sawFreePort = false;
  for (let round = 0; ; round++) {
    let freePorts = 0;
    for (const [port, path] of opts.socketPaths.entries()) {
      checkAborted(opts.signal, vmName);
      const left = deadline - Date.now();
      if (left <= 0) break;
      const lock = await tryLock(`${opts.lockPrefix}-agent-${port}`, { home: opts.home, purpose: `agent connection to ${vmName}` });
      if (!lock) continue;
      freePorts++;
      sawFreePort = true;
      const greeting = await agentHandshake(path, { budgetMs: Math.min(opts.portBudgetMs ?? defaultPortBudgetMs, left) });
      if (greeting.kind !== "ready") {
        await lock.release();
        if (greeting.kind === "absent" && !mode.waitForSockets) throw notRunning(vmName, path, greeting.errno);
        continue;
      }
      const client = await sshConnect(greeting.socket, {
        privateKey,
        hostKey,
        vmName,
        timeoutMs: Math.max(minSshMs, deadline - Date.now()),
      }).catch(async (err: unknown) => {
        await lock.release();
        // A key mismatch will not heal by retrying; a stalled handshake might.
        if (err instanceof SkiffError) throw err;
        return undefined;
      });
      if (client) return new AgentConnection({ client, socket: greeting.socket, lock, vmName, port });
    }
    if (Date.now() >= deadline) break;
    // Every port taken by other skiff processes (or none answered yet): breathe before the next round.
    if (freePorts === 0 || mode.waitForSockets) await sleep(Math.min(freePorts === 0 ? 25 : 100, deadline - Date.now()));
  }
  if (!sawFreePort) {
    throw new SkiffError("ERR_SKIFF_VM_BUSY", `all ${opts.socketPaths.length} agent ports of ${vmName} are in use`, {
      hint: "other skiff commands hold them; retry when they finish",
      details: { vm: vmName },
    });
  }
  throw new SkiffError("ERR_SKIFF_AGENT", `the guest agent did not answer on ${vmName} within ${mode.timeoutMs} ms`, {
    hint: `check \`skiff logs ${vmName}\` for what the guest is doing`,
    details: { vm: vmName },
  });
}

/** A live SSH session with one VM's guest agent. */
export class AgentConnection {
  readonly vmName: string;
  /** Index of the agent port this connection holds. */
  readonly port: number;
  readonly #client: Client;
  readonly #socket: Socket;
  readonly #lock: LockHandle;
  readonly #ended: Promise<void>;
  /** Pidfile slots of running commands; names are reused so the guest's /dev/.skiff-run stays small. */
  readonly #slots = new Set<number>();
  #open = true;

  constructor(parts: { client: Client; socket: Socket; lock: LockHandle; vmName: string; port: number }) {
    this.#client = parts.client;
    this.#socket = parts.socket;
    this.#lock = parts.lock;
    this.vmName = parts.vmName;
    this.port = parts.port;
    this.#ended = new Promise((done) =>
      this.#client.once("close", () => {
        this.#open = false;
        void this.#lock.release().then(done);
      }),
    );
    // Failures after the handshake surface as closed channels; keep them from crashing the process.
    this.#client.on("error", () => {});
  }

  /** False once the connection has closed (by close(), or because the VM went away). */
  get isOpen(): boolean {
    return this.#open;
  }

  /** Start `req`; resolves once the command runs, with a handle to signal and await it. */
  async start(req: ExecRequest, io: ExecOptions = {}): Promise<RunningExec> {
    let slot = 0;
    while (this.#slots.has(slot)) slot++;
    this.#slots.add(slot);
    const pidfile = `agent${this.port}-${slot}`;
    try {
      const command = encodeExecRequest({ ...req, pidfile });
      const pty = ptyOptions(req.tty);
      const channel = await this.#channel((cb) => (pty ? this.#client.exec(command, { pty }, cb) : this.#client.exec(command, cb)));
      const running = watchChannel(channel, io, {
        what: `\`${describe(req.argv)}\` in VM ${this.vmName}`,
        vmName: this.vmName,
        ...(io.timeoutMs === undefined ? {} : { timeoutMs: io.timeoutMs }),
        killViaPidfile: (signo) => this.#kill(pidfile, signo),
      });
      const free = () => void this.#slots.delete(slot);
      running.done.then(free, free);
      return running;
    } catch (err) {
      this.#slots.delete(slot);
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
    const channel = await this.#channel((cb) => this.#client.shell(pty ?? false, cb));
    return watchChannel(channel, io, { what: `the login shell in VM ${this.vmName}`, vmName: this.vmName });
  }

  /** Copy a host file or directory into the VM (docker cp semantics). */
  copyTo(hostPath: string, guestPath: string): Promise<void> {
    return copyTo(this, hostPath, guestPath);
  }

  /** Copy a file or directory out of the VM (docker cp semantics). */
  copyFrom(guestPath: string, hostPath: string): Promise<void> {
    return copyFrom(this, guestPath, hostPath);
  }

  /** An SFTP session with the guest (paths inside the image). */
  sftp(): Promise<SFTPWrapper> {
    return new Promise((resolve, reject) => {
      try {
        this.#client.sftp((err, sftp) => (err ? reject(this.#agentError("cannot start SFTP", err)) : resolve(sftp)));
      } catch (err) {
        reject(this.#agentError("cannot start SFTP", err));
      }
    });
  }

  /** End the session and free the port; commands still running in the guest are hung up. */
  async close(): Promise<void> {
    if (this.#open) {
      this.#client.end();
      // dropbear answers the disconnect at once; don't let a wedged guest hold us.
      const timer = setTimeout(() => this.#socket.destroy(), 2_000);
      await this.#ended;
      clearTimeout(timer);
    }
    await this.#ended;
  }

  async #kill(pidfile: string, signo: number): Promise<void> {
    // Exit 1 means the command is already gone, which is what the caller wanted.
    const channel = await this.#channel((cb) => this.#client.exec(encodeExecRequest({ argv: [skiffKill, pidfile, String(signo)] }), cb));
    await watchChannel(channel, {}, { what: "skiff-kill", vmName: this.vmName }).done;
  }

  #channel(open: (cb: (err: Error | undefined, channel: ClientChannel) => void) => void): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      if (!this.#open) return reject(this.#agentError("the connection is closed"));
      try {
        open((err, channel) => (err ? reject(this.#agentError("cannot open a session", err)) : resolve(channel)));
      } catch (err) {
        reject(this.#agentError("cannot open a session", err));
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

function sshConnect(
  socket: Socket,
  opts: { privateKey: Buffer; hostKey: Buffer; vmName: string; timeoutMs: number },
): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let wrongHostKey = false;
    const onError = (err: Error & { level?: string }) => {
      client.off("ready", onReady);
      socket.destroy();
      if (wrongHostKey) {
        return reject(
          new SkiffError("ERR_SKIFF_AGENT", `the guest agent of ${opts.vmName} presented a host key that is not the VM's`, {
            hint: "the VM's files do not match the running guest; restart the VM",
          }),
        );
      }
      if (err.level === "client-authentication") {
        return reject(
          new SkiffError("ERR_SKIFF_AGENT", `the guest agent of ${opts.vmName} refused the VM's key`, {
            hint: "the VM's files do not match the running guest; restart the VM",
            cause: err,
          }),
        );
      }
      reject(err);
    };
    const onReady = () => {
      client.off("error", onError);
      resolve(client);
    };
    client.once("ready", onReady);
    client.once("error", onError);
    client.connect({
      sock: socket,
      username: "root",
      privateKey: opts.privateKey,
      readyTimeout: opts.timeoutMs,
      ...(process.env.SKIFF_AGENT_DEBUG ? { debug: (m: string) => console.error(Date.now() % 100000, m) } : {}),
      hostVerifier: (key: Buffer) => {
        wrongHostKey = !key.equals(opts.hostKey);
        return !wrongHostKey;
      },
    });
  });
}

async function readKey(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_STATE_CORRUPT", `cannot read the VM's agent key: ${path} (${errnoOf(err) ?? String(err)})`, {
      hint: "the VM's directory is incomplete; recreate the VM",
      cause: err,
    });
  }
}

/** The wire form of an OpenSSH public key line, as ssh2 hands it to hostVerifier. */
function parseHostKey(line: string, vmName: string): Buffer {
  const key = utils.parseKey(line.trim());
  if (key instanceof Error || Array.isArray(key)) {
    throw new SkiffError("ERR_SKIFF_STATE_CORRUPT", `the host key recorded for ${vmName} is not an OpenSSH public key`, {
      hint: "the VM's directory is damaged; recreate the VM",
      ...(key instanceof Error ? { cause: key } : {}),
    });
  }
  return key.getPublicSSH();
}

function ptyOptions(tty: ExecRequest["tty"]): PseudoTtyOptions | undefined {
  if (!tty) return undefined;
  const size = tty === true ? { cols: 80, rows: 24 } : tty;
  return { cols: size.cols, rows: size.rows, term: (tty === true ? undefined : tty.term) ?? "xterm-256color" };
}

function notRunning(vmName: string, path: string, errno: string): SkiffError {
  return new SkiffError("ERR_SKIFF_VM_NOT_RUNNING", `VM ${vmName} is not running (nothing listens on ${path}: ${errno})`, {
    hint: `start it: \`skiff start ${vmName}\``,
    details: { vm: vmName },
  });
}

function checkAborted(signal: AbortSignal | undefined, vmName: string): void {
  if (!signal?.aborted) return;
  const reason: unknown = signal.reason;
  if (reason instanceof SkiffError) throw reason;
  throw new SkiffError("ERR_SKIFF_AGENT", `stopped waiting for the guest agent of ${vmName}`, { cause: reason });
}

function describe(argv: string[]): string {
  const text = argv.join(" ");
  return text.length <= 60 ? text : `${text.slice(0, 57)}...`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, Math.max(0, ms)));
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
