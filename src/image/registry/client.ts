/**
 * The OCI distribution API of one registry: manifests and blobs, each
 * verified against its digest before it reaches the content store.
 */
import { SkiffError } from "../../errors.js";
import type { ImageReference } from "../oci/types.js";
import { endedEarly, ingestBlob, sha256Digest, writeBlob, type BlobSink, type BlobTarget } from "./blob-store.js";
import { bodyChunks } from "./http-fetch.js";
import { manifestAccept } from "./manifest.js";
import { errorSummary, Transport, type GuardedResponse, type TransportOptions } from "./transport.js";

export type RegistryClientOptions = TransportOptions;

export interface FetchedManifest {
  digest: string;
  /** From the Content-Type header. */
  contentType: string | undefined;
  bytes: Buffer;
}

export interface FetchBlobOptions {
  /** Told the bytes received so far, as they arrive. */
  onProgress?: (received: number) => void;
  /**
   * Each chunk once it is hashed and queued for the temp file, in order, each
   * byte once (also across a retry); the blob is verified only when
   * fetchBlob resolves. A returned promise holds the download back until it
   * settles.
   */
  onChunk?: (chunk: Uint8Array) => void | Promise<void>;
  /** The blob has matched its digest; fetchBlob resolves once it is also stored. */
  onVerified?: () => void;
}

/** One blob download, across its tries. */
interface BlobJob {
  ref: ImageReference;
  target: BlobTarget;
  /** Names the registry in errors. */
  source: string;
  opts: FetchBlobOptions;
  /** What a try that broke off had handed to onChunk: how many bytes, and their sha256. */
  handed?: { bytes: number; digest: string };
}

/** Manifests are small; anything bigger is not one, and is not read into memory. */
const maxManifestBytes = 4 * 1024 * 1024;

export class RegistryClient {
  readonly transport: Transport;

  constructor(opts: RegistryClientOptions) {
    this.transport = new Transport(opts);
  }

  get registry(): string {
    return this.transport.registry;
  }

  /** GET /v2/: is the registry there, and do our credentials pass? */
  async ping(): Promise<void> {
    const { response, done } = await this.transport.request("/v2/");
    done();
    const why = await errorSummary(response);
    if (!response.ok) {
      throw new SkiffError("ERR_SKIFF_REGISTRY", `${this.registry} does not answer as a registry: GET /v2/ gave HTTP ${response.status}${why ? ` (${why})` : ""}`, {
        place: this.registry,
      });
    }
  }

  /**
   * The digest a tag points to now (HEAD, no body), or undefined if the
   * registry does not say; ERR_SKIFF_IMAGE_NOT_FOUND if there is no such tag.
   */
  async resolveTag(ref: ImageReference, tag: string): Promise<string | undefined> {
    const guarded = await this.transport.request(manifestPath(ref, tag), {
      method: "HEAD",
      headers: { accept: manifestAccept },
      scope: pullScope(ref),
    });
    guarded.done();
    const { response } = guarded;
    // Some registries answer HEAD badly (405, 5xx); the GET that follows will tell the real story.
    if (!response.ok && response.status !== 404) return undefined;
    await this.#check(guarded, ref, "manifest");
    const digest = response.headers.get("docker-content-digest") ?? undefined;
    return digest && /^sha256:[a-f0-9]{64}$/.test(digest) ? digest : undefined;
  }

  /**
   * GET a manifest by tag or digest, verify it (by digest: must hash to it;
   * by tag: must match Docker-Content-Digest when the registry sends one),
   * and store it in the content store under its digest.
   */
  async fetchManifest(ref: ImageReference, reference: string, cacheDir: string): Promise<FetchedManifest> {
    const byDigest = reference.startsWith("sha256:");
    const guarded = await this.transport.request(manifestPath(ref, reference), {
      headers: { accept: manifestAccept },
      scope: pullScope(ref),
    });
    await this.#check(guarded, ref, "manifest");
    const { response } = guarded;
    const length = Number(response.headers.get("content-length") ?? "0");
    if (length > maxManifestBytes) {
      guarded.done();
      await response.body?.cancel();
      throw new SkiffError("ERR_SKIFF_REGISTRY", `manifest ${ref.canonical} is ${length} bytes, more than a manifest can be`, { place: ref.canonical });
    }
    let bytes: Buffer;
    try {
      bytes = await this.transport.readBody(guarded, maxManifestBytes, () => new SkiffError("ERR_SKIFF_REGISTRY", `manifest ${ref.canonical} is larger than ${maxManifestBytes} bytes`));
    } finally {
      guarded.done();
    }
    const digest = sha256Digest(bytes);
    const claimed = byDigest ? reference : response.headers.get("docker-content-digest") ?? undefined;
    if (claimed !== undefined && claimed.startsWith("sha256:") && claimed !== digest) {
      throw new SkiffError("ERR_SKIFF_DIGEST_MISMATCH", `manifest ${ref.canonical} from ${this.registry} hashes to ${digest}, not ${claimed}`, {
        hint: "the registry (or something between it and you) served different content; nothing was stored",
        place: ref.canonical,
        details: { expected: claimed, actual: digest },
      });
    }
    await writeBlob(cacheDir, digest, bytes, this.registry);
    return { digest, contentType: response.headers.get("content-type") ?? undefined, bytes };
  }

