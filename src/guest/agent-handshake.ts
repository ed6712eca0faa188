/**
 * The byte-level greeting on one agent port, before SSH starts.
 *
 * A port is a QEMU chardev socket that serves one client at a time and may
 * still hold bytes of an earlier session. The host repeats
 * `SKIFF-HELLO <nonce>` until the guest's relay answers `SKIFF-READY <nonce>`
 * (the relay may not be running yet, or may have missed the first line);
 * everything before that answer is stale and dropped, everything after it
 * is the guest's SSH stream. `askPort` is that exchange for any line the
 * relay answers (identity.ts sends a new identity with it).
 */
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { errnoOf } from "../errors.js";

export type HandshakeResult =
  /** The guest answered; the socket is paused, positioned at the start of SSH. */
  | { kind: "ready"; socket: Socket }
  | PortFailure;

/** Why a port gave no answer. */
export type PortFailure =
  /** Nothing listens at the path: QEMU is not running (ENOENT, ECONNREFUSED). */
  | { kind: "absent"; errno: string }
  /** Connected, but no answer within the budget (guest not up, or the port is taken by another client). */
  | { kind: "silent" }
  /** The socket failed or was closed by the other end. */
  | { kind: "failed"; reason: string };

export interface HandshakeOptions {
  /** How long to wait for READY on this port. */
  budgetMs: number;
  /** How often HELLO is repeated once the first few quick repeats have gone (default 50 ms). */
  repeatMs?: number;
  /** Give up at once when aborted (a `failed` result, the socket closed). */
  signal?: AbortSignal;
}

/**
 * A guest often misses the first HELLO of a connect to a port it has
 * served before: the line and the port's open event reach it together,
 * its driver (virtio_console) takes data at once but the open event later,
 * from a workqueue, so the relay, woken by the data, still sees the port
 * hung up and drops what it holds as an earlier host's (guest/relay.c,
 * await_hello). The open event follows within a few milliseconds, so the
 * first repeats come soon (5, 15 and 30 ms after the first line), then
 * every `repeatMs` for a guest that is not up yet; the guest drops the
 * extra lines. With a repeat every 50 ms from the start, the repeat was
 * the reconnect's latency: on VMs restored from a snapshot, 21 connects
 * per VM after 0-1 s idle each, 2, 6, 3 and 4 of them took 54-59 ms (the
 * others 5-41); with the quick repeats 0 and 1 took more than 40 ms (41,
 * the first after the restore).
 */
const earlyRepeatsMs = [5, 10, 15];
const defaultRepeatMs = 50;
const absentErrnos = new Set(["ENOENT", "ECONNREFUSED", "ENOTDIR"]);

/** The guest's answer found in the bytes seen so far: its meaning, and where the answer ends in them. */
export interface Found<T> {
  value: T;
  end: number;
}

export interface AskOptions<T> extends HandshakeOptions {
  /** The line the guest's relay answers (with its newline); repeated until it does. */
  line: string;
  /** The answer in what the port sent so far, or undefined while it has not come (whole). */
  find: (seen: Buffer) => Found<T> | undefined;
  /**
   * How many of the last bytes seen to keep while no answer is found: the
   * guest is not trusted, so what it sends is not kept beyond what an
   * answer that has only begun could need.
   */
  tail: number;
}

/** The answer's meaning and the socket, paused just after the answer; or why there was none. */
export type AskResult<T> = { kind: "answered"; value: T; socket: Socket } | PortFailure;

/**
 * Connect to an agent port, send `line` (again after 5, 15 and 30 ms, then every `repeatMs`) until the guest's
 * answer comes, and hand back the socket, paused and positioned just after
 * the answer (what follows it is the caller's). Stale bytes of earlier
 * sessions before the answer are dropped.
 */
export function askPort<T>(path: string, opts: AskOptions<T>): Promise<AskResult<T>> {
  return new Promise((resolve) => {
    const socket = connect(path);
    let seen: Buffer = Buffer.alloc(0);
    let repeat: NodeJS.Timeout | undefined;
    let sent = 0;
    const again = () => {
      socket.write(opts.line);
      repeat = setTimeout(again, earlyRepeatsMs[sent++] ?? opts.repeatMs ?? defaultRepeatMs);
    };
    let settled = false;

    const finish = (result: AskResult<T>) => {
      if (settled) return;
      settled = true;
      clearTimeout(budget);
      clearTimeout(repeat);
      opts.signal?.removeEventListener("abort", onAbort);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      if (result.kind !== "answered") socket.destroy();
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const found = opts.find(seen);
      if (found === undefined) {
        if (seen.length > opts.tail) seen = seen.subarray(seen.length - opts.tail);
        return;
      }
      socket.pause();
      const rest = seen.subarray(found.end);
      if (rest.length > 0) socket.unshift(rest);
      finish({ kind: "answered", value: found.value, socket });
    };
    const onError = (err: Error) => {
      const errno = errnoOf(err);
      finish(errno !== undefined && absentErrnos.has(errno) ? { kind: "absent", errno } : { kind: "failed", reason: err.message });
    };
    const onClose = () => finish({ kind: "failed", reason: "the port closed the connection" });
    const onAbort = () => finish({ kind: "failed", reason: "aborted" });

    const budget = setTimeout(() => finish({ kind: "silent" }), opts.budgetMs);
    if (opts.signal?.aborted === true) return onAbort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
    socket.once("connect", () => {
      if (settled) return;
      again();
    });
  });
}

/** A fresh nonce: the answer to this host's line is told from stale answers to earlier ones by it. */
export function newNonce(): string {
  return randomBytes(12).toString("hex");
}

/**
 * The greeting on one port. With `native`, the HELLO asks for skiff's own
 * protocol (native/session.ts); a guest from before it echoes the line all
 * the same and starts SSH, which the session tells by its first byte.
 */
export async function agentHandshake(path: string, opts: HandshakeOptions & { native?: boolean }): Promise<HandshakeResult> {
  const nonce = opts.native === true ? `${newNonce()} native1` : newNonce();
  const ready = Buffer.from(`SKIFF-READY ${nonce}\n`);
  const result = await askPort(path, {
    ...opts,
    line: `SKIFF-HELLO ${nonce}\n`,
    find: (seen) => {
      const at = seen.indexOf(ready);
      return at < 0 ? undefined : { value: undefined, end: at + ready.length };
    },
    // Only a tail that could still be the start of READY.
    tail: ready.length - 1,
  });
  return result.kind === "answered" ? { kind: "ready", socket: result.socket } : result;
}
