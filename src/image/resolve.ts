/**
 * From what a user typed (`base`, `base:latest`) to a base file a VM's
 * overlay can sit on. Only the built-in image exists for now; registry
 * images will resolve here too once `skiff image pull` exists.
 */
import { SkiffError } from "../errors.js";
import type { Runner } from "../process/runner.js";
import { skiffPaths } from "../store/paths.js";
import { ensureBaseImage, type ImageEvent } from "./base.js";
import type { ImageRuntimeConfig } from "./oci/types.js";

export { listImages, type CachedImage } from "./cache.js";

export interface ResolvedImage {
  /** The reference as given. */
  ref: string;
  name: string;
  /** Content address of the base, "sha256:<hex>". */
  digest: string;
  /** The read-only ext4 base (mode 0444) for the VM's qcow2 overlay. */
  basePath: string;
  /** Disk size the guest sees. */
  sizeBytes: number;
  builtin: boolean;
  /** ISO time the base was made. */
  createdAt: string;
  /** What `run` honours: Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts. */
  config: ImageRuntimeConfig;
}

/** The built-in image's config: a shell, like busybox's own image. */
export const baseRuntimeConfig: ImageRuntimeConfig = {
  entrypoint: [],
  cmd: ["/bin/sh"],
  env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" },
  exposedPorts: [],
  labels: {},
};

export interface ResolveOptions {
  /** Default: the cache of the resolved skiff paths (SKIFF_CACHE, SKIFF_HOME, XDG). */
  cacheDir?: string;
  runner?: Runner;
  onEvent?: (event: ImageEvent) => void;
  /** Where the reference came from, for the error ("IMAGE argument", "skiff.yml:4"). */
  place?: string;
}

export const builtinImages = ["base"] as const;

/** "base" and "base:latest" name the built-in image; undefined for anything else. */
export function builtinName(ref: string): (typeof builtinImages)[number] | undefined {
  return ref === "base" || ref === "base:latest" ? "base" : undefined;
}

export async function resolveImage(ref: string, opts: ResolveOptions = {}): Promise<ResolvedImage> {
  const name = builtinName(ref);
  if (name === undefined) {
    throw new SkiffError("ERR_SKIFF_IMAGE_NOT_FOUND", `image not found: ${ref}`, {
      hint: "the built-in image is `base`; OCI registry images come with `skiff image pull` (not yet available)",
      ...(opts.place === undefined ? {} : { place: opts.place }),
      details: { ref, builtin: [...builtinImages] },
    });
  }
  const image = await ensureBaseImage({
    cacheDir: opts.cacheDir ?? skiffPaths().cache,
    ...(opts.runner === undefined ? {} : { runner: opts.runner }),
    ...(opts.onEvent === undefined ? {} : { onEvent: opts.onEvent }),
  });
  return {
    ref,
    name,
    digest: image.digest,
    basePath: image.basePath,
    sizeBytes: image.sizeBytes,
    builtin: true,
    createdAt: image.createdAt,
    config: baseRuntimeConfig,
  };
}
