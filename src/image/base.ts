/**
 * The built-in image `base`: Debian's static busybox with a link for every
 * applet, a root and a `user` account, and the empty directories a Linux
 * root needs. It is made on the host, in about a second, from packages
 * already there, so `skiff run base` works with no registry at all.
 *
 * The filesystem is 1 GiB: that is the disk the guest sees (a sparse file,
 * a few MiB on the host). Each VM's qcow2 overlay holds its own writes.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { errnoOf, SkiffError } from "../errors.js";
import { defaultRunner, type Runner } from "../process/runner.js";
import { syncDir } from "../store/atomic.js";
import { cachedProbe } from "../util/probe-cache.js";
import { withLock } from "../store/lock.js";
import { cachedImage, type CachedImage, imagePath, imagesDir, writeImageRecord } from "./cache.js";
import { buildExt4 } from "./ext4.js";
import { type ImageManifest, type ManifestEntry, manifestDigest, sha256Hex, textFile } from "./manifest.js";
import { sealSharedInput } from "../jail/ids.js";

/** Bump whenever baseManifest's output changes shape, so cached bases are rebuilt. */
export const baseLayoutVersion = 1;
export const baseSizeBytes = 1024 ** 3;
export const defaultBusyboxPath = "/bin/busybox";

export interface BusyboxInfo {
  path: string;
  sha256: string;
  /** "1.35.0" */
  version: string;
  /** Applet paths relative to /, as `busybox --list-full` prints them ("usr/bin/awk"). */
  applets: string[];
}

export type ImageEvent =
  | { type: "image-build-start"; name: string; digest: string }
  | { type: "image-build-done"; name: string; digest: string; ms: number }
  /** An OCI image's layer `index` (of `count`) is being applied (unpack/build.ts). */
  | { type: "image-layer"; digest: string; index: number; count: number; layer: string }
  /** The unpacked tree is going into an ext4 of `sizeBytes`. */
  | { type: "image-mkfs"; digest: string; contentBytes: number; sizeBytes: number };

export interface BaseImageOptions {
  cacheDir: string;
  runner?: Runner;
  onEvent?: (event: ImageEvent) => void;
  busyboxPath?: string;
  /** How long to wait for another process building the same base (default 5 min). */
  lockTimeoutMs?: number;
}

const busyboxHint = "install Debian's static busybox: apt-get install busybox-static (or run ./setup.sh)";

/**
 * Hash and ask the host's busybox what it is; it must be static (the base has no libc). All of it is kept in the
 * cache while the file is unchanged (util/probe-cache.ts): two processes per create before, and reading and hashing
 * its 2 MB after that, ~5 ms on the way of every `run` of `base`.
 */
export async function probeBusybox(path = defaultBusyboxPath, runner: Runner = defaultRunner, cacheDir?: string): Promise<BusyboxInfo> {
  const ask = async (): Promise<BusyboxAnswer> => {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      throw new SkiffError("ERR_SKIFF_TOOL_MISSING", `busybox cannot be read: ${path} (${errnoOf(err) ?? String(err)})`, {
        hint: busyboxHint,
        cause: err,
        details: { path, debianPackage: "busybox-static" },
      });
    }
    if (hasInterpreter(bytes)) {
      throw new SkiffError("ERR_SKIFF_TOOL_MISSING", `busybox at ${path} is dynamically linked; the base image needs a static one`, {
        hint: busyboxHint,
        details: { path, debianPackage: "busybox-static" },
      });
    }
    const opts = { check: true, debianPackage: "busybox-static", timeoutMs: 10_000 };
    const help = await runner.run(path, ["--help"], opts);
    const version = /^BusyBox v(\d+(?:\.\d+)*)/m.exec(help.stdout)?.[1];
    if (version === undefined) {
      throw new SkiffError("ERR_SKIFF_TOOL_FAILED", `cannot tell the busybox version from \`${path} --help\``, { hint: busyboxHint });
    }
    const list = await runner.run(path, ["--list-full"], opts);
    return { sha256: sha256Hex(bytes), version, applets: list.stdout.split("\n").map((line) => line.trim()).filter((line) => line !== "") };
  };
  const { sha256, version, applets } = cacheDir === undefined ? await ask() : await cachedProbe(cacheDir, "busybox", [path], ask, isBusyboxAnswer);
  return { path, sha256, version, applets };
}

type BusyboxAnswer = { sha256: string; version: string; applets: string[] };

function isBusyboxAnswer(c: unknown): c is BusyboxAnswer {
  const a = c as { sha256?: unknown; version?: unknown; applets?: unknown } | null;
  return typeof a?.sha256 === "string" && /^[0-9a-f]{64}$/.test(a.sha256) && typeof a.version === "string" && Array.isArray(a.applets) && a.applets.every((x) => typeof x === "string");
}

/** True for an ELF with a PT_INTERP program header, i.e. one that needs a dynamic loader. */
function hasInterpreter(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 <= elf.length && elf.readUInt32LE(at) === 3) return true;
  }
  return false;
}

