/**
 * The byte-level greeting on one agent port, before SSH starts.
 *
 * A port is a QEMU chardev socket that serves one client at a time and may
 * still hold bytes of an earlier session. The host repeats
 * `SKIFF-HELLO <nonce>` until the guest's relay answers `SKIFF-READY <nonce>`
 * (the relay may not be running yet, or may have missed the first line);
 * everything before that answer is stale and dropped, everything after it
 * is the guest's SSH stream.
 */
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { errnoOf } from "../errors.js";

export type HandshakeResult =
  /** The guest answered; the socket is paused, positioned at the start of SSH. */
  | { kind: "ready"; socket: Socket }
  /** Nothing listens at the path: QEMU is not running (ENOENT, ECONNREFUSED). */
  | { kind: "absent"; errno: string }
  /** Connected, but no answer within the budget (guest not up, or the port is taken by another client). */
  | { kind: "silent" }
  /** The socket failed or was closed by the other end. */
  | { kind: "failed"; reason: string };

export interface HandshakeOptions {
  /** How long to wait for READY on this port. */
  budgetMs: number;
  /** How often HELLO is repeated (default 50 ms). */
  repeatMs?: number;
}

/**
 * Right after an earlier session on the port ended, the guest reliably
 * misses the first HELLO (measured: READY came with the second line every
 * time), so the repeat interval is the reconnect latency: 250 ms cost
 * ~255 ms per reconnect, 50 ms costs ~53 ms. The guest drops the extra lines.
 */
const defaultRepeatMs = 50;
const absentErrnos = new Set(["ENOENT", "ECONNREFUSED", "ENOTDIR"]);

export function agentHandshake(path: string, opts: HandshakeOptions): Promise<HandshakeResult> {
  const nonce = randomBytes(12).toString("hex");
  const hello = `SKIFF-HELLO ${nonce}\n`;
  const ready = Buffer.from(`SKIFF-READY ${nonce}\n`);
  return new Promise((resolve) => {
    const socket = connect(path);
    let seen: Buffer = Buffer.alloc(0);
    let repeat: NodeJS.Timeout | undefined;
    let settled = false;

    const finish = (result: HandshakeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(budget);
      clearInterval(repeat);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      if (result.kind !== "ready") socket.destroy();
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const at = seen.indexOf(ready);
      if (at < 0) {
        // Keep only a tail that could still be the start of READY.
        if (seen.length > ready.length) seen = seen.subarray(seen.length - ready.length + 1);
        return;
      }
      socket.pause();
      const rest = seen.subarray(at + ready.length);
      if (rest.length > 0) socket.unshift(rest);
      finish({ kind: "ready", socket });
    };
    const onError = (err: Error) => {
      const errno = errnoOf(err);
      finish(errno !== undefined && absentErrnos.has(errno) ? { kind: "absent", errno } : { kind: "failed", reason: err.message });
    };
    const onClose = () => finish({ kind: "failed", reason: "the port closed the connection" });

    const budget = setTimeout(() => finish({ kind: "silent" }), opts.budgetMs);
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
    socket.once("connect", () => {
      if (settled) return;
      socket.write(hello);
      repeat = setInterval(() => socket.write(hello), opts.repeatMs ?? defaultRepeatMs);
    });
  });
}
