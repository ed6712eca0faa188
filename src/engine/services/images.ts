/**
 * `skiff.images`: the image verbs over one skiff's cache and home. It is
 * also the ImageContext the engine's image functions take (cache, home,
 * runner, which VMs use which base), so code written against that keeps
 * working. Each verb loads its modules when first called: `ps` must not.
 */
import type { BootstrapOptions, BootstrapResult } from "../../image/bootstrap.js";
import type { CloudImage } from "../../image/cloud.js";
import type { ImportResult } from "../../image/import/import.js";
import type { PullEvent } from "../../image/oci/types.js";
import type { ResolvedImage } from "../../image/resolve.js";
import type { BuildEvent } from "../../image/unpack/build.js";
import type { Runner } from "../../process/runner.js";
import type { EngineContext } from "../context.js";
import type { DiskUsage, ImageContext, ImageSummary } from "../images.js";

export interface ImagePullOptions {
  platform?: string;
  onPull?: (e: PullEvent) => void;
  onBuild?: (e: BuildEvent) => void;
}

export class ImageService implements ImageContext {
  readonly cacheDir: string;
  readonly home: string;
  readonly runner: Runner;
  readonly vms: ImageContext["vms"];
  readonly #ctx: EngineContext;

  constructor(ctx: EngineContext, vms: ImageContext["vms"]) {
    this.#ctx = ctx;
    this.cacheDir = ctx.cacheDir;
    this.home = ctx.home;
    this.runner = ctx.runner;
    this.vms = vms;
  }

  /** An OCI image pulled from its registry (always asked again, as `docker pull`) and made bootable. */
  async pull(ref: string, opts: ImagePullOptions = {}): Promise<ResolvedImage> {
    return (await import("../images.js")).pullImageBase(this, ref, opts);
  }

  /** Whether `ref` names a cloud image (an http(s) URL or a .qcow2/.img/.raw path) rather than an OCI one. */
  async isCloudRef(ref: string): Promise<boolean> {
    return (await import("../../image/cloud.js")).isCloudRef(ref);
  }

  /** A cloud image fetched into the cache (once per URL unless `refetch`). */
  async pullCloud(ref: string, opts: { refetch?: boolean } = {}): Promise<CloudImage> {
    return (await import("../images.js")).pullCloudImage(this, ref, opts);
  }

  /**
   * What `run` would boot for `ref`: the built-in base, an image in the
   * cache, or one pulled when missing (a cloud image when `cloud`), with its
   * content digest; pulls and builds are emitted as `pull` and `build` events.
   */
  async resolve(ref: string, opts: { place?: string; cloud?: boolean } = {}): Promise<{ ref: string; digest: string }> {
    if (opts.cloud === true) {
      const { fetchCloudImage } = await import("../../image/cloud.js");
      const cloud = await fetchCloudImage(ref, { cacheDir: this.cacheDir, runner: this.runner, ...(opts.place === undefined ? {} : { place: opts.place }) });
      return { ref, digest: cloud.digest };
    }
    const { resolveImage } = await import("../../image/resolve.js");
    const image = await resolveImage(ref, {
      cacheDir: this.cacheDir,
      home: this.home,
      runner: this.runner,
      ...(opts.place === undefined ? {} : { place: opts.place }),
      onPull: (e) => this.#ctx.emit("pull", e),
      onEvent: (e) => this.#ctx.emit("build", e),
    });
    return { ref, digest: image.digest };
  }

  async import(path: string, opts: { name?: string; platform?: string; onBuild?: (e: BuildEvent) => void } = {}): Promise<ImportResult> {
    return (await import("../images.js")).importImageBase(this, path, opts);
  }

  async list(): Promise<ImageSummary[]> {
    return (await import("../images.js")).listImageSummaries(this);
  }

  async inspect(query: string): Promise<ImageSummary> {
    return (await import("../images.js")).findImage(this, query);
  }

  /** Remove an image; refused while a VM uses it. */
  async remove(query: string): Promise<ImageSummary> {
    return (await import("../images.js")).removeImage(this, query);
  }

  async prune(opts: { all?: boolean } = {}): Promise<{ removed: string[]; freedBytes: number }> {
    return (await import("../images.js")).pruneImages(this, opts);
  }

  async diskUsage(): Promise<DiskUsage> {
    return (await import("../images.js")).diskUsage(this);
  }

  /** Every name an image can be given by here: local names and pulled references (shell completion). */
  async names(): Promise<string[]> {
    const [{ listImages }, { readRefIndex }] = await Promise.all([import("../../image/cache.js"), import("../../image/registry/refs.js")]);
    const [images, refs] = await Promise.all([listImages(this.cacheDir), readRefIndex(this.cacheDir)]);
    return [...images.flatMap((i) => (i.name === undefined ? [] : [i.name])), ...Object.keys(refs)];
  }

  /** Store credentials for a registry in skiff's home. */
  async login(registry: string, username: string, password: string): Promise<{ registry: string; path: string; verified: boolean }> {
    return (await import("../../image/registry/index.js")).login(registry, username, password, { home: this.home });
  }

  /** Forget a registry's credentials; false when there were none. */
  async logout(registry: string): Promise<boolean> {
    return (await import("../../image/registry/index.js")).logout(registry, { home: this.home });
  }

  /** The Debian base image made on the host with mmdebstrap (minbase). */
  async bootstrapDebian(opts: Omit<BootstrapOptions, "cacheDir" | "runner"> = {}): Promise<BootstrapResult> {
    return (await import("../../image/bootstrap.js")).bootstrapDebian({ ...opts, cacheDir: this.cacheDir, runner: this.runner });
  }
}
