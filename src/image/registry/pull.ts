/**
 * Pull an image into the content store: resolve the reference to an image
 * manifest (through an index, by platform), then fetch the config and the
 * layers, three at a time, each verified. Everything is content-addressed,
 * so what is already stored is not fetched again; a reference by digest
 * whose blobs are all stored makes no request at all, while a tag costs one
 * HEAD to learn what it points to now (a registry that does not say falls
 * back to GET by tag).
 *
 * `startPull` stops after the config, so that a caller who builds the
 * image's base can hand in a feed per layer and apply each one as it
 * arrives (blob-feed.ts); `pullImage` is both steps.
 */
import { SkiffError } from "../../errors.js";
import type { ImageReference, LayerDescriptor, Platform, PulledImage, PullEvent } from "../oci/types.js";
import type { BlobFeed } from "./blob-feed.js";
import { hasBlob, makeStoreDirs, readBlob } from "./blob-store.js";
import { RegistryClient } from "./client.js";
import { parseImageConfig } from "./image-config.js";
import { parseManifest, type Manifest } from "./manifest.js";
import { defaultPlatform, formatPlatform, normalizePlatform, parsePlatform, platformError, platformMatches, selectPlatform } from "./platform.js";
import { dockerHubRegistry, parseReference } from "./reference.js";
import { readRefIndex, updateRefs } from "./refs.js";

export interface PullOptions {
  /** The image cache (blobs land in `<cacheDir>/blobs/sha256/`). */
  cacheDir: string;
  /** "linux/arm64/v8" or a Platform; default linux/amd64. */
  platform?: string | Platform;
  /** Registries to speak plain HTTP to (loopback ones always are). */
  insecureRegistries?: readonly string[];
  /**
   * Docker Hub mirrors (Docker's registry-mirrors: "https://mirror.gcr.io",
   * "http://10.0.0.5:5000"), tried in order before Docker Hub; SKIFF_REGISTRY_MIRRORS
   * (comma-separated) adds to them. Only Docker Hub images go through them, as with Docker.
   */
  mirrors?: readonly string[];
  /** skiff home, for credentials (`<home>/auth.json`). */
  home?: string;
  env?: NodeJS.ProcessEnv;
  onEvent?: (event: PullEvent) => void;
  signal?: AbortSignal;
  /** Where the reference came from, for errors ("IMAGE argument", "skiff.yml:4"). */
  place?: string;
  /** Parallel layer downloads (default 3). */
  concurrency?: number;
  /** Stand-in for the global fetch (tests). */
  fetch?: typeof fetch;
}

const progressIntervalMs = 100;

export async function pullImage(input: string | ImageReference, opts: PullOptions): Promise<PulledImage> {
  return (await startPull(input, opts)).complete();
}

/** A pull whose manifest and config are in the store; its layers are not fetched yet. */
export interface StartedPull {
  /** The image as it will be once the layers are in. */
  readonly image: PulledImage;
  /**
   * Fetch the layers not stored yet and record what the reference means.
   * A feed given for a layer's digest gets its bytes as they arrive, is
   * released if the blob was stored already, and fails if the pull does.
   */
  complete(feeds?: ReadonlyMap<string, BlobFeed>): Promise<PulledImage>;
}

