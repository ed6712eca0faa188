/**
 * `applyLayers`: layer files (blobs of the content store, or members of an
 * archive) → a staged root directory. Each layer's bytes are hashed as
 * they are read and checked against the digest that names them, and the
 * decompressed tar against the image config's diff_id, so a blob that
 * changed on disk since it was verified cannot slip into a base. A layer
 * with a feed (a pull in progress, registry/blob-feed.ts) is applied from
 * the network bytes as they arrive instead; the download hashes those, and
 * the layer is good only once the feed has ended, i.e. the blob matched.
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { SkiffError } from "../../errors.js";
import { type ApplierOptions, type ApplyResult, LayerApplier } from "./applier.js";
import type { BlobFeed } from "../registry/blob-feed.js";
import { type ByteRange, type Compression, compressionOfMediaType, decompress, detectCompression, rangeStream, sniffCompression } from "./compression.js";
import { badArchive, classifyUnpackError } from "./errors.js";
import type { TarInput } from "./tar-read.js";

export type { ApplyResult, OwnershipMode } from "./applier.js";

export interface LayerSource extends ByteRange {
  /** The layer's media type; the bytes' magic number decides the compression, this only breaks a tie. */
  mediaType: string;
  /** Digest of the bytes as stored ("sha256:…"): verified as they are read, and named in errors. */
  digest?: string;
  /** Digest of the uncompressed tar (the config's rootfs.diff_ids entry): verified too. */
  diffId?: string;
  /** Expected size of the stored bytes. */
  size?: number;
  /** The layer's name in messages when it has no digest ("app.tar:<id>/layer.tar"). */
  label?: string;
  /** The download of the blob at `path`, still going: its bytes, or word that `path` is to be read once stored. */
  feed?: BlobFeed;
}

/** A layer that is already a plain tar stream (a directory being imported, packed on the fly). */
export interface TarStreamLayer {
  label: string;
  /** A fresh stream of the tar on each call. */
  open(): TarInput;
  /** sha256 the tar must hash to: a check that the source did not change since it was hashed. */
  diffId?: string;
}

export type LayerInput = LayerSource | TarStreamLayer;

export interface ApplyLayersOptions extends ApplierOptions {
  /** Told before each layer starts. */
  onLayer?: (event: { index: number; count: number; layer: string }) => void;
}

/** A layer's name in messages: its digest, else where it is. */
export function layerLabel(layer: LayerInput): string {
  if ("open" in layer) return layer.label;
  return layer.digest ?? layer.label ?? (layer.offset === undefined ? layer.path : `${layer.path}@${layer.offset}`);
}

/** Apply `layers` in order into `rootDir` (which should be empty). */
export async function applyLayers(layers: readonly LayerInput[], rootDir: string, opts: ApplyLayersOptions = {}): Promise<ApplyResult> {
  const applier = new LayerApplier(rootDir, opts);
  for (const [index, layer] of layers.entries()) {
    opts.onLayer?.({ index, count: layers.length, layer: layerLabel(layer) });
    if ("open" in layer) await applyTarStream(applier, layer, rootDir);
    else await applyLayer(applier, layer, rootDir);
  }
  try {
    return applier.finish();
  } catch (err) {
    throw classifyUnpackError(err, "(directory times)", rootDir);
  }
}

/** One layer through `applier`, verified. */
export async function applyLayer(applier: LayerApplier, layer: LayerSource, rootDir: string): Promise<void> {
  const label = layerLabel(layer);
  if (/encrypted/.test(layer.mediaType)) throw badArchive(label, `encrypted layers are not supported (${layer.mediaType})`);
  const fed = await layer.feed?.take();
  if (fed === undefined) await layer.feed?.stored;
  const raw = fed === undefined ? await storedBytes(layer, label) : await fedBytes(fed, layer);
  const claimed = compressionOfMediaType(layer.mediaType);
  const stage = decompress(raw.stream, raw.kind);
  // An uncompressed layer's tar is its bytes: once they match the digest, the diff_id to check is the digest.
  const tarHash = raw.kind === "none" && layer.digest !== undefined ? undefined : createHash("sha256");
  try {
    await applier.applyTar(stage.output, label, tarHash && ((chunk) => tarHash.update(chunk)));
    await stage.done;
  } catch (err) {
    stage.abort();
    layer.feed?.release();
    const why = claimed !== undefined && claimed !== raw.kind ? ` (media type says ${claimed}, the bytes say ${raw.kind})` : "";
    const classified = classifyUnpackError(err, label, rootDir);
    if (classified.code !== "ERR_SKIFF_BAD_ARCHIVE") throw classified;
    // Bytes that do not unpack may be bytes that failed their digest on the way: then that is the error.
    await raw.download;
    if (why) throw badArchive(label, `${(err as Error).message}${why}`, err);
    throw classified;
  }
  // Whatever the decompressor left unread is not wanted, but the download must still finish and verify.
  layer.feed?.release();
  await raw.verified();
  const diffId = tarHash ? `sha256:${tarHash.digest("hex")}` : layer.digest;
  if (layer.diffId !== undefined && diffId !== layer.diffId) {
    throw mismatch(label, `its uncompressed tar hashes to ${diffId}, the image config says ${layer.diffId}`);
  }
}