/** Applets go where busybox says, but only into the usual bin dirs (this drops /linuxrc, an initrd's entry point). */
const appletPath = /^(?:bin|sbin|usr\/bin|usr\/sbin)\/[^/\0\n"\\]+$/;

const user = { uid: 1000, gid: 1000 };

/** What `base` holds, from the probed busybox. Pure. */
export function baseManifest(busybox: BusyboxInfo): ImageManifest {
  const dir = (path: string, mode = 0o755, owner = { uid: 0, gid: 0 }): ManifestEntry => ({ type: "dir", path, mode, ...owner });
  const entries: ManifestEntry[] = [
    ...["/bin", "/dev", "/etc", "/home", "/mnt", "/run", "/sbin", "/usr", "/usr/bin", "/usr/sbin", "/var"].map((p) => dir(p)),
    dir("/proc", 0o555),
    dir("/sys", 0o555),
    dir("/root", 0o700),
    dir("/tmp", 0o1777),
    dir("/var/tmp", 0o1777),
    dir("/home/user", 0o755, user),
    { type: "file", path: "/bin/busybox", mode: 0o755, uid: 0, gid: 0, sha256: busybox.sha256, source: { hostPath: busybox.path } },
    textFile(
      "/etc/passwd",
      "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    ),
    // tty (5) owns the PTYs devpts hands out.
    textFile("/etc/group", "root:x:0:\ntty:x:5:\nusers:x:100:user\nuser:x:1000:\nnogroup:x:65534:\n"),
    textFile("/etc/shells", "/bin/sh\n/bin/ash\n"),
    // Placeholders: skiff-init writes the VM's own name into its overlay at boot.
    textFile("/etc/hostname", "skiff\n"),
    textFile("/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    textFile("/etc/profile", 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1=\'\\u@\\h:\\w\\$ \'\n'),
    textFile(
      "/etc/os-release",
      `NAME="skiff base"\nID=skiff-base\nVERSION_ID=${baseLayoutVersion}\nPRETTY_NAME="skiff base (busybox ${busybox.version})"\n`,
    ),
  ];
  const taken = new Set(entries.map((e) => e.path));
  for (const applet of [...new Set(busybox.applets)].sort()) {
    const path = `/${applet}`;
    // Skip what would clash with the files above (or anything outside the bin dirs).
    if (!appletPath.test(applet) || taken.has(path)) continue;
    taken.add(path);
    entries.push({ type: "symlink", path, target: "/bin/busybox", uid: 0, gid: 0 });
  }
  return { kind: "skiff-base", layoutVersion: baseLayoutVersion, fs: { type: "ext4", label: "skiff-root", sizeBytes: baseSizeBytes }, entries };
}

/** The cached `base` for the host's busybox, built on first use. */
export async function ensureBaseImage(opts: BaseImageOptions): Promise<CachedImage> {
  const runner = opts.runner ?? defaultRunner;
  const busybox = await probeBusybox(opts.busyboxPath, runner, opts.cacheDir);
  const manifest = baseManifest(busybox);
  const digest = manifestDigest(manifest);
  const ready = await cachedImage(opts.cacheDir, digest);
  if (ready) return ready;
  // Locks are named per cache directory, not per skiff home: homes that
  // share a cache (test suites do) must not build the same base twice.
  return withLock(
    baseLockName,
    async () => {
      const raced = await cachedImage(opts.cacheDir, digest);
      if (raced) return raced;
      const started = Date.now();
      opts.onEvent?.({ type: "image-build-start", name: "base", digest });
      const dir = imagesDir(opts.cacheDir);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const scratchDir = baseScratchDir(opts.cacheDir);
      await removeLeftovers(dir, scratchDir);
      const target = imagePath(opts.cacheDir, digest);
      const temp = join(dir, `${tempPrefix}${randomBytes(6).toString("hex")}.ext4`);
      try {
        await buildExt4({ manifest, digest, target: temp, scratchDir, runner });
        await sealSharedInput(temp);
        await writeImageRecord(opts.cacheDir, {
          name: "base",
          digest,
          builtin: true,
          createdAt: new Date().toISOString(),
          source: `busybox ${busybox.version}`,
        });
        await rename(temp, target);
        await syncDir(dir);
      } finally {
        await rm(temp, { force: true });
      }
      opts.onEvent?.({ type: "image-build-done", name: "base", digest, ms: Date.now() - started });
      const built = await cachedImage(opts.cacheDir, digest);
      if (!built) throw new SkiffError("ERR_SKIFF_INTERNAL", `base image vanished right after it was built: ${target}`);
      return built;
    },
    { home: opts.cacheDir, timeoutMs: opts.lockTimeoutMs ?? 300_000, purpose: "build image base" },
  );
}

/** The lock a build of `base` holds; whoever holds it owns the two below. */
export const baseLockName = "image-base";
/** `<cache>/images/.base-build-*.ext4`: the ext4 before its rename. */
export const tempPrefix = ".base-build-";
/** Where a build of `base` stages its tree: `<cache>/tmp/image-base`. */
export const baseScratchName = "image-base";
const baseScratchDir = (cacheDir: string) => join(cacheDir, "tmp", baseScratchName);

/** What builds that crashed left behind. Safe under the lock: no other base build is running. */
async function removeLeftovers(dir: string, scratchDir: string): Promise<void> {
  await rm(scratchDir, { recursive: true, force: true });
  for (const name of await readdir(dir)) {
    if (name.startsWith(tempPrefix)) await rm(join(dir, name), { force: true });
  }
}
