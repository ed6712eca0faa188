/**
 * The frames of skiff's own guest protocol (guest/native.c is the other
 * end): a 4-byte big-endian payload length, a type byte, the payload.
 * Everything the guest sends is hostile data: the decoder refuses a length
 * beyond `maxFrame` before reading it, so a guest cannot make the host
 * hold more than one frame.
 */

/** Keep equal to guest/native.c (the golden tests check). */
export const nativeVersion = 2;
/** Payload bytes of one frame, either way. */
export const maxFrame = 65536;
/** Output (and stdin) bytes one side may send before the other grants more. */
export const window = 262144;

/** Host to guest. */
export const H = {
  exec: 0x01,
  stdin: 0x02,
  stdinEof: 0x03,
  signal: 0x04,
  resize: 0x05,
  credit: 0x06,
  ping: 0x07,
  /** A flag byte (1: do not follow a final symlink), then an absolute path in the image. */
  stat: 0x08,
  /** A path: the file's bytes come as STDOUT, then EXIT. */
  get: 0x09,
  /** A mode (u32), then a path: STDIN becomes the file, then EXIT. */
  put: 0x0a,
} as const;

/** Guest to host. */
export const G = {
  hello: 0x80,
  started: 0x81,
  stdout: 0x82,
  stderr: 0x83,
  exit: 0x84,
  error: 0x85,
  stdinCredit: 0x86,
  pong: 0x87,
  /** u32 errno; when 0: u32 mode, uid, gid, u64 size, u64 mtime (s), u32 nlink. */
  statReply: 0x88,
} as const;

export interface Frame {
  type: number;
  payload: Buffer;
}

export function encodeFrame(type: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  if (payload.length > maxFrame) throw new RangeError(`frame payload of ${payload.length} bytes, more than ${maxFrame}`);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 0);
  head[4] = type;
  return Buffer.concat([head, payload]);
}

export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0, 0);
  return b;
}

/** RESIZE's payload: rows, then columns, 16 bits each. */
export function windowSize(rows: number, cols: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(Math.max(0, Math.min(0xffff, Math.floor(rows))), 0);
  b.writeUInt16BE(Math.max(0, Math.min(0xffff, Math.floor(cols))), 2);
  return b;
}

/** A frame whose length is out of bounds: the stream cannot be read on. `frames` are those whole before it. */
export class FrameError extends Error {
  readonly frames: Frame[];
  constructor(message: string, frames: Frame[]) {
    super(message);
    this.frames = frames;
  }
}

/**
 * Frames out of a byte stream, as they come in chunks. Holds at most one
 * frame's bytes; `push` throws FrameError on a length beyond `maxFrame`.
 */
export class FrameDecoder {
  #pending: Buffer[] = [];
  #pendingLength = 0;

  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    this.#pending.push(chunk);
    this.#pendingLength += chunk.length;
    for (;;) {
      if (this.#pendingLength < 5) break;
      const head = this.#peek(5);
      const length = head.readUInt32BE(0);
      if (length > maxFrame) throw new FrameError(`the guest sent a frame of ${length} bytes, more than ${maxFrame}`, frames);
      if (this.#pendingLength < 5 + length) break;
      const whole = this.#take(5 + length);
      frames.push({ type: whole[4] ?? 0, payload: whole.subarray(5) });
    }
    return frames;
  }

  #peek(n: number): Buffer {
    if ((this.#pending[0]?.length ?? 0) < n) this.#pending = [Buffer.concat(this.#pending)];
    return (this.#pending[0] ?? Buffer.alloc(0)).subarray(0, n);
  }

  #take(n: number): Buffer {
    const all = this.#pending.length === 1 ? (this.#pending[0] ?? Buffer.alloc(0)) : Buffer.concat(this.#pending);
    const out = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    this.#pending = rest.length > 0 ? [rest] : [];
    this.#pendingLength = rest.length;
    return out;
  }
}

/** EXEC's payload: request.c's NUL-separated records, plus t=TERM, r=ROWS, c=COLS for a PTY. */
export function execPayload(records: readonly string[], pty?: { term: string; rows: number; cols: number }): Buffer {
  const all = [...records];
  if (pty) all.push(`t=${pty.term}`, `r=${pty.rows}`, `c=${pty.cols}`);
  return Buffer.from(all.join("\0"), "utf8");
}

/** What STAT says of a path in the image. */
export interface GuestStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  nlink: number;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
}

/** The path of STAT, GET and PUT: absolute, no NUL, at most 4095 bytes (the guest refuses the rest too). */
export function filePath(path: string): Buffer {
  const bytes = Buffer.from(path, "utf8");
  if (!path.startsWith("/") || path.includes("\0") || bytes.length > 4095) {
    throw new RangeError(`not a path the guest takes: ${JSON.stringify(path.slice(0, 100))}`);
  }
  return bytes;
}

/**
 * STAT_REPLY's payload: a GuestStat, or the errno the guest met (a number
 * from 1 to 4095). A payload of another size is hostile: undefined.
 */
export function parseStatReply(p: Buffer): GuestStat | { errno: number } | undefined {
  if (p.length < 4) return undefined;
  const errno = p.readUInt32BE(0);
  if (errno !== 0) return p.length === 4 && errno < 4096 ? { errno } : undefined;
  if (p.length !== 36) return undefined;
  const mode = p.readUInt32BE(4);
  const size = Number(p.readBigUInt64BE(16));
  const mtime = Number(p.readBigInt64BE(24));
  if (!Number.isSafeInteger(size) || !Number.isSafeInteger(mtime * 1000)) return undefined;
  const kind = mode & 0o170000;
  return {
    mode,
    uid: p.readUInt32BE(8),
    gid: p.readUInt32BE(12),
    size,
    mtimeMs: mtime * 1000,
    nlink: p.readUInt32BE(32),
    isFile: kind === 0o100000,
    isDirectory: kind === 0o040000,
    isSymlink: kind === 0o120000,
  };
}