/** A layer's bytes on their way to the decompressor, and how they are compressed. */
interface RawLayer {
  stream: Readable;
  kind: Compression;
  /** After a clean unpack: rejects unless the bytes are the layer's, all of them. */
  verified(): Promise<void>;
  /** A download still going: rejects if what it delivered failed verification. */
  download?: Promise<void>;
}

/** The layer's file (or byte range), hashed and counted as it is read. */
async function storedBytes(layer: LayerSource, label: string): Promise<RawLayer> {
  const kind = await detectCompression(layer, layer.mediaType);
  const stream = rangeStream(layer);
  const rawHash = createHash("sha256");
  let rawBytes = 0;
  stream.on("data", (chunk: Buffer) => {
    rawHash.update(chunk);
    rawBytes += chunk.byteLength;
  });
  const verified = async () => {
    const expectedBytes = layer.size ?? layer.length;
    if (expectedBytes !== undefined && rawBytes !== expectedBytes) throw mismatch(label, `it is ${rawBytes} bytes, not ${expectedBytes}`);
    const rawDigest = `sha256:${rawHash.digest("hex")}`;
    if (layer.digest !== undefined && rawDigest !== layer.digest) throw mismatch(label, `its bytes hash to ${rawDigest}`);
  };
  return { stream, kind, verified };
}

/** A download's bytes as they arrive. The download hashes them; its feed ends only once they have matched the digest. */
async function fedBytes(fed: AsyncIterable<Uint8Array>, layer: LayerSource): Promise<RawLayer> {
  const chunks = fed[Symbol.asyncIterator]();
  // Enough of the start to tell the compression by its magic number (a tar says "ustar" at 257).
  const head: Uint8Array[] = [];
  let headBytes = 0;
  let ended = false;
  while (headBytes < 512 && !ended) {
    const next = await chunks.next();
    if (next.done === true) ended = true;
    else {
      head.push(next.value);
      headBytes += next.value.byteLength;
    }
  }
  const kind = sniffCompression(head.length === 1 ? head[0]! : Buffer.concat(head)) ?? compressionOfMediaType(layer.mediaType) ?? "none";
  async function* all(): AsyncGenerator<Uint8Array> {
    yield* head;
    for (let next = ended ? undefined : await chunks.next(); next !== undefined && next.done !== true; next = await chunks.next()) yield next.value;
  }
  const download = layer.feed!.verified;
  return { stream: Readable.from(all(), { objectMode: false }), kind, verified: () => download, download };
}

function mismatch(label: string, why: string): SkiffError {
  return new SkiffError("ERR_SKIFF_DIGEST_MISMATCH", `layer ${label} failed verification: ${why}`, {
    hint: "the stored blob is damaged or was changed; remove it (`skiff image prune`) and pull or import the image again",
    details: { layer: label },
  });
}

async function applyTarStream(applier: LayerApplier, layer: TarStreamLayer, rootDir: string): Promise<void> {
  const tarHash = createHash("sha256");
  try {
    await applier.applyTar(layer.open(), layer.label, (chunk) => tarHash.update(chunk));
  } catch (err) {
    throw classifyUnpackError(err, layer.label, rootDir);
  }
  const diffId = `sha256:${tarHash.digest("hex")}`;
  if (layer.diffId !== undefined && diffId !== layer.diffId) {
    throw new SkiffError("ERR_SKIFF_DIGEST_MISMATCH", `${layer.label} changed while it was being imported (${diffId}, was ${layer.diffId})`, {
      hint: "import it again once nothing is writing to it",
      details: { layer: layer.label, expected: layer.diffId, actual: diffId },
    });
  }
}
