/**
 * Manifests as registries serve them: an index (OCI image index or Docker
 * manifest list) names one manifest per platform; an image manifest (OCI or
 * Docker schema 2) names a config and the layers. Parsing checks every
 * descriptor, since their digests become file names and their sizes bound
 * what we download.
 */
import { SkiffError } from "../../errors.js";
import type { LayerDescriptor, Platform } from "../oci/types.js";
import { digestHexOf } from "./blob-store.js";

export const mediaTypes = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
} as const;

/** What we ask for: every format we read, so the registry never converts. */
export const manifestAccept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(", ");

const indexTypes = new Set<string>([mediaTypes.ociIndex, mediaTypes.dockerManifestList]);
const imageTypes = new Set<string>([mediaTypes.ociManifest, mediaTypes.dockerManifest]);

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface IndexEntry extends Descriptor {
  platform?: Platform;
  annotations?: Record<string, string>;
}

export type Manifest =
  | { kind: "index"; mediaType: string; manifests: IndexEntry[] }
  | { kind: "image"; mediaType: string; config: Descriptor; layers: LayerDescriptor[] };

interface RawManifest {
  schemaVersion?: unknown;
  mediaType?: unknown;
  manifests?: unknown;
  config?: unknown;
  layers?: unknown;
}

/** Parse a manifest's bytes; `contentType` is used when the body does not say its media type. */
export function parseManifest(bytes: Uint8Array, where: string, contentType?: string): Manifest {
  let raw: RawManifest;
  try {
    raw = JSON.parse(Buffer.from(bytes).toString("utf8")) as RawManifest;
  } catch (err) {
    throw bad(where, "it is not JSON", err);
  }
  if (typeof raw !== "object" || raw === null) throw bad(where, "it is not a JSON object");
  const headerType = contentType?.split(";")[0]?.trim();
  let mediaType = typeof raw.mediaType === "string" ? raw.mediaType : headerType;
  if (raw.schemaVersion === 1 || mediaType === mediaTypes.dockerSchema1 || mediaType === mediaTypes.dockerSchema1Signed) {
    throw new SkiffError("ERR_SKIFF_REGISTRY", `manifest ${where} is Docker schema 1, which skiff does not read`, {
      hint: "schema 1 images are deprecated; push the image again with a current tool (docker, skopeo, buildah)",
      details: { where },
    });
  }
  // OCI makes mediaType optional: tell the two apart by shape.
  if (mediaType === undefined || !(indexTypes.has(mediaType) || imageTypes.has(mediaType))) {
    if (Array.isArray(raw.manifests)) mediaType = mediaTypes.ociIndex;
    else if (raw.config !== undefined) mediaType = mediaTypes.ociManifest;
    else throw bad(where, `unsupported media type ${JSON.stringify(mediaType ?? null)}`);
  }
  if (indexTypes.has(mediaType)) {
    if (!Array.isArray(raw.manifests)) throw bad(where, "an index without a manifests list");
    return { kind: "index", mediaType, manifests: raw.manifests.map((m, i) => indexEntry(m, `${where} manifests[${i}]`)) };
  }
  if (!Array.isArray(raw.layers)) throw bad(where, "an image manifest without a layers list");
  return {
    kind: "image",
    mediaType,
    config: descriptor(raw.config, `${where} config`),
    layers: raw.layers.map((l, i) => descriptor(l, `${where} layers[${i}]`)),
  };
}

function descriptor(value: unknown, where: string): Descriptor {
  if (typeof value !== "object" || value === null) throw bad(where, "a descriptor is not an object");
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== "string") throw bad(where, "a descriptor has no mediaType");
  if (typeof d.digest !== "string") throw bad(where, "a descriptor has no digest");
  digestHexOf(d.digest, where);
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) throw bad(where, "a descriptor has no valid size");
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

function indexEntry(value: unknown, where: string): IndexEntry {
  const entry: IndexEntry = descriptor(value, where);
  const d = value as Record<string, unknown>;
  const p = d.platform as Record<string, unknown> | undefined;
  if (typeof p === "object" && p !== null && typeof p.os === "string" && typeof p.architecture === "string") {
    entry.platform = { os: p.os, architecture: p.architecture, ...(typeof p.variant === "string" && p.variant !== "" ? { variant: p.variant } : {}) };
  }
  if (typeof d.annotations === "object" && d.annotations !== null) entry.annotations = d.annotations as Record<string, string>;
  return entry;
}

function bad(where: string, why: string, cause?: unknown): SkiffError {
  return new SkiffError("ERR_SKIFF_REGISTRY", `manifest ${where} is invalid: ${why}`, {
    hint: "the registry served something that is not an image manifest",
    ...(cause === undefined ? {} : { cause }),
    details: { where },
  });
}

