/**
 * One SSH session with a guest: a locked agent port, the greeting, and an
 * authenticated ssh2 client.
 *
 * A VM has a few agent ports (QEMU chardev sockets), each serving one client
 * at a time. A session takes a free port under a lock named after it, so
 * skiff processes never queue behind each other on a port; the lock is held
 * for the session's life and, being a socket lock, vanishes if we die.
 */
import { readFile } from "node:fs/promises";
import { createConnection, type Socket } from "node:net";
import type { Client } from "ssh2";
import { errnoOf, SkiffError } from "../errors.js";
import { tryLock, type LockHandle } from "../store/lock.js";
import { agentHandshake } from "./agent-handshake.js";
import { NativeSession } from "./native/session.js";

/** Everything needed to open sessions with one VM, resolved once. */
export interface SessionTarget {
  vmName: string;
  socketPaths: readonly string[];
  lockPrefix: string;
  home: string;
  privateKey: Buffer;
  /** The guest's host key, an OpenSSH public key line (parsed when SSH is first used). */
  hostPublicKey: string;
  portBudgetMs: number;
  /**
   * How long a session waits while other sessions (of this process or
   * others) hold every port. That time does not count against the deadline
   * for an answer: commands queue for a port, as many as come.
   */
  busyTimeoutMs: number;
  /**
   * Cloud images: plain SSH over TCP (QEMU's user-net forward) to the image's
   * own sshd as its default user, instead of skiff's agent on virtio-serial.
   */
  tcp?: TcpTarget;
}

export interface TcpTarget {
  host: string;
  port: number;
  username: string;
  /** Sessions one connection may hold at once. */
  maxSessions: number;
}

interface SessionBase {
  readonly socket: Socket;
  readonly lock: LockHandle;
  /** Index of the agent port this session holds. */
  readonly port: number;
}

/** An SSH session: what cloud images, `skiff ssh`, SFTP and guests from before the native protocol speak. */
export interface SshSession extends SessionBase {
  readonly kind: "ssh";
  readonly client: Client;
}

/** A session of skiff's own protocol (native/session.ts). */
export interface NativeAgentSession extends SessionBase {
  readonly kind: "native";
  readonly native: NativeSession;
}

export type AgentSession = SshSession | NativeAgentSession;
export type SessionKind = AgentSession["kind"];

/** Call `cb` once the session's link is gone. */
export function onSessionClosed(session: AgentSession, cb: () => void): void {
  if (session.kind === "ssh") session.client.once("close", cb);
  else if (session.socket.destroyed) queueMicrotask(cb);
  else session.socket.once("close", cb);
}

/** Ask the guest to end the session (what runs on it is hung up). */
export function endAgentSession(session: AgentSession): void {
  if (session.kind === "ssh") session.client.end();
  else session.native.end();
}

export interface OpenSessionOptions {
  timeoutMs: number;
  /** Keep trying while the sockets do not exist yet (right after QEMU starts). */
  waitForSockets: boolean;
  /** Try each port once instead of until the deadline (for extra sessions: a busy VM is no reason to wait). */
  singlePass?: boolean;
  signal?: AbortSignal;
  /**
   * "native" asks for skiff's own protocol; a guest from before it answers
   * with SSH on the same port, and that SSH session is what comes back.
   * Default "ssh".
   */
  kind?: SessionKind;
}

/** How long a session waits for a port while all are held (other commands' sessions), unless told otherwise. */
const defaultBusyTimeoutMs = 300_000;

/**
 * Waiting for a port held by others: the first pause, and the longest. Many
 * waiters poll the same few locks, so the pause grows (with jitter) to keep
 * their cost down, and stays short enough that a port let go is taken soon.
 */
const busyPauseMs = { min: 25, max: 250 };

/**
 * Once a guest answered, the SSH handshake gets at least this long, whatever
 * is left of the deadline: the guest is alive, only slow (many handshakes at
 * once on an emulated CPU of a loaded host), and giving up would only make
 * it start over.
 */
const minSshMs = 30_000;
/** Over TCP a connection is no sign of life (slirp accepts for a guest whose sshd is not up yet): the old 5 s. */
const minTcpSshMs = 5_000;
/**
 * A guest that stops answering (frozen VM, dead dropbear) would otherwise
 * leave every command on the session waiting forever: the port's socket
 * stays up as long as QEMU runs.
 */
const keepaliveIntervalMs = 10_000;
const keepaliveCountMax = 3;