export async function startPull(input: string | ImageReference, opts: PullOptions): Promise<StartedPull> {
  const ref = typeof input === "string" ? parseReference(input, opts.place) : input;
  const want = opts.platform === undefined ? defaultPlatform : typeof opts.platform === "string" ? parsePlatform(opts.platform, "platform") : normalizePlatform(opts.platform);
  const { cacheDir } = opts;
  // While the first request is on its way; ingestBlob makes them anyway, and reports a failure.
  makeStoreDirs(cacheDir).catch(() => {});
  const emit = opts.onEvent ?? (() => {});
  // One failed layer stops the others, and we wait for them to clean up
  // before reporting, so the cache holds no temp files when we return.
  const stop = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
  const mirrors = ref.registry === dockerHubRegistry ? mirrorHosts([...(opts.mirrors ?? []), ...envMirrors(opts.env ?? process.env)]) : [];
  const clientFor = (host: string, insecure: boolean) =>
    new RegistryClient({
      registry: host,
      signal,
      insecureRegistries: [...(opts.insecureRegistries ?? []), ...(insecure ? [host] : [])],
      ...(opts.home === undefined ? {} : { home: opts.home }),
      ...(opts.env === undefined ? {} : { env: opts.env }),
      ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
    });
  let client: RegistryClient | undefined;
  const registry = () => (client ??= clientFor(ref.registry, false));

  const loadManifest = async (digest: string): Promise<Manifest> => {
    if (await hasBlob(cacheDir, digest)) return parseManifest(await readBlob(cacheDir, digest), `${ref.registry}/${ref.repository}@${digest}`);
    const fetched = await registry().fetchManifest(ref, digest, cacheDir);
    return parseManifest(fetched.bytes, `${ref.registry}/${ref.repository}@${digest}`, fetched.contentType);
  };

  /**
   * The first mirror that does `probe` serves the whole pull; one that is
   * down, refuses or lacks the image is passed over, and Docker Hub itself
   * is the last resort, whose error is the one reported.
   */
  const viaMirrors = async <T>(probe: () => Promise<T>): Promise<T> => {
    for (const mirror of mirrors) {
      client = clientFor(mirror.host, mirror.insecure);
      try {
        const found = await probe();
        emit({ type: "mirror", ref: ref.canonical, mirror: mirror.host });
        return found;
      } catch (err) {
        if (opts.signal?.aborted) throw err;
      }
    }
    client = undefined;
    return probe();
  };

  // 1. What the reference names now. A digest wins over a tag, as in Docker.
  let topDigest: string;
  let top: Manifest;
  if (ref.digest !== undefined) {
    topDigest = ref.digest;
    const digest = ref.digest;
    top = (await hasBlob(cacheDir, digest)) ? await loadManifest(digest) : await viaMirrors(() => loadManifest(digest));
  } else {
    const tag = ref.tag ?? "latest";
    const current = await viaMirrors(() => registry().resolveTag(ref, tag));
    if (current !== undefined) {
      // By digest from here on: a stored manifest is reused, a fetched one is checked against it.
      topDigest = current;
      top = await loadManifest(current);
    } else {
      const fetched = await registry().fetchManifest(ref, tag, cacheDir);
      topDigest = fetched.digest;
      top = parseManifest(fetched.bytes, ref.canonical, fetched.contentType);
    }
  }

  // 2. An index names one manifest per platform.
  let manifestDigest = topDigest;
  let indexDigest: string | undefined;
  let image = top;
  let platform: Platform | undefined;
  if (top.kind === "index") {
    const entry = selectPlatform(top.manifests, want, ref.canonical);
    indexDigest = topDigest;
    manifestDigest = entry.digest;
    platform = normalizePlatform(entry.platform);
    image = await loadManifest(manifestDigest);
  }
  if (image.kind !== "image") {
    throw new SkiffError("ERR_SKIFF_REGISTRY", `${ref.canonical}: the index for ${formatPlatform(want)} points to another index`, {
      hint: "nested indexes are not supported",
      place: ref.canonical,
    });
  }
  const layers: LayerDescriptor[] = image.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }));
  emit({ type: "resolved", ref: ref.canonical, manifestDigest, layers });

  // 3. The config first: it says the platform of a single-manifest image, so a wrong one fails before the layers.
  await ensureBlob(registry, ref, image.config, cacheDir);
  const config = parseImageConfig(await readBlob(cacheDir, image.config.digest), `${ref.canonical} config`);
  if (platform === undefined) {
    if (config.platform && !platformMatches(config.platform, want)) throw platformError(ref.canonical, want, [config.platform]);
    platform = config.platform ? normalizePlatform(config.platform) : want;
  }
  const pulled: PulledImage = {
    reference: ref,
    manifestDigest,
    ...(indexDigest === undefined ? {} : { indexDigest }),
    configDigest: image.config.digest,
    platform,
    layers,
    config: config.runtime,
    diffIds: config.diffIds,
  };

  const complete = async (feeds?: ReadonlyMap<string, BlobFeed>): Promise<PulledImage> => {
    // 4. The layers, a few at a time; each one distinct digest once.
    const distinct = [...new Map(layers.map((l) => [l.digest, l])).values()];
    const outcomes = await mapLimit(distinct, opts.concurrency ?? 3, async (layer) => {
      const feed = feeds?.get(layer.digest);
      if (signal.aborted) throw signal.reason;
      if (await hasBlob(cacheDir, layer.digest, layer.size)) {
        feed?.release();
        feed?.end();
        emit({ type: "layer-cached", digest: layer.digest, size: layer.size });
        return;
      }
      let last = 0;
      try {
        await registry().fetchBlob(ref, layer, cacheDir, {
          onProgress: (received) => {
            const now = Date.now();
            if (now - last < progressIntervalMs) return;
            last = now;
            emit({ type: "layer-progress", digest: layer.digest, received, size: layer.size });
          },
          ...(feed === undefined ? {} : { onChunk: (chunk: Uint8Array) => feed.push(chunk), onVerified: () => feed.matched() }),
        });
      } catch (err) {
        feed?.fail(err);
        stop.abort(err);
        throw err;
      }
      feed?.end();
      emit({ type: "layer-done", digest: layer.digest, size: layer.size });
    });
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
    if (failed) {
      const cause = firstCause(failed.reason, stop.signal);
      // Layers never started (or stopped by the abort) must not leave a reader waiting.
      for (const feed of feeds?.values() ?? []) feed.fail(cause);
      throw cause;
    }

    // 5. Remember what the reference meant.
    const repo = `${ref.registry}/${ref.repository}`;
    await updateRefs(cacheDir, {
      [ref.canonical]: manifestDigest,
      [`${repo}@${manifestDigest}`]: manifestDigest,
      ...(indexDigest === undefined ? {} : { [`${repo}@${indexDigest}`]: manifestDigest }),
    });
    emit({ type: "done", ref: ref.canonical, manifestDigest });
    return pulled;
  };
  return { image: pulled, complete };
}

