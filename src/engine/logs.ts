/**
 * A VM's logs (`skiff logs`, `GET /vms/{name}/logs`): the serial console
 * log, or the provisioners' log, as chunks: its last lines, then
 * (following) what is written until the VM's QEMU ends. Guest output: bytes
 * passed on as they are, never parsed here.
 */
import { existsSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { qemuLogLimitBytes } from "../jail/plan.js";
import type { RunState } from "./status.js";

export interface LogOptions {
  /** Keep streaming as the log grows, until the VM stops or `signal` aborts. */
  follow?: boolean;
  /** Only the last N lines of what is there already. */
  lines?: number;
  /** The provisioners' log (projects) instead of the console's. */
  provision?: boolean;
  signal?: AbortSignal;
}

interface FollowOptions extends LogOptions {
  path: string;
  /** The VM's state now (undefined once it is gone). */
  state: () => Promise<RunState | undefined>;
  pollMs?: number;
}

/**
 * The console log to read: `console.log` in the VM's directory, where the jailer's relay writes it; a VM whose
 * QEMU was started by a skiff before the relay (00f6323) still has QEMU writing `run/console.log` until its next
 * start, and its logs are there.
 */
export function consoleLogOf(paths: { consoleLog: string; runDir: string }): string {
  const old = join(paths.runDir, "console.log");
  return !existsSync(paths.consoleLog) && existsSync(old) ? old : paths.consoleLog;
}

/** The log as a byte stream (see followLog). */
export function logStream(opts: FollowOptions): Readable {
  return Readable.from(followLog(opts), { objectMode: false });
}

/**
 * How much of what is there already a reader takes at most (the end of it). The console log is rotated at
 * qemuLogLimitBytes into console.log.1, so the two hold twice that at most; a log written before the rotation
 * existed may be any size, and must not be read whole.
 */
const historyBytes = 2 * qemuLogLimitBytes;

async function statOf(path: string): Promise<{ size: number; ino: number } | undefined> {
  const st = await stat(path).catch(() => undefined);
  return st === undefined ? undefined : { size: st.size, ino: st.ino };
}

/** Bytes `from` to `to` of a file (fewer when it is shorter). */
export async function readRange(path: string, from: number, to: number): Promise<Buffer> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(to - from);
    const { bytesRead } = await fh.read(buf, 0, buf.length, from);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Where the last `n` lines of `text` begin. */
export function tailStart(text: Buffer, n: number): number {
  let end = text.length;
  if (end > 0 && text[end - 1] === 0x0a) end--;
  for (let seen = 0, i = end - 1; i >= 0; i--) {
    if (text[i] === 0x0a && ++seen === n) return i + 1;
  }
  return n === 0 ? text.length : 0;
}

/** The rotated log (console.log.1), whose lines came before the current file's. */
function rotatedOf(path: string): string {
  return `${path}.1`;
}

/** The end of what both files hold, oldest first, at most historyBytes. */
async function history(path: string, current: number): Promise<Buffer> {
  const fromCurrent = Math.min(current, historyBytes);
  const now = await readRange(path, current - fromCurrent, current).catch(() => Buffer.alloc(0));
  const left = historyBytes - fromCurrent;
  const older = left > 0 ? await statOf(rotatedOf(path)) : undefined;
  if (older === undefined || older.size === 0) return now;
  const before = await readRange(rotatedOf(path), Math.max(0, older.size - left), older.size).catch(() => Buffer.alloc(0));
  return Buffer.concat([before, now]);
}

async function* followLog(opts: FollowOptions): AsyncGenerator<Buffer> {
  let followed = await statOf(opts.path);
  let offset = followed?.size ?? 0;
  const first = await history(opts.path, offset);
  yield opts.lines === undefined ? first : first.subarray(tailStart(first, opts.lines));
  while (opts.follow === true && opts.signal?.aborted !== true) {
    const now = await statOf(opts.path);
    if (now !== undefined && followed !== undefined && now.ino !== followed.ino) {
      // Rotated: the file read so far is console.log.1 now; its rest, then the new file from its start.
      const old = await statOf(rotatedOf(opts.path));
      if (old !== undefined && old.ino === followed.ino && old.size > offset) yield await readRange(rotatedOf(opts.path), offset, old.size);
      followed = now;
      offset = 0;
      continue;
    }
    followed ??= now;
    const size = now?.size ?? 0;
    if (size > offset) {
      yield await readRange(opts.path, offset, size);
      offset = size;
      continue;
    }
    // A log replaced (the VM made again under its name) starts over.
    if (size < offset) offset = 0;
    const state = await opts.state();
    if (state !== "running" && state !== "paused" && state !== "restarting") return;
    await sleep(opts.pollMs ?? 200, undefined, opts.signal === undefined ? {} : { signal: opts.signal }).catch(() => undefined);
  }
}
