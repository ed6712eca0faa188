/**
 * A VM's logs (`skiff logs`, `GET /vms/{name}/logs`): the serial console
 * log, or the provisioners' log, as chunks: its last lines, then
 * (following) what is written until the VM's QEMU ends. Guest output: bytes
 * passed on as they are, never parsed here.
 */
import { open, stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
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

/** The log as a byte stream (see followLog). */
export function logStream(opts: FollowOptions): Readable {
  return Readable.from(followLog(opts), { objectMode: false });
}

async function sizeOf(path: string): Promise<number> {
  return (await stat(path).catch(() => undefined))?.size ?? 0;
}

async function readRange(path: string, from: number, to: number): Promise<Buffer> {
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

async function* followLog(opts: FollowOptions): AsyncGenerator<Buffer> {
  let offset = await sizeOf(opts.path);
  const first = await readRange(opts.path, 0, offset).catch(() => Buffer.alloc(0));
  yield opts.lines === undefined ? first : first.subarray(tailStart(first, opts.lines));
  while (opts.follow === true && opts.signal?.aborted !== true) {
    const size = await sizeOf(opts.path);
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
