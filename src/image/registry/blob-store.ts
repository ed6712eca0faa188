/**
 * The content store: `<cache>/blobs/sha256/<hex>`, one file per blob
 * (manifests, configs, layers), named by the sha256 of its bytes. A blob is
 * written to `<cache>/blobs/.ingest/`, hashed as it arrives, checked against
 * the size and digest it was asked for, fsynced, and only then renamed into
 * place: a file under its digest's name is whole and verified, so presence
 * is proof and a second pull does not fetch it again. Anything that fails
 * on the way removes its temp file; a killed pull cannot, so the temp
 * file's name carries its writer's pid and start time, and the staging
 * sweep (../staging.ts) removes those whose writer is gone.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { errnoOf, SkiffError } from "../../errors.js";
import { currentProcess, type ProcessIdentity } from "../../process/pid.js";
import { syncDir } from "../../store/atomic.js";

const sha256Pattern = /^sha256:([a-f0-9]{64})$/;

export interface BlobTarget {
  digest: string;
  size: number;
}

export function blobsDir(cacheDir: string): string {
  return join(cacheDir, "blobs");
}

/** Where blobs are written before they are verified; anything here is an unfinished download. */
export function ingestDir(cacheDir: string): string {
  return join(blobsDir(cacheDir), ".ingest");
}

let self: ProcessIdentity | undefined;

/** `<hex>-<pid>-<start time>-<random>`: a temp file's name in the ingest directory. */
function ingestTempName(hex: string): string {
  self ??= currentProcess();
  return `${hex}-${self.pid}-${self.startTime}-${randomBytes(4).toString("hex")}`;
}

/**
 * Who writes the ingest temp file `name`: its pid and start time (only the
 * pid for names of older skiffs, which wrote no start time); undefined for
 * a name that is not a temp file's.
 */
export function ingestWriter(name: string): { pid: number; startTime?: number } | undefined {
  const m = /^[0-9a-f]{64}-(\d+)-(?:(\d+)-)?[0-9a-f]{8}$/.exec(name);
  if (m === null) return undefined;
  return { pid: Number(m[1]), ...(m[2] === undefined ? {} : { startTime: Number(m[2]) }) };
}

/**
 * The hex of a sha256 digest. Digests come from remote manifests and become
 * file names, so anything else is refused before it can name a path.
 */
export function digestHexOf(digest: string, place?: string): string {
  const match = sha256Pattern.exec(digest);
  if (!match) {
    throw new SkiffError("ERR_SKIFF_REGISTRY", `unsupported or malformed digest: ${JSON.stringify(digest)}`, {
      hint: "skiff verifies sha256 digests only",
      ...(place === undefined ? {} : { place }),
      details: { digest },
    });
  }
  return match[1]!;
}

export function blobPath(cacheDir: string, digest: string): string {
  return join(blobsDir(cacheDir), "sha256", digestHexOf(digest));
}

/** True if the blob is stored (and, when `size` is given, has that size). */
export async function hasBlob(cacheDir: string, digest: string, size?: number): Promise<boolean> {
  try {
    const st = await stat(blobPath(cacheDir, digest));
    return size === undefined || st.size === size;
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return false;
    throw err;
  }
}

export async function readBlob(cacheDir: string, digest: string): Promise<Buffer> {
  try {
    return await readFile(blobPath(cacheDir, digest));
  } catch (err) {
    if (errnoOf(err) !== "ENOENT") throw err;
    throw new SkiffError("ERR_SKIFF_IMAGE_NOT_FOUND", `blob ${digest} is not in the image cache`, {
      hint: "pull the image again",
      details: { digest, cacheDir },
    });
  }
}

export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** The store's directories, made if missing (both at once: on a fresh cache that is most of a first blob's cost). */
export async function makeStoreDirs(cacheDir: string): Promise<void> {
  await Promise.all([mkdir(ingestDir(cacheDir), { recursive: true, mode: 0o700 }), mkdir(join(blobsDir(cacheDir), "sha256"), { recursive: true, mode: 0o700 })]);
}