/**
 * A pulled image rebuilt from the store alone (no network). `reference`
 * defaults to one recorded for this manifest in the ref index, a tag if
 * there is one.
 */
export async function readPulledImage(cacheDir: string, manifestDigest: string, reference?: ImageReference): Promise<PulledImage> {
  const refs = await readRefIndex(cacheDir);
  const names = Object.keys(refs).filter((k) => refs[k] === manifestDigest);
  const chosen = reference ?? pickReference(names);
  if (!chosen) {
    throw new SkiffError("ERR_SKIFF_IMAGE_NOT_FOUND", `no pulled image has manifest ${manifestDigest}`, {
      hint: "pull the image first (`skiff image pull REF`)",
      details: { manifestDigest },
    });
  }
  const where = `${chosen.registry}/${chosen.repository}@${manifestDigest}`;
  const manifest = parseManifest(await readBlob(cacheDir, manifestDigest), where);
  if (manifest.kind !== "image") {
    throw new SkiffError("ERR_SKIFF_IMAGE_NOT_FOUND", `${manifestDigest} is an index, not an image manifest`, {
      hint: "pass the digest of the platform's manifest (PulledImage.manifestDigest)",
    });
  }
  const config = parseImageConfig(await readBlob(cacheDir, manifest.config.digest), `${where} config`);
  for (const layer of manifest.layers) {
    if (!(await hasBlob(cacheDir, layer.digest, layer.size))) {
      throw new SkiffError("ERR_SKIFF_IMAGE_NOT_FOUND", `layer ${layer.digest} of ${chosen.canonical} is not in the cache`, {
        hint: `pull it again: skiff image pull ${chosen.canonical}`,
        details: { manifestDigest, layer: layer.digest },
      });
    }
  }
  const repo = `${chosen.registry}/${chosen.repository}@`;
  const indexDigest = names.find((k) => k.startsWith(repo) && k !== `${repo}${manifestDigest}`)?.slice(repo.length);
  return {
    reference: chosen,
    manifestDigest,
    ...(indexDigest === undefined ? {} : { indexDigest }),
    configDigest: manifest.config.digest,
    platform: config.platform ? normalizePlatform(config.platform) : defaultPlatform,
    layers: manifest.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    config: config.runtime,
    diffIds: config.diffIds,
  };
}

function pickReference(names: string[]): ImageReference | undefined {
  const tagged = names.find((n) => !n.includes("@"));
  const name = tagged ?? names[0];
  return name === undefined ? undefined : parseReference(name);
}

async function ensureBlob(
  registry: () => RegistryClient,
  ref: ImageReference,
  blob: { digest: string; size: number },
  cacheDir: string,
): Promise<void> {
  if (!(await hasBlob(cacheDir, blob.digest, blob.size))) await registry().fetchBlob(ref, blob, cacheDir);
}

/** The error that started a failure, not the aborts it caused in the other downloads. */
function firstCause(reason: unknown, stopped: AbortSignal): unknown {
  return stopped.aborted ? stopped.reason : reason;
}

/** Run `fn` over `items`, at most `limit` at once; every outcome, once all have settled. */
async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<PromiseSettledResult<void>[]> {
  const outcomes: PromiseSettledResult<void>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!);
        outcomes[i] = { status: "fulfilled", value: undefined };
      } catch (reason) {
        outcomes[i] = { status: "rejected", reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return outcomes;
}

/** Mirrors as registry hosts: "http://" ones spoken to in plain HTTP; a path after the host is not supported (Docker's neither). */
export function mirrorHosts(mirrors: readonly string[]): { host: string; insecure: boolean }[] {
  const out: { host: string; insecure: boolean }[] = [];
  for (const raw of mirrors) {
    const text = raw.trim();
    if (text === "") continue;
    let url: URL;
    try {
      url = new URL(/^[a-z]+:\/\//i.test(text) ? text : `https://${text}`);
    } catch {
      throw new SkiffError("ERR_SKIFF_USAGE", `registry mirror ${JSON.stringify(text)} is not a URL`, { place: "registry-mirrors", hint: "e.g. https://mirror.gcr.io" });
    }
    if ((url.protocol !== "http:" && url.protocol !== "https:") || (url.pathname !== "/" && url.pathname !== "")) {
      throw new SkiffError("ERR_SKIFF_USAGE", `registry mirror ${JSON.stringify(text)} must be http(s)://HOST[:PORT]`, { place: "registry-mirrors", hint: "e.g. https://mirror.gcr.io" });
    }
    out.push({ host: url.host, insecure: url.protocol === "http:" });
  }
  return out;
}

function envMirrors(env: NodeJS.ProcessEnv): string[] {
  return (env.SKIFF_REGISTRY_MIRRORS ?? "").split(",");
}
