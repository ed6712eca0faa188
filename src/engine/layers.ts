/**
 * Layers → a new base image (`skiff-layers:<hash>`): the library's
 * `Skiff.buildLayers`. A hash of every input names the image; when it is in
 * the cache, nothing boots. Otherwise a build VM boots from the base image
 * (user networking; a loopback apt mirror through a guestfwd), the layers
 * are applied in it (layer/build.ts), it powers off, and its disk — the
 * qcow2 overlay on the base — is flattened into a raw ext4 in the image
 * cache: written to a temp file, checked with e2fsck, made read-only,
 * recorded, renamed into place. The build VM is removed whether the build
 * succeeds or fails.
 */
import { randomBytes } from "node:crypto";
import { buildVmLabel, restrictUserNetByDefault } from "../spec/machine.js";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { isSkiffError, SkiffError } from "../errors.js";
import { cachedImage, imagePath, imagesDir, writeImageRecord } from "../image/cache.js";
import { resolveImage, type ResolvedImage } from "../image/resolve.js";
import { BuildLog } from "../layer/build-log.js";
import { applyLayers, checkStartOrder, type BuildVm } from "../layer/build.js";
import type { LayerEvent } from "../layer/events.js";
import { layersDigest, layersImageName } from "../layer/hash.js";
import { planAptMirror, type AptMirrorPlan } from "../layer/mirror.js";
import { loadLayers } from "../layer/search.js";
import { syncDir, syncFile } from "../store/atomic.js";
import { tryLock, withLock } from "../store/lock.js";
import { listImageSummaries, refuseDependents, removeBootSnapshots } from "./images.js";
import type { Skiff } from "./skiff.js";
import { sealSharedInput } from "../jail/ids.js";

export interface BuildLayersOptions {
  /** The image the layers go on (default "debian", made by `skiff image bootstrap`). */
  base?: string;
  /** Layer names, applied in order. */
  layers: string[];
  /** Searched in order before skiff's standard library (a project: `<dir>/layers`, then its extra paths). */
  searchPaths?: string[];
  /** A Debian mirror or flat repository for apt in the build VM (default: SKIFF_APT_MIRROR, else the image's own sources). */
  aptMirror?: string;
  /** Build again even when the image is in the cache. */
  force?: boolean;
  /** Memory of the build VM (default 1024 MiB). */
  memoryMiB?: number;
  /**
   * Cancels the build (the CLI's ^C and SIGTERM): the step running in the
   * build VM is cut off, the VM removed, and the build rejects with the
   * signal's reason. Nothing is committed.
   */
  signal?: AbortSignal;
}

export interface BuildLayersResult {
  /** Local image name, bootable by `skiff run` / resolveImage: "skiff-layers:<12 hex>". */
  image: string;
  digest: string;
  /** True when nothing was built. */
  cached: boolean;
  /** The build log (`<cache>/layers/<hex>.log`); absent on a cache hit that has none. */
  logPath?: string;
}

export const defaultLayerBase = "debian";
const buildMemoryMiB = 1024;
const guestPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function layerLogPath(cacheDir: string, digest: string): string {
  return join(cacheDir, "layers", `${digest.replace(/^sha256:/, "")}.log`);
}

export async function buildLayers(skiff: Skiff, opts: BuildLayersOptions): Promise<BuildLayersResult> {
  const emit = (e: LayerEvent) => skiff.emit("layer", e);
  const specs = await loadLayers(opts.layers, opts.searchPaths ?? []);
  checkStartOrder(specs);
  const base = await resolveBase(skiff, opts.base ?? defaultLayerBase);
  const digest = await layersDigest(base.digest, specs);
  const image = layersImageName(digest);
  const logPath = layerLogPath(skiff.cacheDir, digest);
  const hit = async (): Promise<BuildLayersResult | undefined> => {
    if (opts.force === true || (await cachedImage(skiff.cacheDir, digest)) === undefined) return undefined;
    emit({ type: "layers-cached", image, digest, layers: opts.layers });
    const hasLog = await stat(logPath).then(() => true, () => false);
    return { image, digest, cached: true, ...(hasLog ? { logPath } : {}) };
  };
  const hex = digest.slice(7);
  // Before the cache is asked: an orphaned build VM (1 GiB, its QEMU maybe still at work) went only when a build
  // booted, so behind builds that the cache answered it stayed for as long as they did.
  await removeOrphanBuildVms(skiff, hex);
  const early = await hit();
  if (early) return early;
  const mirrorUrl = opts.aptMirror ?? process.env.SKIFF_APT_MIRROR;
  const mirror = mirrorUrl === undefined || mirrorUrl === "" ? undefined : await planAptMirror(mirrorUrl);
  opts.signal?.throwIfAborted();
  return withLock(
    `layers-${hex}`,
    async () => {
      const raced = opts.force === true ? undefined : await hit();
      if (raced) return raced;
      if (opts.force === true) await clearForRebuild(skiff, digest, image);
      const started = Date.now();
      await mkdir(join(skiff.cacheDir, "layers"), { recursive: true, mode: 0o700 });
      const log = new BuildLog(logPath);
      emit({ type: "layers-start", image, digest, base: base.ref, layers: opts.layers, logPath });
      log.note(`building ${image} from ${base.name} (${base.digest}): ${opts.layers.join(", ")}`);
      try {
        await inBuildVm(skiff, { base, hex, image, mirror, memoryMiB: opts.memoryMiB ?? buildMemoryMiB, emit, ...(opts.signal === undefined ? {} : { signal: opts.signal }) }, async (vm) => {
          await applyLayers(vm, specs, {
            log,
            ...(mirror === undefined ? {} : { aptMirror: { url: mirror.guestUrl, flat: mirror.flat, trusted: mirror.trusted } }),
            onStep: (e) => emit({ type: "layers-step", image, ...e }),
          });
        }, async (overlay) => {
          emit({ type: "layers-vm", what: "commit", image });
          log.note(`commit: ${overlay} -> ${imagePath(skiff.cacheDir, digest)}`);
          await commitImage(skiff, { overlay, digest, image, base, layers: opts.layers });
        });
      } catch (err) {
        log.note(`failed: ${err instanceof Error ? err.message : String(err)}`);
        throw err;
      } finally {
        await log.close();
      }
      emit({ type: "layers-done", image, digest, ms: Date.now() - started, logPath });
      return { image, digest, cached: false, logPath };
    },
    { home: skiff.cacheDir, timeoutMs: 60 * 60_000, purpose: `build layers ${opts.layers.join(",")}` },
  );
}