export async function resolveTarget(opts: {
  vmName: string;
  socketPaths: readonly string[];
  lockPrefix: string;
  home: string;
  privateKeyPath: string;
  hostPublicKey: string;
  portBudgetMs: number;
  busyTimeoutMs?: number;
  tcp?: TcpTarget;
}): Promise<SessionTarget> {
  return {
    ...(opts.tcp === undefined ? {} : { tcp: opts.tcp }),
    vmName: opts.vmName,
    socketPaths: opts.socketPaths,
    lockPrefix: opts.lockPrefix,
    home: opts.home,
    privateKey: await readKey(opts.privateKeyPath),
    hostPublicKey: opts.hostPublicKey,
    portBudgetMs: opts.portBudgetMs,
    busyTimeoutMs: opts.busyTimeoutMs ?? defaultBusyTimeoutMs,
  };
}

/**
 * Open a session on the first free port that answers. While every port is
 * held by other sessions (of this process or others), wait for one to be
 * let go, polling its lock with a growing pause; that wait moves the
 * deadline for an answer on.
 */
export async function openSession(target: SessionTarget, opts: OpenSessionOptions): Promise<AgentSession> {
  if (target.tcp !== undefined) return openTcpSession(target, target.tcp, opts);
  const { vmName } = target;
  let deadline = Date.now() + opts.timeoutMs;
  const busyDeadline = Date.now() + target.busyTimeoutMs;
  let busyPause = busyPauseMs.min;
  let sawFreePort = false;
  for (;;) {
    let freePorts = 0;
    for (const [port, path] of target.socketPaths.entries()) {
      checkAborted(opts.signal, vmName);
      const left = deadline - Date.now();
      if (left <= 0) break;
      const lock = await tryLock(`${target.lockPrefix}-agent-${port}`, { home: target.home, purpose: `agent session with ${vmName}` });
      if (!lock) continue;
      freePorts++;
      sawFreePort = true;
      const native = opts.kind === "native";
      const greeting = await agentHandshake(path, { budgetMs: Math.min(target.portBudgetMs, left), native, ...(opts.signal ? { signal: opts.signal } : {}) });
      if (greeting.kind !== "ready") {
        await lock.release();
        checkAborted(opts.signal, vmName);
        if (greeting.kind === "absent" && !opts.waitForSockets) throw notRunning(vmName, path, greeting.errno);
        continue;
      }
      if (native) {
        const session = await NativeSession.open(greeting.socket, vmName).catch(async (err: unknown) => {
          await lock.release();
          throw err;
        });
        if (session !== "ssh") return { kind: "native", native: session, socket: greeting.socket, lock, port };
        // A guest from before the native protocol: the port already speaks SSH.
      }
      const client = await sshConnect(greeting.socket, target, Math.max(minSshMs, deadline - Date.now())).catch(
        async (err: unknown) => {
          await lock.release();
          // A key mismatch will not heal by retrying; a stalled handshake might.
          if (err instanceof SkiffError) throw err;
          return undefined;
        },
      );
      if (client) return { kind: "ssh", client, socket: greeting.socket, lock, port };
    }
    const left = deadline - Date.now();
    if (left <= 0 || opts.singlePass) break;
    if (freePorts === 0) {
      // Every port held by other sessions: queue, however long they take, up to the busy deadline.
      if (Date.now() >= busyDeadline) break;
      const pause = Math.min(busyPause * (0.75 + Math.random() / 2), busyDeadline - Date.now());
      await sleep(pause);
      deadline += pause;
      busyPause = Math.min(busyPause * 1.5, busyPauseMs.max);
      continue;
    }
    busyPause = busyPauseMs.min;
    // No guest answer yet: breathe before the next round.
    if (opts.waitForSockets) await sleep(Math.min(100, left));
  }
  if (!sawFreePort || Date.now() >= busyDeadline) {
    const waited = target.busyTimeoutMs / 1000;
    throw new SkiffError("ERR_SKIFF_VM_BUSY", `all ${target.socketPaths.length} agent ports of ${vmName} stayed in use${opts.singlePass ? "" : ` for ${waited} s`}`, {
      hint: "other commands' sessions (exec, cp, ssh, a foreground run) hold them; end some, or retry when they finish",
      details: { vm: vmName },
    });
  }
  throw new SkiffError("ERR_SKIFF_AGENT", `the guest agent did not answer on ${vmName} within ${opts.timeoutMs} ms`, {
    hint: `check \`skiff logs ${vmName}\` for what the guest is doing`,
    details: { vm: vmName },
  });
}

let tcpSessions = 0;
const noLock: LockHandle = { name: "tcp", release: () => Promise.resolve() };

