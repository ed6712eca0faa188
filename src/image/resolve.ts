/**
 * From what a user typed (`base`, a local image name, an OCI reference) to a
 * base file a VM's overlay can sit on, pulling and converting it when it is
 * not here yet.
 */
import { SkiffError } from "../errors.js";
import type { Runner } from "../process/runner.js";
import { skiffPaths } from "../store/paths.js";
import { ensureBaseImage } from "./base.js";
import type { ImageRuntimeConfig, PullEvent } from "./oci/types.js";

export { listImages, type CachedImage } from "./cache.js";
import { cachedImage, listImages, type CachedImage } from "./cache.js";
import type { StartedPull } from "./registry/pull.js";
import { familiarReference, parseReference } from "./registry/reference.js";
import { lookupRef } from "./registry/refs.js";
import type { BuildEvent } from "./unpack/build.js";

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
  onEvent?: (event: BuildEvent) => void;
  /** Where the reference came from, for the error ("IMAGE argument", "skiff.yml:4"). */
  place?: string;
}

export const builtinImages = ["base"] as const;

/** "base" and "base:latest" name the built-in image; undefined for anything else. */
export function builtinName(ref: string): (typeof builtinImages)[number] | undefined {
  return ref === "base" || ref === "base:latest" ? "base" : undefined;
}

export interface ResolveOciOptions extends ResolveOptions {
  /** skiff home, for registry credentials. */
  home?: string;
  platform?: string;
  insecureRegistries?: readonly string[];
  onPull?: (event: PullEvent) => void;
  /** "missing" (default, like docker run), "always" (like docker pull), "never". */
  pull?: "missing" | "always" | "never";
}

/**
 * What `run`/`create` boot: the built-in `base`, an image imported or pulled
 * earlier (by its local name or reference), or — when missing — an OCI image
 * pulled from its registry and turned into a base once per manifest digest.
 */
export async function resolveImage(ref: string, opts: ResolveOciOptions = {}): Promise<ResolvedImage> {
  const name = builtinName(ref);
  if (name === undefined) return resolveOci(ref, opts);
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

function fromCached(ref: string, image: CachedImage): ResolvedImage {
  return {
    ref,
    name: image.name ?? ref,
    digest: image.digest,
    basePath: image.basePath,
    sizeBytes: image.sizeBytes,
    builtin: image.builtin,
    createdAt: image.createdAt,
    config: image.config ?? baseRuntimeConfig,
  };
}

async function resolveOci(ref: string, opts: ResolveOciOptions): Promise<ResolvedImage> {
  const cacheDir = opts.cacheDir ?? skiffPaths().cache;
  const pull = opts.pull ?? "missing";
  // Local names first (imports, `--name`d pulls), as Docker's local images shadow the registry.
  if (pull !== "always") {
    const local = (await listImages(cacheDir)).find((i) => !i.builtin && (i.name === ref || i.digest === ref));
    if (local) return fromCached(ref, local);
  }
  const reference = parseReference(ref, opts.place);
  if (pull !== "always") {
    const digest = reference.digest ?? (await lookupRef(cacheDir, reference.canonical));
    const cached = digest === undefined ? undefined : await cachedImage(cacheDir, digest);
    if (cached) return fromCached(ref, cached);
  }
  if (pull === "never") {
    throw new SkiffError("ERR_SKIFF_IMAGE_NOT_FOUND", `image not found locally: ${ref}`, {
      hint: `pull it with \`skiff image pull ${ref}\``,
      ...(opts.place === undefined ? {} : { place: opts.place }),
    });
  }
  // The registry client, the unpacker and tar are loaded for a pull only: an image in the cache (every `run` of
  // one after its first) needs none of them, and loading them cost each such command ~40 modules.
  const [{ sweepImageStaging }, { startPull }] = await Promise.all([import("./staging.js"), import("./registry/pull.js")]);
  // What killed pulls and imports left in the cache goes before this one adds its own.
  await sweepImageStaging(cacheDir);
  // The pull is stopped if the build fails; the build fails if the pull does (through the feeds).
  const stop = new AbortController();
  const started = await startPull(reference, {
    cacheDir,
    signal: stop.signal,
    ...(opts.platform === undefined ? {} : { platform: opts.platform }),
    ...(opts.insecureRegistries === undefined ? {} : { insecureRegistries: opts.insecureRegistries }),
    ...(opts.home === undefined ? {} : { home: opts.home }),
    ...(opts.onPull === undefined ? {} : { onEvent: opts.onPull }),
    ...(opts.place === undefined ? {} : { place: opts.place }),
  });
  const ready = await cachedImage(cacheDir, started.image.manifestDigest);
  if (ready) {
    await started.complete();
    return fromCached(ref, ready);
  }
  return fromCached(ref, await pullAndBuild(started, stop, { ...opts, cacheDir, name: familiarReference(reference) }));
}

/**
 * The layers' downloads and the base's build at once: each layer is applied
 * as its bytes arrive (registry/blob-feed.ts), the next ones downloading
 * meanwhile. A failed download fails the build through its feed; a failed
 * build stops the downloads, and is reported once they have cleaned up.
 */
async function pullAndBuild(pull: StartedPull, stop: AbortController, opts: ResolveOptions & { cacheDir: string; name: string }): Promise<CachedImage> {
  const { cacheDir } = opts;
  const [{ feedsFor }, { baseSourceFromPulled }, { buildImageBase }] = await Promise.all([
    import("./registry/blob-feed.js"),
    import("./unpack/pulled.js"),
    import("./unpack/build.js"),
  ]);
  const feeds = feedsFor([...new Set(pull.image.layers.map((l) => l.digest))]);
  const pulling = pull.complete(feeds);
  pulling.catch(() => {});
  let base: CachedImage;
  try {
    const source = await baseSourceFromPulled(cacheDir, pull.image, { name: opts.name, feeds });
    base = await buildImageBase({
      cacheDir,
      image: source,
      ...(opts.runner === undefined ? {} : { runner: opts.runner }),
      ...(opts.onEvent === undefined ? {} : { onEvent: opts.onEvent }),
    });
  } catch (err) {
    stop.abort(err);
    for (const feed of feeds.values()) feed.release();
    await pulling.catch(() => {});
    throw err;
  } finally {
    // A base that was built meanwhile by another process reads no feed: the downloads go on to the store.
    for (const feed of feeds.values()) feed.release();
  }
  await pulling;
  return base;
}
