/**
 * `applyLayers`: layer files (blobs of the content store, or members of an
 * archive) → a staged root directory. Each layer's bytes are hashed as
 * they are read and checked against the digest that names them, and the
 * decompressed tar against the image config's diff_id, so a blob that
 * changed on disk since it was verified cannot slip into a base.
 */
import { createHash } from "node:crypto";
import { SkiffError } from "../../errors.js";
import { type ApplierOptions, type ApplyResult, LayerApplier } from "./applier.js";
import { type ByteRange, compressionOfMediaType, decompress, detectCompression, rangeStream } from "./compression.js";
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
  const kind = await detectCompression(layer, layer.mediaType);
  const claimed = compressionOfMediaType(layer.mediaType);
  const raw = rangeStream(layer);
  const rawHash = createHash("sha256");
  let rawBytes = 0;
  raw.on("data", (chunk: Buffer) => {
    rawHash.update(chunk);
    rawBytes += chunk.byteLength;
  });
  const stage = decompress(raw, kind);
  const tarHash = createHash("sha256");
  try {
    await applier.applyTar(stage.output, label, (chunk) => tarHash.update(chunk));
    await stage.done;
  } catch (err) {
    stage.abort();
    const why = claimed !== undefined && claimed !== kind ? ` (media type says ${claimed}, the bytes say ${kind})` : "";
    const classified = classifyUnpackError(err, label, rootDir);
    if (why && classified.code === "ERR_SKIFF_BAD_ARCHIVE") throw badArchive(label, `${(err as Error).message}${why}`, err);
    throw classified;
  }
  const expectedBytes = layer.size ?? layer.length;
  if (expectedBytes !== undefined && rawBytes !== expectedBytes) {
    throw mismatch(label, `it is ${rawBytes} bytes, not ${expectedBytes}`);
  }
  const rawDigest = `sha256:${rawHash.digest("hex")}`;
  if (layer.digest !== undefined && rawDigest !== layer.digest) throw mismatch(label, `its bytes hash to ${rawDigest}`);
  const diffId = `sha256:${tarHash.digest("hex")}`;
  if (layer.diffId !== undefined && diffId !== layer.diffId) {
    throw mismatch(label, `its uncompressed tar hashes to ${diffId}, the image config says ${layer.diffId}`);
  }
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
