/**
 * QEMU's device state to and from a file, through a unix socket in the VM's
 * run directory. Not `exec:cat`: a jailed QEMU has no shell and may not
 * spawn; not `fd:`: Node cannot pass descriptors over QMP's socket. The
 * socket sits where the jailed QEMU already reads and writes.
 *
 * With x-ignore-shared, RAM in a shared file (ram.ts) is left out of the
 * stream: what remains is device state, ~70 KB for a small guest. A VM
 * whose RAM is private (a fork, shared-ram.ts) has no file to copy: its
 * RAM goes in the stream (`ramInStream`), and both ends then leave the
 * capability off, since it changes the stream's format and a QEMU loading
 * into a shared RAM file with it on refuses RAM pages in the stream.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { chown, rm } from "node:fs/promises";
import { connect, createServer, type Socket } from "node:net";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { SkiffError } from "../errors.js";
import type { QmpClient } from "../qemu/qmp.js";

interface MigrationInfo {
  status?: string;
  "error-desc"?: string;
  /** ms the source was stopped for, once a live migration completed. */
  downtime?: number;
}

function capabilities(ramInStream: boolean | undefined) {
  return [{ capability: "x-ignore-shared", state: ramInStream !== true }];
}

/** How long a connection QEMU has made may take to be seen once it reports the migration completed. */
const connectionGraceMs = 5_000;

/** Device state is small, but a guest whose RAM is not shared sends all of it: no throttling. */
const maxBandwidth = 64 * 1024 ** 3;

async function migrationEnded(qmp: QmpClient, what: string, timeoutMs: number, onActive?: (elapsedMs: number) => Promise<void>): Promise<MigrationInfo> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  for (;;) {
    const info = await qmp.execute<MigrationInfo>("query-migrate");
    if (info.status === "completed") return info;
    if (info.status === "active") await onActive?.(Date.now() - started);
    if (info.status === "failed" || info.status === "cancelled") {
      throw new SkiffError("ERR_SKIFF_SNAPSHOT_FAILED", `${what}: QEMU's migration ${info.status}${info["error-desc"] ? `: ${info["error-desc"]}` : ""}`, {
        hint: "see the VM's qemu.stderr in its directory (`skiff inspect` shows where)",
      });
    }
    if (Date.now() > deadline) {
      throw new SkiffError("ERR_SKIFF_SNAPSHOT_FAILED", `${what}: QEMU's migration did not end within ${Math.round(timeoutMs / 1000)} s`, {
        hint: "the host may be short of disk or CPU; try again",
      });
    }
    await sleep(5);
  }
}

/**
 * The guest's device state into `file`. `owner`: the jail user, who must be
 * able to connect to the socket skiff listens on. A guest left running is
 * migrated live (its RAM copied while it runs, then stopped by QEMU for the
 * rest): `downtimeMs` says how long it was stopped, and it stays stopped.
 * A guest that dirties its memory faster than it is copied would keep a
 * live migration from ending: after `liveForMs` it is stopped (`stoppedAt`,
 * performance.now()), and the copy ends with nothing changing under it.
 */
export async function saveState(
  qmp: QmpClient,
  opts: { socketPath: string; file: string; owner?: { uid: number; gid: number }; timeoutMs?: number; ramInStream?: boolean; liveForMs?: number },
): Promise<{ downtimeMs?: number; stoppedAt?: number }> {
  await rm(opts.socketPath, { force: true });
  let received: Promise<void> | undefined;
  let connected!: () => void;
  const connection = new Promise<void>((resolve) => (connected = resolve));
  const server = createServer({ pauseOnConnect: false }, (socket: Socket) => {
    // One stream: a second connection would be nobody's.
    if (received !== undefined) return socket.destroy();
    received = pipeline(socket, createWriteStream(opts.file, { mode: 0o600 }));
    connected();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.socketPath, () => resolve());
  });
  try {
    if (opts.owner !== undefined) await chown(opts.socketPath, opts.owner.uid, opts.owner.gid);
    await qmp.execute("migrate-set-capabilities", { capabilities: capabilities(opts.ramInStream) });
    await qmp.execute("migrate-set-parameters", { "max-bandwidth": maxBandwidth });
    await qmp.execute("migrate", { uri: `unix:${opts.socketPath}` });
    let stoppedAt: number | undefined;
    const stopWhenSlow = async (elapsedMs: number) => {
      if (opts.liveForMs === undefined || stoppedAt !== undefined || elapsedMs < opts.liveForMs) return;
      await qmp.execute("stop");
      stoppedAt = performance.now();
    };
    const info = await migrationEnded(qmp, "saving the VM's state", opts.timeoutMs ?? 60_000, stopWhenSlow);
    // QEMU connects, writes ~70 KB of device state and ends within moments, and its "completed" on the QMP
    // socket may be read before the connection on this one is taken (two descriptors ready in one turn of
    // the event loop, in either order): a busy host gave "never connected" for a stream that was there.
    // So the connection gets a while to be taken; it is already made, only not yet seen.
    if (!(await Promise.race([connection.then(() => true), sleep(connectionGraceMs, false, { ref: false })]))) {
      throw new SkiffError("ERR_SKIFF_SNAPSHOT_FAILED", "QEMU reported its state saved but never connected");
    }
    await received;
    if (stoppedAt !== undefined) return { stoppedAt };
    return info.downtime === undefined ? {} : { downtimeMs: info.downtime };
  } finally {
    server.close();
    await rm(opts.socketPath, { force: true });
  }
}

/**
 * Feed `file` to a QEMU started with `-incoming defer`, wait until it has
 * loaded it, and let the guest run.
 */
export async function loadState(qmp: QmpClient, opts: { socketPath: string; file: string; timeoutMs?: number; ramInStream?: boolean }): Promise<void> {
  await rm(opts.socketPath, { force: true });
  await qmp.execute("migrate-set-capabilities", { capabilities: capabilities(opts.ramInStream) });
  await qmp.execute("migrate-incoming", { uri: `unix:${opts.socketPath}` });
  const socket = await connectWhenListening(opts.socketPath, 5_000);
  // QEMU closes its end as soon as it has read the stream's end marker, which can beat our own end of
  // writing (a "premature close", EPIPE): whether the load worked is QEMU's to say, below.
  await pipeline(createReadStream(opts.file), socket).catch((err: unknown) => {
    if (!streamCutByPeer(err)) throw err;
  });
  await migrationEnded(qmp, "loading the VM's state", opts.timeoutMs ?? 60_000);
  // The source was paused for the capture, and QEMU carries that over: the restored guest runs from here.
  const { status } = await qmp.execute<{ status: string }>("query-status");
  if (status !== "running") await qmp.execute("cont");
}

function streamCutByPeer(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  return code === "ERR_STREAM_PREMATURE_CLOSE" || code === "EPIPE" || code === "ECONNRESET";
}

/** QEMU binds the incoming socket when it takes `migrate-incoming`; connect once it is there. */
async function connectWhenListening(path: string, timeoutMs: number): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const s = connect(path);
        s.once("connect", () => resolve(s));
        s.once("error", reject);
      });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(5);
    }
  }
}
