/** A VM's console log as chunks: its last lines, then (following) what the guest writes until its QEMU ends. */
import { open, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { Skiff } from "../index.js";

export interface FollowOptions {
  skiff: Skiff;
  name: string;
  path: string;
  follow: boolean;
  /** Only the last N lines of what is there already. */
  lines?: number;
  signal: AbortSignal;
  pollMs?: number;
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

export async function* followLog(opts: FollowOptions): AsyncGenerator<Buffer> {
  let offset = await sizeOf(opts.path);
  const first = await readRange(opts.path, 0, offset).catch(() => Buffer.alloc(0));
  yield opts.lines === undefined ? first : first.subarray(tailStart(first, opts.lines));
  while (opts.follow && !opts.signal.aborted) {
    const size = await sizeOf(opts.path);
    if (size > offset) {
      yield await readRange(opts.path, offset, size);
      offset = size;
      continue;
    }
    // A log replaced (the VM made again under its name) starts over.
    if (size < offset) offset = 0;
    const state = (await opts.skiff.inspect(opts.name).catch(() => undefined))?.state;
    if (state !== "running" && state !== "paused" && state !== "restarting") return;
    await sleep(opts.pollMs ?? 200, undefined, { signal: opts.signal }).catch(() => undefined);
  }
}