/**
 * SSH over TCP to a cloud image's sshd. While the guest boots, slirp accepts
 * the connection and drops it, sshd may not run yet, or cloud-init may not
 * have installed the VM's keys: every failure is retried until the deadline
 * when waiting for a boot; once booted, one try.
 */
async function openTcpSession(target: SessionTarget, tcp: TcpTarget, opts: OpenSessionOptions): Promise<AgentSession> {
  const deadline = Date.now() + opts.timeoutMs;
  let last: unknown;
  for (;;) {
    checkAborted(opts.signal, target.vmName);
    const left = deadline - Date.now();
    if (left <= 0) break;
    const socket = await new Promise<Socket | undefined>((resolve) => {
      const s = createConnection({ host: tcp.host, port: tcp.port });
      const timer = setTimeout(() => {
        s.destroy();
        resolve(undefined);
      }, Math.min(left, 5_000));
      s.once("connect", () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once("error", (err) => {
        clearTimeout(timer);
        last = err;
        resolve(undefined);
      });
    });
    if (socket) {
      try {
        const client = await sshConnect(socket, target, Math.max(minTcpSshMs, deadline - Date.now()), tcp.username);
        return { kind: "ssh", client, socket, lock: noLock, port: tcpSessions++ };
      } catch (err) {
        last = err;
        socket.destroy();
        if (!opts.waitForSockets) break;
      }
    } else if (!opts.waitForSockets) break;
    if (opts.singlePass) break;
    await sleep(Math.min(1_000, Math.max(0, deadline - Date.now())));
  }
  if (last instanceof SkiffError) throw last;
  throw new SkiffError("ERR_SKIFF_AGENT", `SSH on ${target.vmName} (127.0.0.1:${tcp.port}) did not answer within ${opts.timeoutMs} ms`, {
    hint: `cloud-init may still be running or failed: see \`skiff logs ${target.vmName}\``,
    details: { vm: target.vmName },
    ...(last === undefined ? {} : { cause: last }),
  });
}

/**
 * ssh2, loaded on first use: it costs ~80 ms to load, and skiff's own
 * guests speak the native protocol unless SSH is asked for.
 * (CommonJS: Node's ESM loader only gives its default export; vitest hides this.)
 */
async function loadSsh2(): Promise<typeof import("ssh2")> {
  return (await import("ssh2")).default;
}

async function sshConnect(socket: Socket, target: SessionTarget, timeoutMs: number, username = "root"): Promise<Client> {
  const ssh2 = await loadSsh2();
  const hostKey = parseHostKey(ssh2, target.hostPublicKey, target.vmName);
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    // ssh2 may report a second error after the first (a peer that accepts and drops, as slirp does
    // while the guest's sshd is not up): without a listener that one would crash the process.
    client.on("error", () => {});
    let wrongHostKey = false;
    const onError = (err: Error & { level?: string }) => {
      client.off("ready", onReady);
      socket.destroy();
      if (wrongHostKey) {
        return reject(
          new SkiffError("ERR_SKIFF_AGENT", `the guest agent of ${target.vmName} presented a host key that is not the VM's`, {
            hint: "the VM's files do not match the running guest; restart the VM",
          }),
        );
      }
      if (err.level === "client-authentication") {
        return reject(
          new SkiffError("ERR_SKIFF_AGENT", `the guest agent of ${target.vmName} refused the VM's key`, {
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
      username,
      privateKey: target.privateKey,
      readyTimeout: timeoutMs,
      // The guest's dropbear does the crypto on an emulated CPU, where ChaCha20 beats AES-CTR
      // (measured under TCG: 7.7 vs 6.0 MB/s guest to host, 19.5 vs 13.1 MB/s host to guest).
      algorithms: { cipher: ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr"] },
      keepaliveInterval: keepaliveIntervalMs,
      keepaliveCountMax,
      hostVerifier: (key: Buffer) => {
        wrongHostKey = !key.equals(hostKey);
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
function parseHostKey(ssh2: typeof import("ssh2"), line: string, vmName: string): Buffer {
  const key = ssh2.utils.parseKey(line.trim());
  if (key instanceof Error || Array.isArray(key)) {
    throw new SkiffError("ERR_SKIFF_STATE_CORRUPT", `the host key recorded for ${vmName} is not an OpenSSH public key`, {
      hint: "the VM's directory is damaged; recreate the VM",
      ...(key instanceof Error ? { cause: key } : {}),
    });
  }
  return key.getPublicSSH();
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

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, Math.max(0, ms)));
}