/** The base image; `debian` is not pulled from a registry but made by `skiff image bootstrap`. */
async function resolveBase(skiff: Skiff, ref: string): Promise<ResolvedImage> {
  const bootstrapped = ref === "debian" || ref === "debian:latest";
  try {
    return await resolveImage(ref, {
      cacheDir: skiff.cacheDir,
      home: skiff.home,
      runner: skiff.runner,
      place: "base image",
      ...(bootstrapped ? { pull: "never" as const } : {}),
      onPull: (e) => skiff.emit("pull", e),
      onEvent: (e) => skiff.emit("build", e),
    });
  } catch (err) {
    if (bootstrapped && isSkiffError(err) && err.code === "ERR_SKIFF_IMAGE_NOT_FOUND") {
      throw new SkiffError("ERR_SKIFF_IMAGE_NOT_FOUND", "the base image `debian` is not here yet", {
        hint: "make it once with `skiff image bootstrap` (mmdebstrap; --mirror URL for a local mirror), or name another base",
        place: "base image",
      });
    }
    throw err;
  }
}

/**
 * A forced build writes a new disk under the same digest, so what stands on the old one must not carry on:
 * VMs and users' snapshots are refused as `image rm` refuses them, and its boot snapshots go. A VM started
 * from one of those read the new disk through the old filesystem in its RAM (the suite's redis, rebuilt
 * with --force, never answered).
 */
async function clearForRebuild(skiff: Skiff, digest: string, image: string): Promise<void> {
  const summary = (await listImageSummaries(skiff.images)).find((i) => i.digest === digest);
  if (summary === undefined) return;
  refuseDependents(summary, image);
  await removeBootSnapshots(summary);
}

/** Free space a build VM gets over its base's size (the built image keeps it, sparse, for the VMs booting it). */
const buildHeadroomBytes = 4 * 2 ** 30;

interface BuildVmPlan {
  base: ResolvedImage;
  hex: string;
  image: string;
  mirror: AptMirrorPlan | undefined;
  memoryMiB: number;
  emit: (e: LayerEvent) => void;
  signal?: AbortSignal;
}

/**
 * Boot the build VM, hand it to `work`, power it off, hand its overlay to
 * `commit`; remove the VM afterwards in every case.
 */
