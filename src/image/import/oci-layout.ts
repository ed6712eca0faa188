/**
 * An OCI image layout (image-spec image-layout.md): `oci-layout`,
 * `index.json`, `blobs/sha256/…` — as a directory, a tar of one, or the
 * layout Docker 25+ writes inside `docker save`. index.json is the root;
 * every blob under it is checked against its digest (manifests and configs
 * here, layers as they are unpacked). The base is named by the image
 * manifest's digest, the same as a pull of that image from a registry.
 */
import type { Platform } from "../oci/types.js";
import { type Descriptor, type IndexEntry, parseManifest } from "../registry/manifest.js";
import { parseImageConfig } from "../registry/image-config.js";
import { defaultPlatform, selectPlatform } from "../registry/platform.js";
import type { BaseSource } from "../unpack/build.js";
import { badImport } from "../unpack/errors.js";
import { asArchive, checkPlatform, chooseImage } from "./choose.js";
import { blobName, type ImageFiles, parseJson, readSmall } from "./files.js";

export interface ArchiveImportOptions {
  /** Name for the record when the archive names none. */
  fallbackName: string;
  /** The record's name, overriding the archive's. */
  name?: string;
  /** Which image, when the archive holds several. */
  ref?: string;
  platform?: Platform;
  /** Free-form origin for the record. */
  source: string;
}

export function isOciLayout(files: ImageFiles): boolean {
  return files.locate("oci-layout") !== undefined && files.locate("index.json") !== undefined;
}

/** The names an index entry carries: containerd's full reference first, then the OCI ref name. */
function namesOf(entry: IndexEntry): string[] {
  const a = entry.annotations ?? {};
  return [a["io.containerd.image.name"], a["org.opencontainers.image.ref.name"]].filter((n): n is string => typeof n === "string" && n !== "");
}

export async function ociLayoutSource(files: ImageFiles, opts: ArchiveImportOptions): Promise<BaseSource> {
  const where = files.where;
  const layout = parseJson(await readSmall(files, "oci-layout"), where, "oci-layout") as { imageLayoutVersion?: unknown } | null;
  if (typeof layout?.imageLayoutVersion !== "string") throw badImport(where, "oci-layout has no imageLayoutVersion");
  const indexBytes = await readSmall(files, "index.json");
  const index = asArchive(where, () => parseManifest(indexBytes, `${where}:index.json`));
  if (index.kind !== "index") throw badImport(where, "index.json is not an image index");
  // Entries that name the same image (one per platform) count as one image.
  const groups = new Map<string, IndexEntry[]>();
  for (const entry of index.manifests) {
    const key = namesOf(entry)[0] ?? "";
    groups.set(key, [...(groups.get(key) ?? []), entry]);
  }
  const group = chooseImage([...groups.values()], (entries) => namesOf(entries[0]!), where, opts.ref);
  const top = group[0]!;
  const manifest = await resolveImageManifest(files, group, opts.platform);
  const configBytes = await readSmall(files, blobName(manifest.config.digest, where), manifest.config.digest);
  const config = asArchive(where, () => parseImageConfig(configBytes, `${where}:${manifest.config.digest}`));
  checkPlatform(config.platform, opts.platform, where);
  if (config.diffIds.length !== manifest.layers.length) {
    throw badImport(where, `the config lists ${config.diffIds.length} layers, the manifest ${manifest.layers.length}`);
  }
  const archiveName = namesOf(top).find((n) => n.includes("/") || n.includes(":"));
  return {
    digest: manifest.digest,
    name: opts.name ?? archiveName ?? refTag(opts.fallbackName, namesOf(top)[0]),
    ...(archiveName === undefined ? {} : { ref: archiveName }),
    layers: manifest.layers.map((layer, i) => {
      const name = blobName(layer.digest, where);
      const range = files.locate(name);
      if (range === undefined) throw badImport(where, `layer blob ${name} is missing`);
      return { ...range, mediaType: layer.mediaType, digest: layer.digest, size: layer.size, diffId: config.diffIds[i]! };
    }),
    config: config.runtime,
    configDigest: manifest.config.digest,
    ...(config.platform === undefined ? {} : { platform: config.platform }),
    source: opts.source,
  };
}

/** "app" + ref name "1.2" → "app:1.2" (an OCI ref name is often only a tag). */
function refTag(fallback: string, tag: string | undefined): string {
  return tag === undefined ? fallback : `${fallback}:${tag}`;
}

interface ImageManifest {
  digest: string;
  config: Descriptor;
  layers: Descriptor[];
}

/** Follow indexes (nested ones too) down to one image manifest, choosing by platform where there are several. */
async function resolveImageManifest(files: ImageFiles, entries: IndexEntry[], platform: Platform | undefined): Promise<ImageManifest> {
  const where = files.where;
  for (let depth = 0; depth < 4; depth++) {
    const entry = entries.length === 1 ? entries[0]! : asArchive(where, () => selectPlatform(entries, platform ?? defaultPlatform, where));
    const bytes = await readSmall(files, blobName(entry.digest, where), entry.digest);
    const manifest = asArchive(where, () => parseManifest(bytes, `${where}:${entry.digest}`, entry.mediaType));
    if (manifest.kind === "image") return { digest: entry.digest, config: manifest.config, layers: manifest.layers };
    entries = manifest.manifests;
  }
  throw badImport(where, "indexes nested more than 4 deep");
}
