/**
 * The shapes every part of the OCI image path agrees on: references, the
 * content store, pulled images and their config. Registry client
 * (registry/), layer application and ext4 build (unpack/), and the resolver
 * all speak these.
 */

/** A parsed image reference, after Docker's normalisation rules. */
export interface ImageReference {
  /** "docker.io", "ghcr.io", "127.0.0.1:5000". */
  registry: string;
  /** "library/alpine", "org/app". */
  repository: string;
  /** Set unless the reference names only a digest. */
  tag?: string;
  /** "sha256:…" when the reference pins one. */
  digest?: string;
  /** Fully qualified: "docker.io/library/alpine:latest", "host:5000/app@sha256:…". */
  canonical: string;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** An image's config as OCI (and Docker) define it: what `run` honours. */
export interface ImageRuntimeConfig {
  entrypoint: string[];
  cmd: string[];
  env: Record<string, string>;
  workingDir?: string;
  user?: string;
  /** "80/tcp" style keys. */
  exposedPorts: string[];
  labels: Record<string, string>;
}

export interface LayerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/**
 * An image whose manifest, config and layers are all in the content store
 * (`<cache>/blobs/sha256/<hex>`, each verified against its digest).
 */
export interface PulledImage {
  reference: ImageReference;
  /** Digest of the image manifest (not of an index that pointed to it). */
  manifestDigest: string;
  /** Digest of the index/manifest list the tag pointed to, if any. */
  indexDigest?: string;
  configDigest: string;
  platform: Platform;
  layers: LayerDescriptor[];
  config: ImageRuntimeConfig;
  /**
   * The config's rootfs.diff_ids: sha256 of each layer *uncompressed*, in
   * layer order, for the unpacker to verify what it applies.
   */
  diffIds?: string[];
}

/** Progress of a pull, per layer, for a `docker pull`-like display. */
export type PullEvent =
  /** The image comes from this Docker Hub mirror (registry-mirrors). */
  | { type: "mirror"; ref: string; mirror: string }
  | { type: "resolved"; ref: string; manifestDigest: string; layers: LayerDescriptor[] }
  | { type: "layer-cached"; digest: string; size: number }
  | { type: "layer-progress"; digest: string; received: number; size: number }
  | { type: "layer-done"; digest: string; size: number }
  | { type: "done"; ref: string; manifestDigest: string };
