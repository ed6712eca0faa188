/**
 * Turn a layer's bytes into a tar stream. The bytes decide (magic numbers),
 * the media type only breaks a tie: registries and `docker save` both label
 * layers loosely (Docker 25's save stores plain tars under names that say
 * nothing), and a wrong guess would surface as a baffling tar error.
 *
 * gzip runs in-process (zlib). Node 20 has no zstd, xz or bzip2, so those
 * stream through `zstd -dc` / `xz -dc` / `bzip2 -dc` children. The children
 * are spawned here rather than through the process runner because the
 * runner collects output as strings; each one is killed on any failure and
 * dies of EPIPE/EOF if skiff itself dies.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { PassThrough, type Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { SkiffError } from "../../errors.js";

export type Compression = "gzip" | "zstd" | "xz" | "bzip2" | "none";

/** Where a layer's bytes are: a whole file, or a byte range of one (a member of an archive). */
export interface ByteRange {
  path: string;
  /** Start of the bytes in `path` (default 0). */
  offset?: number;
  /** Number of bytes (default: to the end of the file). */
  length?: number;
}

const magics: [Compression, number[]][] = [
  ["gzip", [0x1f, 0x8b]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["bzip2", [0x42, 0x5a, 0x68]],
];

/** The compression of `head` (the first bytes of the stream), or undefined if it has no known magic. */
export function sniffCompression(head: Uint8Array): Compression | undefined {
  // A ustar/GNU tar says so at 257; checked first, since a plain tar's first
  // bytes are a file name, and a file named "BZh…" is not bzip2.
  if (head.length >= 262 && Buffer.from(head.subarray(257, 262)).toString("latin1") === "ustar") return "none";
  for (const [kind, magic] of magics) {
    if (head.length >= magic.length && magic.every((byte, i) => head[i] === byte)) return kind;
  }
  return undefined;
}

/** What a media type claims ("…tar+gzip" → gzip); undefined when it says nothing. */
export function compressionOfMediaType(mediaType: string): Compression | undefined {
  if (/\+encrypted$|\.encrypted/.test(mediaType)) return undefined;
  if (/(\+|\.)gzip$|tar\.gzip$/.test(mediaType)) return "gzip";
  if (/(\+|\.)zstd$/.test(mediaType)) return "zstd";
  if (/\.tar$|\.diff\.tar$|layer\.v1\.tar$/.test(mediaType)) return "none";
  return undefined;
}

export async function readHead(range: ByteRange, bytes = 512): Promise<Buffer> {
  const file = await open(range.path, "r");
  try {
    const want = Math.min(bytes, range.length ?? bytes);
    const buf = Buffer.alloc(want);
    const { bytesRead } = await file.read(buf, 0, want, range.offset ?? 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

/** Sniffed compression, falling back to the media type, then to "none". */
export async function detectCompression(range: ByteRange, mediaType = ""): Promise<Compression> {
  return sniffCompression(await readHead(range)) ?? compressionOfMediaType(mediaType) ?? "none";
}

export function rangeStream(range: ByteRange): Readable {
  const start = range.offset ?? 0;
  return createReadStream(range.path, {
    start,
    ...(range.length === undefined ? {} : { end: start + range.length - 1 }),
    highWaterMark: 1024 * 1024,
  });
}

/** A decompressing stage: `output` yields the plain bytes; `done` settles once the decompressor has finished cleanly. */
export interface Decompression {
  output: Readable;
  done: Promise<void>;
  /** Stop early (on a failure downstream); kills a child decompressor. */
  abort(): void;
}

const tools: Record<Exclude<Compression, "gzip" | "none">, { cmd: string; debianPackage: string }> = {
  zstd: { cmd: "zstd", debianPackage: "zstd" },
  xz: { cmd: "xz", debianPackage: "xz-utils" },
  bzip2: { cmd: "bzip2", debianPackage: "bzip2" },
};

/**
 * Pipe `input` through the decompressor for `kind`. Errors of the
 * decompressor reject `done` with the raw cause; the caller names the
 * layer (see `badArchive`).
 */
export function decompress(input: Readable, kind: Compression): Decompression {
  if (kind === "none") {
    const output = new PassThrough({ highWaterMark: 1024 * 1024 });
    input.on("error", (err) => output.destroy(err));
    input.pipe(output);
    const done = once(output, "end").then(() => undefined);
    done.catch(() => {});
    return { output, done, abort: () => input.destroy() };
  }
  if (kind === "gzip") {
    const gunzip = createGunzip({ chunkSize: 256 * 1024 });
    input.on("error", (err) => gunzip.destroy(err));
    input.pipe(gunzip);
    const done = new Promise<void>((resolve, reject) => {
      gunzip.on("end", resolve);
      gunzip.on("error", reject);
    });
    done.catch(() => {});
    return { output: gunzip, done, abort: () => input.destroy() };
  }
  const tool = tools[kind];
  const child = spawn(tool.cmd, ["-dc"], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    if (stderr.length < 4096) stderr += chunk.toString("utf8");
  });
  // The child may exit (bad input) before it has read everything we write.
  child.stdin.on("error", () => {});
  input.on("error", (err) => child.stdout.destroy(err));
  input.pipe(child.stdin);
  const done = new Promise<void>((resolve, reject) => {
    child.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") {
        reject(
          new SkiffError("ERR_SKIFF_TOOL_MISSING", `${tool.cmd} not found (needed for ${kind} layers)`, {
            hint: `install it: apt-get install ${tool.debianPackage}`,
            details: { cmd: tool.cmd, debianPackage: tool.debianPackage },
          }),
        );
      } else reject(err);
    });
    child.on("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${tool.cmd} -dc ${code === null ? `was killed by ${signal}` : `exited with ${code}`}: ${stderr.trim()}`));
    });
  });
  done.catch(() => {});
  // A stdout that ends early because the child failed must fail too, or the tar reader sees a short but "clean" end.
  done.catch((err: unknown) => child.stdout.destroy(err instanceof Error ? err : new Error(String(err))));
  return {
    output: child.stdout,
    done,
    abort() {
      input.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}
