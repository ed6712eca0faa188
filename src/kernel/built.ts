/**
 * Kernels skiff built (kernel/build.ts), kept in the cache under
 * kernels/built/ID/ (vmlinux, its .config, kernel.json), and the host's
 * default kernel for new VMs (`skiff kernel use`), kept in skiff's home.
 *
 * A VM names a kernel by reference: an absolute path (a kernel of the
 * user's), `debian` (the host's Debian kernel, skiff's default), `skiff`
 * (the newest kernel skiff built) or a built kernel's id or a unique prefix
 * of it (4 characters at least), as `skiff kernel ls` shows it. The VM's
 * record keeps the resolved path, so a VM boots the same kernel whatever the
 * default becomes later; `kernel rm` refuses a kernel VMs or snapshots use.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { SkiffError } from "../errors.js";

export interface BuiltKernel {
  /** The hash of the build's inputs (kernel/build.ts: kernelBuildKey). */
  id: string;
  /** `make kernelrelease`: 6.1.192-skiff. */
  version: string;
  /** The source tarball it was built from. */
  source: string;
  sizeBytes: number;
  builtAt: string;
  buildSeconds: number;
  jobs: number;
}

export function builtKernelsDir(cacheDir: string): string {
  return join(cacheDir, "kernels", "built");
}

export function builtKernelFile(cacheDir: string, id: string): string {
  return join(builtKernelsDir(cacheDir), id, "vmlinux");
}

function readBuilt(dir: string): BuiltKernel | undefined {
  try {
    const k = JSON.parse(readFileSync(join(dir, "kernel.json"), "utf8")) as Partial<BuiltKernel>;
    if (typeof k.id !== "string" || !/^[0-9a-f]{12}$/.test(k.id) || typeof k.version !== "string" || !existsSync(join(dir, "vmlinux"))) return undefined;
    return {
      id: k.id,
      version: k.version,
      source: String(k.source ?? ""),
      sizeBytes: Number(k.sizeBytes ?? 0),
      builtAt: String(k.builtAt ?? ""),
      buildSeconds: Number(k.buildSeconds ?? 0),
      jobs: Number(k.jobs ?? 0),
    };
  } catch {
    return undefined;
  }
}

/** The built kernel `id`, when its build is complete (kernel.json and vmlinux); undefined otherwise. */
export function builtKernel(cacheDir: string, id: string): BuiltKernel | undefined {
  return /^[0-9a-f]{12}$/.test(id) ? readBuilt(join(builtKernelsDir(cacheDir), id)) : undefined;
}

/** The built kernels, newest first. */
export function listBuiltKernels(cacheDir: string): BuiltKernel[] {
  let names: string[] = [];
  try {
    names = readdirSync(builtKernelsDir(cacheDir)).filter((n) => /^[0-9a-f]{12}$/.test(n));
  } catch {
    return [];
  }
  return names
    .map((n) => readBuilt(join(builtKernelsDir(cacheDir), n)))
    .filter((k): k is BuiltKernel => k !== undefined)
    .sort((a, b) => (a.builtAt < b.builtAt ? 1 : a.builtAt > b.builtAt ? -1 : 0));
}

/** The built kernel a vmlinux path is, or undefined (the Debian kernel, a user's own). */
export function builtKernelAt(path: string, cacheDir: string): BuiltKernel | undefined {
  if (!path.startsWith(builtKernelsDir(cacheDir) + "/") || !path.endsWith("/vmlinux")) return undefined;
  return readBuilt(dirname(path));
}

/** A kernel named rather than given by path: `debian`, `skiff`, or (a prefix of) a built kernel's id. Project files keep these as written. */
export function isKernelName(ref: string): boolean {
  return ref === "debian" || ref === "skiff" || /^[0-9a-f]{4,12}$/.test(ref);
}

export type KernelRef = { kind: "debian" } | { kind: "path"; path: string } | { kind: "built"; kernel: BuiltKernel; path: string };

const refHint = "`skiff kernel ls` lists them; `skiff kernel build` builds one; `debian` is the host's Debian kernel";

/** What a reference names (see the top of this file); `place` is where it came from (`--kernel`, `kernel`). */
export function resolveKernelRef(ref: string, cacheDir: string, place = "kernel"): KernelRef {
  if (isAbsolute(ref)) return { kind: "path", path: ref };
  if (ref === "debian") return { kind: "debian" };
  const built = listBuiltKernels(cacheDir);
  if (ref === "skiff") {
    const newest = built[0];
    if (newest === undefined) throw new SkiffError("ERR_SKIFF_KERNEL_NOT_FOUND", "skiff has built no kernel yet", { place, hint: "run `skiff kernel build`" });
    return { kind: "built", kernel: newest, path: builtKernelFile(cacheDir, newest.id) };
  }
  if (!/^[0-9a-f]{4,12}$/.test(ref)) {
    throw new SkiffError("ERR_SKIFF_KERNEL_NOT_FOUND", `not a kernel: ${JSON.stringify(ref)}`, {
      place,
      hint: `give an absolute path to a vmlinux or bzImage, \`debian\`, \`skiff\`, or a built kernel's id; ${refHint}`,
    });
  }
  const matches = built.filter((k) => k.id.startsWith(ref));
  const only = matches[0];
  if (only === undefined) throw new SkiffError("ERR_SKIFF_KERNEL_NOT_FOUND", `no built kernel ${ref}`, { place, hint: refHint });
  if (matches.length > 1) {
    throw new SkiffError("ERR_SKIFF_USAGE", `${ref} names ${matches.length} built kernels`, { place, hint: `give more of the id: ${matches.map((k) => k.id).join(", ")}` });
  }
  return { kind: "built", kernel: only, path: builtKernelFile(cacheDir, only.id) };
}

/** Where `skiff kernel use` keeps the default (a built kernel's id; absent: Debian's). */
function defaultFile(home: string): string {
  return join(home, "kernel-default");
}

/** The default kernel for new VMs: a built kernel, or undefined for Debian's (also when the chosen one was removed). */
export function defaultBuiltKernel(home: string, cacheDir: string): BuiltKernel | undefined {
  let id: string;
  try {
    id = readFileSync(defaultFile(home), "utf8").trim();
  } catch {
    return undefined;
  }
  return builtKernel(cacheDir, id);
}

export async function setDefaultKernel(home: string, kernel: BuiltKernel | undefined): Promise<void> {
  if (kernel === undefined) await rm(defaultFile(home), { force: true });
  else await writeFile(defaultFile(home), kernel.id + "\n", { mode: 0o600 });
}