  /**
   * Download a blob into the content store, verified. A transfer cut short
   * is retried once, from the start; a blob that arrives whole but wrong is
   * not. `onChunk` sees each byte once, in order: on the retry, the bytes it
   * had already seen are checked (their hash) rather than handed over again.
   */
  async fetchBlob(ref: ImageReference, target: BlobTarget, cacheDir: string, opts: FetchBlobOptions = {}): Promise<void> {
    const job: BlobJob = { ref, target, source: `${this.registry} (${ref.repository})`, opts };
    for (let attempt = 1; ; attempt++) {
      try {
        await ingestBlob(
          cacheDir,
          target,
          job.source,
          async (sink) => {
            try {
              await this.#receive(job, sink);
            } catch (err) {
              if (opts.onChunk && sink.received > (job.handed?.bytes ?? 0)) job.handed = { bytes: sink.received, digest: sink.digestSoFar() };
              throw err;
            }
          },
          { ...(opts.onVerified === undefined ? {} : { verified: opts.onVerified }) },
        );
        return;
      } catch (err) {
        if (attempt >= 2 || !retryable(err) || this.transport.aborted) throw err;
      }
    }
  }

  /** One GET of the blob into `sink`; the bytes an earlier try handed on are not handed on again, but must hash the same. */
  async #receive(job: BlobJob, sink: BlobSink): Promise<void> {
    const { ref, target, source, opts, handed } = job;
    const guarded = await this.transport.request(`/v2/${ref.repository}/blobs/${target.digest}`, {
      scope: pullScope(ref),
      // The digest is of the bytes as stored: no transparent decompression on the way.
      headers: { "accept-encoding": "identity" },
    });
    try {
      await this.#check(guarded, ref, "blob", target.digest);
      const { response } = guarded;
      const url = new URL(response.url || this.transport.baseUrl);
      const body = bodyChunks(response);
      try {
        for await (const received of body.chunks) {
          guarded.touch();
          let chunk: Uint8Array = received;
          const seen = (handed?.bytes ?? 0) - sink.received;
          if (seen > 0) {
            await sink.write(chunk.subarray(0, seen));
            if (sink.received === handed!.bytes && sink.digestSoFar() !== handed!.digest) {
              throw new SkiffError("ERR_SKIFF_DIGEST_MISMATCH", `blob ${target.digest} from ${source} failed verification: its first ${handed!.bytes} bytes differ from those of the first try`, {
                hint: "the registry (or something between it and you) served different content; nothing was stored",
                place: ref.canonical,
                details: { digest: target.digest },
              });
            }
            chunk = chunk.subarray(seen);
          }
          if (chunk.byteLength > 0) {
            await sink.write(chunk);
            await opts.onChunk?.(chunk);
          }
          opts.onProgress?.(sink.received);
        }
      } catch (err) {
        await body.cancel();
        if (err instanceof SkiffError) throw err;
        const cause = this.transport.networkError(err, url, guarded.signal);
        throw cause instanceof SkiffError && cause.code === "ERR_SKIFF_REGISTRY"
          ? new SkiffError("ERR_SKIFF_REGISTRY", `download of ${target.digest} from ${this.registry} broke off after ${sink.received} of ${target.size} bytes: ${cause.message}`, {
              hint: "the connection was cut; pull again (nothing half-made was kept)",
              place: ref.canonical,
              cause: err,
              details: { digest: target.digest, received: sink.received, size: target.size },
            })
          : cause;
      }
      if (sink.received < target.size) throw endedEarly(target, source, sink.received);
    } finally {
      guarded.done();
    }
  }

  /** Turn a non-2xx answer into the error it means for `what`. */
  async #check(guarded: GuardedResponse, ref: ImageReference, what: "manifest" | "blob", digest?: string): Promise<void> {
    const { response } = guarded;
    if (response.ok) return;
    guarded.done();
    const why = await errorSummary(response);
    const detail = why ? ` (${why})` : "";
    if (response.status === 404 && what === "manifest") {
      throw new SkiffError("ERR_SKIFF_IMAGE_NOT_FOUND", `image not found: ${ref.canonical}${detail}`, {
        hint: `check the name and tag; the registry ${this.registry} has no manifest for it`,
        place: ref.canonical,
        details: { ref: ref.canonical, registry: this.registry, status: 404 },
      });
    }
    const rateLimited = response.status === 429;
    throw new SkiffError(
      "ERR_SKIFF_REGISTRY",
      `${what} ${digest ?? ref.canonical} from ${this.registry}: HTTP ${response.status}${detail}`,
      {
        hint: rateLimited
          ? "the registry is rate limiting; wait, or log in (`skiff login`) for a higher limit"
          : response.status === 404
            ? "the registry lists a blob it does not have; the image in the registry is broken"
            : "the registry failed; retry the pull",
        place: ref.canonical,
        details: { status: response.status, registry: this.registry, ...(digest ? { digest } : {}) },
      },
    );
  }
}

export function pullScope(ref: ImageReference): string {
  return `repository:${ref.repository}:pull`;
}

function manifestPath(ref: ImageReference, reference: string): string {
  return `/v2/${ref.repository}/manifests/${reference}`;
}

/** A cut connection, a 5xx or a stall is worth one more try; a wrong blob or a refusal is not. */
function retryable(err: unknown): boolean {
  if (!(err instanceof SkiffError)) return false;
  if (err.code === "ERR_SKIFF_TIMEOUT") return true;
  if (err.code !== "ERR_SKIFF_REGISTRY") return false;
  const status = err.details?.status;
  return status === undefined || (typeof status === "number" && status >= 500);
}