async function inBuildVm(skiff: Skiff, plan: BuildVmPlan, work: (vm: BuildVm) => Promise<void>, commit: (overlay: string) => Promise<void>): Promise<void> {
  const name = `skiff-build-${plan.hex.slice(0, 12)}`;
  await removeVm(skiff, name); // a crashed build's, under the build's lock
  const signal = plan.signal;
  // Cancelled: cut off the step in flight (its exec rejects); the finally below removes the VM.
  let conn: Awaited<ReturnType<Skiff["connect"]>> | undefined;
  const onAbort = () => void conn?.close();
  signal?.addEventListener("abort", onAbort, { once: true });
  const restrict = plan.mirror?.guestForward !== undefined || restrictUserNetByDefault();
  plan.emit({ type: "layers-vm", what: "boot", image: plan.image });
  const tcg = (await skiff.hostFacts()).accel.accel === "tcg";
  try {
    await skiff.create({
      name,
      image: plan.base.builtin ? "base" : plan.base.digest,
      memoryMiB: plan.memoryMiB,
      // Under TCG, QEMU keys translated code by virtual address too, so with address space layout
      // randomisation every new process translates ld.so and libc afresh. A build is thousands of
      // short processes (dpkg, maintainer scripts, perl): with `norandmaps` fork+exec of /bin/true took
      // 8.7 ms against 26.5, `perl -e 1` 22 ms against 80 (Debian's kernel, one vCPU). A build VM
      // runs no service and lives minutes; a user's VMs keep ASLR (`kernel_args: [norandmaps]` asks).
      ...(tcg ? { kernel: { args: ["norandmaps"] } } : {}),
      network: {
        mode: "user",
        restrict,
        forwards: [],
        ...(plan.mirror?.guestForward === undefined ? {} : { guestForwards: [plan.mirror.guestForward] }),
      },
      labels: { [buildVmLabel]: plan.hex },
    });
    // Room to install into: a base is made just big enough for what it holds. Sparse until written.
    const overlay = (await skiff.store.get(name)).paths.overlay;
    await skiff.runner.run("qemu-img", ["resize", "-q", overlay, `+${buildHeadroomBytes}`], { check: true, debianPackage: "qemu-utils" });
    signal?.throwIfAborted();
    await skiff.start(name);
    signal?.throwIfAborted();
    conn = await skiff.connect(name, { timeoutMs: 60_000 });
    const vm = conn;
    try {
      signal?.throwIfAborted();
      // Online grow into it; an image without resize2fs builds in the room its base has.
      await vm.run(["/bin/sh", "-c", "command -v resize2fs >/dev/null 2>&1 || exit 0; resize2fs /dev/vda"], { user: "root", cwd: "/", env: { PATH: guestPath }, timeoutMs: 120_000 });
      await work({
        sh: async (command, out, input) => {
          const result = await vm.exec(
            { argv: ["/bin/sh", "-c", command], user: "root", cwd: "/", env: { PATH: guestPath, DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C" } },
            { stdout: out, stderr: out, ...(input === undefined ? {} : { stdin: Readable.from([Buffer.from(input)]) }) },
          );
          signal?.throwIfAborted(); // a step cut off by the cancel ends with some code; the build ends here
          return result.code;
        },
        copyTo: (host, guest) => vm.copyTo(host, guest),
      });
    } catch (err) {
      signal?.throwIfAborted();
      throw err;
    } finally {
      await vm.close();
    }
    signal?.throwIfAborted();
    plan.emit({ type: "layers-vm", what: "stop", image: plan.image });
    await skiff.stop(name, { timeoutMs: 60_000 });
    await commit((await skiff.store.get(name)).paths.overlay);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await removeVm(skiff, name);
  }
}

/**
 * Build VMs whose build is gone (its CLI killed by SIGKILL, the host down
 * mid-build): a running build holds its `layers-<hex>` lock, so a build VM
 * whose lock is free is nobody's, and is removed whenever a build is asked
 * for, the cache's answer or not.
 * The build of `self` removes its own old VM under its lock (inBuildVm).
 */
async function removeOrphanBuildVms(skiff: Skiff, self: string): Promise<void> {
  for (const vm of await skiff.list({ all: true })) {
    const hex = vm.labels[buildVmLabel];
    if (hex === undefined || hex === self || !/^[0-9a-f]{64}$/.test(hex)) continue;
    const claim = await tryLock(`layers-${hex}`, { home: skiff.cacheDir, purpose: "remove a build VM whose build is gone" });
    if (claim === undefined) continue;
    try {
      await removeVm(skiff, vm.name);
    } finally {
      await claim.release();
    }
  }
}

async function removeVm(skiff: Skiff, name: string): Promise<void> {
  try {
    await skiff.remove(name, { force: true });
  } catch (err) {
    if (!(isSkiffError(err) && err.code === "ERR_SKIFF_VM_NOT_FOUND")) throw err;
  }
}

/** The stopped build VM's disk → `<cache>/images/sha256-<hex>.ext4`, by temp file, check and rename. */
async function commitImage(
  skiff: Skiff,
  c: { overlay: string; digest: string; image: string; base: ResolvedImage; layers: string[] },
): Promise<void> {
  const dir = imagesDir(skiff.cacheDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.layers-build-${c.digest.slice(7, 19)}-${randomBytes(6).toString("hex")}.ext4`);
  try {
    await skiff.runner.run("qemu-img", ["convert", "-O", "raw", c.overlay, temp], { check: true, debianPackage: "qemu-utils" });
    // -n: look, change nothing; a dirty or broken filesystem must not become a base.
    await skiff.runner.run("e2fsck", ["-f", "-n", temp], { check: true, debianPackage: "e2fsprogs", timeoutMs: 300_000 });
    await sealSharedInput(temp);
    await writeImageRecord(skiff.cacheDir, {
      name: c.image,
      digest: c.digest,
      builtin: false,
      createdAt: new Date().toISOString(),
      source: `layers ${c.layers.join(", ")} on ${c.base.name} (${c.base.digest})`,
      ref: c.image,
      config: c.base.config,
      sizeBytes: (await stat(temp)).size,
    });
    // The build VM's disk ignored its flushes (engine/launch.ts), and qemu-img does not sync what it writes.
    await syncFile(temp);
    await rename(temp, imagePath(skiff.cacheDir, c.digest));
    await syncDir(dir);
  } finally {
    await rm(temp, { force: true });
  }
}
