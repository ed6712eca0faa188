/**
 * A `docker save` archive in the classic form: `manifest.json` (a list of
 * {Config, RepoTags, Layers}), the config as `<hex>.json`, each layer as an
 * uncompressed `<id>/layer.tar` (Docker 25+ archives also carry an OCI
 * layout, which import prefers). There is no manifest digest, so the base
 * is named by the config's digest, which pins every layer through its
 * diff_ids; each layer is checked against its diff_id as it is unpacked.
 */
import { createHash } from "node:crypto";
import { parseImageConfig } from "../registry/image-config.js";
import type { BaseSource } from "../unpack/build.js";
import { badImport } from "../unpack/errors.js";
import { asArchive, checkPlatform, chooseImage } from "./choose.js";
import { type ImageFiles, parseJson, readSmall, verify } from "./files.js";
import type { ArchiveImportOptions } from "./oci-layout.js";

interface SavedImage {
  Config: string;
  RepoTags: string[];
  Layers: string[];
  /** Docker's descriptors of foreign/compressed layers, by diff_id. */
  LayerSources?: Record<string, { mediaType?: unknown }>;
}

/** True when the files hold a manifest.json shaped like `docker save`'s. */
export async function isDockerSave(files: ImageFiles): Promise<boolean> {
  if (files.locate("manifest.json") === undefined) return false;
  try {
    return savedImages(parseJson(await readSmall(files, "manifest.json"), files.where, "manifest.json")) !== undefined;
  } catch {
    return false;
  }
}

function savedImages(value: unknown): SavedImage[] | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const images: SavedImage[] = [];
  for (const item of value as Record<string, unknown>[]) {
    if (typeof item !== "object" || item === null || typeof item.Config !== "string" || !Array.isArray(item.Layers)) return undefined;
    if (!item.Layers.every((l): l is string => typeof l === "string")) return undefined;
    const tags = Array.isArray(item.RepoTags) ? item.RepoTags.filter((t): t is string => typeof t === "string") : [];
    images.push({
      Config: item.Config,
      RepoTags: tags,
      Layers: item.Layers,
      ...(typeof item.LayerSources === "object" && item.LayerSources !== null ? { LayerSources: item.LayerSources as SavedImage["LayerSources"] } : {}),
    });
  }
  return images;
}

/** The digest a blob's name promises: "<hex>.json" (classic) or "blobs/sha256/<hex>" (Docker 25+). */
function digestInName(name: string): string | undefined {
  const hex = /(?:^|\/)(?:blobs\/sha256\/)?([a-f0-9]{64})(?:\.json)?$/.exec(name)?.[1];
  return hex === undefined ? undefined : `sha256:${hex}`;
}

export async function dockerSaveSource(files: ImageFiles, opts: ArchiveImportOptions): Promise<BaseSource> {
  const where = files.where;
  const images = savedImages(parseJson(await readSmall(files, "manifest.json"), where, "manifest.json"));
  if (images === undefined) throw badImport(where, "manifest.json is not a `docker save` manifest");
  const image = chooseImage(images, (i) => i.RepoTags, where, opts.ref);
  const configBytes = await readSmall(files, image.Config);
  const configDigest = `sha256:${createHash("sha256").update(configBytes).digest("hex")}`;
  const promised = digestInName(image.Config);
  if (promised !== undefined) verify(files, image.Config, configBytes, promised);
  const config = asArchive(where, () => parseImageConfig(configBytes, `${where}:${image.Config}`));
  checkPlatform(config.platform, opts.platform, where);
  if (config.diffIds.length !== image.Layers.length) {
    throw badImport(where, `the config lists ${config.diffIds.length} layers, manifest.json ${image.Layers.length}`);
  }
  const tag = image.RepoTags[0];
  return {
    digest: configDigest,
    name: opts.name ?? tag ?? opts.fallbackName,
    ...(tag === undefined ? {} : { ref: tag }),
    layers: image.Layers.map((name, i) => {
      const range = files.locate(name);
      if (range === undefined) throw badImport(where, `layer ${name} is missing`);
      const diffId = config.diffIds[i]!;
      const declared = image.LayerSources?.[diffId]?.mediaType;
      const digest = name.startsWith("blobs/") ? digestInName(name) : undefined;
      return {
        ...range,
        label: `${where}:${name}`,
        mediaType: typeof declared === "string" ? declared : "application/vnd.docker.image.rootfs.diff.tar",
        diffId,
        ...(digest === undefined ? {} : { digest }),
      };
    }),
    config: config.runtime,
    configDigest,
    ...(config.platform === undefined ? {} : { platform: config.platform }),
    source: opts.source,
  };
}