/** Store bytes already in memory (manifests), checked against `digest`. */
export async function writeBlob(cacheDir: string, digest: string, data: Uint8Array, source = "registry"): Promise<void> {
  await ingestBlob(cacheDir, { digest, size: data.byteLength }, source, async (sink) => sink.write(data));
}

/** What an ingest writes through: counts and hashes every byte on its way to the temp file. */
export interface BlobSink {
  /** Resolves once the chunk is hashed and queued; a failed write surfaces at a later call (or at the end). */
  write(chunk: Uint8Array): Promise<void>;
  readonly received: number;
  /** sha256 of the bytes written so far ("sha256:…"). */
  digestSoFar(): string;
}

export interface IngestHooks {
  /** The bytes are all there and match the digest; the fsync and rename that store them come next. */
  verified?: () => void;
}

/**
 * Chunks are gathered into writes of about this size, one write in flight
 * at a time: a network chunk is ~16-64 KiB, and a promise-per-chunk write
 * costs twice the CPU of the same bytes written in large pieces.
 */
const writeBatchBytes = 1024 * 1024;

/**
 * Write a blob through `fill`, verify it, and rename it into the store. A
 * short blob is ERR_SKIFF_REGISTRY (the transfer ended early), a long or
 * different one ERR_SKIFF_DIGEST_MISMATCH; either way the temp file is gone.
 */
export async function ingestBlob(
  cacheDir: string,
  target: BlobTarget,
  source: string,
  fill: (sink: BlobSink) => Promise<void>,
  hooks: IngestHooks = {},
): Promise<void> {
  const hex = digestHexOf(target.digest);
  const dir = ingestDir(cacheDir);
  const finalDir = join(blobsDir(cacheDir), "sha256");
  await makeStoreDirs(cacheDir);
  const temp = join(dir, ingestTempName(hex));
  const hash = createHash("sha256");
  const file = await open(temp, "wx", 0o644);
  let received = 0;
  let closed = false;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let inFlight: Promise<unknown> = Promise.resolve();
  const flush = async () => {
    await inFlight;
    if (pendingBytes === 0) return;
    inFlight = file.writev(pending);
    // Seen by the next flush; a rejection nobody awaits yet must not crash the process.
    inFlight.catch(() => {});
    pending = [];
    pendingBytes = 0;
  };
  try {
    const sink: BlobSink = {
      async write(chunk) {
        received += chunk.byteLength;
        if (received > target.size) throw mismatch(target, source, `more than the ${target.size} bytes announced`);
        hash.update(chunk);
        pending.push(chunk);
        pendingBytes += chunk.byteLength;
        if (pendingBytes >= writeBatchBytes) await flush();
      },
      get received() {
        return received;
      },
      digestSoFar: () => `sha256:${hash.copy().digest("hex")}`,
    };
    await fill(sink);
    await flush();
    await inFlight;
    if (received < target.size) throw endedEarly(target, source, received);
    const actual = `sha256:${hash.digest("hex")}`;
    if (actual !== target.digest) throw mismatch(target, source, `its content hashes to ${actual}`);
    hooks.verified?.();
    await file.sync();
    await file.close();
    closed = true;
    await rename(temp, join(finalDir, hex));
  } catch (err) {
    await inFlight.catch(() => {});
    if (!closed) await file.close().catch(() => {});
    await rm(temp, { force: true });
    throw err;
  }
  await syncDir(finalDir);
}

/** A transfer that stopped short of the announced size (ERR_SKIFF_REGISTRY: worth another try). */
export function endedEarly(target: BlobTarget, source: string, received: number): SkiffError {
  return new SkiffError("ERR_SKIFF_REGISTRY", `download of ${target.digest} from ${source} ended early: ${received} of ${target.size} bytes`, {
    hint: "the connection was cut; pull again",
    details: { digest: target.digest, received, size: target.size },
  });
}

function mismatch(target: BlobTarget, source: string, why: string): SkiffError {
  return new SkiffError("ERR_SKIFF_DIGEST_MISMATCH", `blob ${target.digest} from ${source} failed verification: ${why}`, {
    hint: "the registry (or something between it and you) served different content than the manifest names; nothing was stored",
    details: { digest: target.digest, size: target.size, source },
  });
}
