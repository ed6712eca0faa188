/**
 * `skiff kernel build`: skiff's own guest kernel from Debian's
 * `linux-source-*` package (the tarball in /usr/src), configured by
 * kernel/config.ts, built with the host's gcc, cached by the hash of
 * everything that goes into it (source tarball, fragment, compiler, this
 * recipe). A second build of the same inputs returns the cached kernel at
 * once; a build cut short (killed, disk full) leaves only its scratch
 * directory, which the next build removes.
 */
import { createHash } from "node:crypto";
import { closeSync, constants, existsSync, openSync, readdirSync, statSync } from "node:fs";
import { copyFile, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { SkiffError } from "../errors.js";
import { processAlive } from "../process/pid.js";
import type { Runner } from "../process/runner.js";
import { lockExclusive } from "../store/flock.js";
import { builtKernel, builtKernelsDir, builtKernelFile, type BuiltKernel } from "./built.js";
import { configFragment, missingOptions } from "./config.js";

/** Bumped when the recipe below changes what it makes from the same inputs. */
const recipeVersion = 1;

const sourceHint = "run `apt-get install linux-source bc bison flex libelf-dev make` (./setup.sh installs them), or give --source PATH";

/** Packages the build needs beside the source (make, gcc: build-essential). */
export const kernelBuildPackages = ["linux-source", "bc", "bison", "flex", "libelf-dev", "make", "gcc"];

/** The newest /usr/src/linux-source-*.tar.xz (Debian's linux-source package). */
export function findKernelSource(srcDir = "/usr/src"): string {
  let found: string[] = [];
  try {
    found = readdirSync(srcDir)
      .filter((f) => /^linux-source-[0-9.]+\.tar\.xz$/.test(f))
      .sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  } catch {
    found = [];
  }
  const newest = found.at(-1);
  if (newest === undefined) {
    throw new SkiffError("ERR_SKIFF_KERNEL_MISSING", `no kernel source in ${srcDir} (linux-source-*.tar.xz)`, { hint: sourceHint });
  }
  return join(srcDir, newest);
}

export interface KernelBuildOptions {
  cacheDir: string;
  runner: Runner;
  /** The source tarball; default: findKernelSource(). */
  source?: string;
  /** make -j; default: the host's CPUs. */
  jobs?: number;
  /** Build again even when the cache has this kernel. */
  force?: boolean;
  onPhase?: (phase: "wait" | "extract" | "configure" | "compile" | "done", detail: string) => void;
}

/** What identifies a build: the same key, the same kernel. */
export async function kernelBuildKey(opts: { source: string; runner: Runner }): Promise<string> {
  const st = statSync(opts.source);
  const gcc = await opts.runner.run("gcc", ["--version"], { check: true, debianPackage: "gcc" });
  return createHash("sha256")
    .update(`${recipeVersion}\0${opts.source}\0${st.size}\0${st.mtimeMs}\0${gcc.stdout.split("\n")[0] ?? ""}\0${configFragment()}`)
    .digest("hex")
    .slice(0, 12);
}

export async function buildKernel(opts: KernelBuildOptions): Promise<BuiltKernel & { cached: boolean }> {
  const source = opts.source ?? findKernelSource();
  if (!existsSync(source)) throw new SkiffError("ERR_SKIFF_KERNEL_MISSING", `kernel source cannot be opened: ${source} (ENOENT)`, { place: "source", hint: sourceHint });
  const id = await kernelBuildKey({ source, runner: opts.runner });
  const dir = join(builtKernelsDir(opts.cacheDir), id);
  const cached = () => {
    const kernel = opts.force === true ? undefined : builtKernel(opts.cacheDir, id);
    return kernel === undefined ? undefined : { ...kernel, cached: true };
  };
  const before = cached();
  if (before !== undefined) return before;
  await mkdir(builtKernelsDir(opts.cacheDir), { recursive: true, mode: 0o700 });
  const release = await buildLock(opts.cacheDir, id, () => opts.onPhase?.("wait", "another build of this kernel is under way"));
  try {
    // Whoever held the lock may just have built it.
    const meanwhile = cached();
    if (meanwhile !== undefined) return meanwhile;
    await removeStaleScratch(opts.cacheDir);
    return await compile({ ...opts, source, id, dir });
  } finally {
    release();
  }
}

async function compile(opts: KernelBuildOptions & { source: string; id: string; dir: string }): Promise<BuiltKernel & { cached: boolean }> {
  const { source, id, dir } = opts;
  const scratch = join(builtKernelsDir(opts.cacheDir), `.build-${id}-${process.pid}`);
  const tree = join(scratch, "linux");
  const started = Date.now();
  const run = (args: string[], timeoutMs: number) =>
    opts.runner.run("make", ["-s", "-C", tree, "ARCH=x86_64", ...args], { check: true, timeoutMs, debianPackage: "make" });
  try {
    await mkdir(tree, { recursive: true, mode: 0o700 });
    opts.onPhase?.("extract", source);
    await opts.runner.run("tar", ["-xf", source, "-C", tree, "--strip-components=1"], { check: true, timeoutMs: 10 * 60_000, debianPackage: "tar" });
    opts.onPhase?.("configure", "allnoconfig + skiff's fragment");
    const fragment = join(scratch, "skiff.config");
    await writeFile(fragment, configFragment());
    await run([`KCONFIG_ALLCONFIG=${fragment}`, "allnoconfig"], 5 * 60_000);
    const dotConfig = await readFile(join(tree, ".config"), "utf8");
    const missing = missingOptions(dotConfig);
    if (missing.length > 0) {
      throw new SkiffError("ERR_SKIFF_KERNEL_BUILD", `the kernel source ${source} cannot have ${missing.map((m) => `CONFIG_${m}`).join(", ")}`, {
        hint: "use Debian's linux-source 6.1 or newer",
      });
    }
    const jobs = opts.jobs ?? availableParallelism();
    opts.onPhase?.("compile", `make -j${jobs} vmlinux`);
    await run([`-j${jobs}`, "vmlinux"], 2 * 60 * 60_000);
    const version = (await opts.runner.run("make", ["-s", "-C", tree, "ARCH=x86_64", "kernelrelease"], { check: true })).stdout.trim();
    const staged = join(scratch, "out");
    await mkdir(staged, { mode: 0o755 });
    await copyFile(join(tree, "vmlinux"), join(staged, "vmlinux"));
    await copyFile(join(tree, ".config"), join(staged, "config"));
    const kernel: BuiltKernel = {
      id,
      version,
      source,
      sizeBytes: statSync(join(staged, "vmlinux")).size,
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round((Date.now() - started) / 1000),
      jobs,
    };
    await writeFile(join(staged, "kernel.json"), JSON.stringify(kernel, null, 2) + "\n");
    await rm(dir, { recursive: true, force: true });
    await rename(staged, dir);
    opts.onPhase?.("done", builtKernelFile(opts.cacheDir, id));
    return { ...kernel, cached: false };
  } catch (err) {
    if (err instanceof SkiffError && err.code === "ERR_SKIFF_TOOL_FAILED") {
      throw new SkiffError("ERR_SKIFF_KERNEL_BUILD", `building the kernel failed: ${err.message}`, { hint: sourceHint, cause: err });
    }
    throw err;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * One build per kernel at a time, across processes and skiff homes (tests
 * share a cache; set-up builds the tests' kernel while they start): flock on
 * a file in the cache, which the kernel drops if the builder dies. A build
 * takes minutes, so a waiter waits as long as the holder builds.
 */
async function buildLock(cacheDir: string, id: string, onWait: () => void): Promise<() => void> {
  const fd = openSync(join(builtKernelsDir(cacheDir), `.lock-${id}`), constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  try {
    for (let waited = false; !lockExclusive(fd); waited = true) {
      if (!waited) onWait();
      await new Promise((r) => setTimeout(r, 1000));
    }
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return () => closeSync(fd);
}

/** Scratch trees of builds whose process is gone (killed mid-build): ~1 GB each. */
async function removeStaleScratch(cacheDir: string): Promise<void> {
  let names: string[] = [];
  try {
    names = readdirSync(builtKernelsDir(cacheDir));
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^\.build-[0-9a-f]+-(\d+)$/.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid <= 0 || processAlive(pid)) continue;
    await rm(join(builtKernelsDir(cacheDir), name), { recursive: true, force: true });
  }
}
