/**
 * A pulled image as a base to build: its layers are the store's files,
 * checked again as they are read against their digests and the config's
 * diff_ids. An image still being pulled gives each layer its download's
 * feed, so the layer is applied as it arrives (and its file is read only
 * when the feed says so).
 */
import { errnoOf, isSkiffError } from "../../errors.js";
import type { PulledImage } from "../oci/types.js";
import type { BlobFeed } from "../registry/blob-feed.js";
import { blobPath, readBlob } from "../registry/blob-store.js";
import { parseImageConfig } from "../registry/image-config.js";
import type { BaseSource } from "./build.js";

export interface PulledBaseOptions {
  /** The record's name (default: the canonical reference). */
  name?: string;
  /** By layer digest: the downloads of a pull not yet complete (registry/pull.ts `startPull`). */
  feeds?: ReadonlyMap<string, BlobFeed>;
}

export async function baseSourceFromPulled(cacheDir: string, image: PulledImage, opts: PulledBaseOptions = {}): Promise<BaseSource> {
  const diffIds = await configDiffIds(cacheDir, image.configDigest);
  return {
    digest: image.manifestDigest,
    name: opts.name ?? image.reference.canonical,
    ref: image.reference.canonical,
    layers: image.layers.map((layer, i) => {
      const diffId = diffIds?.length === image.layers.length ? diffIds[i] : undefined;
      const feed = opts.feeds?.get(layer.digest);
      return {
        path: blobPath(cacheDir, layer.digest),
        mediaType: layer.mediaType,
        digest: layer.digest,
        size: layer.size,
        ...(diffId === undefined ? {} : { diffId }),
        ...(feed === undefined ? {} : { feed }),
      };
    }),
    config: image.config,
    configDigest: image.configDigest,
    platform: image.platform,
    source: `registry ${image.reference.registry}`,
  };
}

/** The config's diff_ids; undefined when the config blob is gone (the layer digests are still checked). */
async function configDiffIds(cacheDir: string, configDigest: string): Promise<string[] | undefined> {
  try {
    return parseImageConfig(await readBlob(cacheDir, configDigest), configDigest).diffIds;
  } catch (err) {
    if (errnoOf(err) === "ENOENT" || (isSkiffError(err) && err.code === "ERR_SKIFF_IMAGE_NOT_FOUND")) return undefined;
    throw err;
  }
}
