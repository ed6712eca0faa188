/**
 * `skiff.kernels`: the guest kernels of this host — the Debian kernel skiff
 * boots by default and the kernels `skiff kernel build` made
 * (src/kernel/build.ts, built.ts) — which one new VMs boot (`use`), and
 * removing a built one no VM or snapshot boots any more.
 */
import { statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { dirname } from "node:path";
import { SkiffError } from "../../errors.js";
import type { KernelBuildOptions } from "../../kernel/build.js";
import { builtKernelFile, defaultBuiltKernel, listBuiltKernels, resolveKernelRef, setDefaultKernel, type BuiltKernel } from "../../kernel/built.js";
import type { EngineContext } from "../context.js";

export interface KernelListing {
  /** `debian`, or a built kernel's id: what `--kernel` and `kernel use` take. */
  name: string;
  kind: "debian" | "built";
  version: string;
  /** The vmlinux VMs boot. */
  path: string;
  sizeBytes: number;
  /** New VMs boot this one (`skiff kernel use`). */
  default: boolean;
  /** VMs whose record boots it. */
  usedBy: string[];
  built?: BuiltKernel;
}

export type KernelBuildRequest = Pick<KernelBuildOptions, "source" | "jobs" | "force" | "onPhase">;

export class KernelService {
  readonly #ctx: EngineContext;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  async list(): Promise<KernelListing[]> {
    const facts = await this.#ctx.hostFacts();
    const chosen = defaultBuiltKernel(this.#ctx.home, this.#ctx.cacheDir);
    const users = await this.#users();
    const debian: KernelListing = {
      name: "debian",
      kind: "debian",
      version: facts.kernel.version,
      path: facts.vmlinuxPath,
      sizeBytes: statSync(facts.vmlinuxPath).size,
      default: chosen === undefined,
      usedBy: users.get(facts.vmlinuxPath) ?? [],
    };
    return [
      debian,
      ...listBuiltKernels(this.#ctx.cacheDir).map((k): KernelListing => {
        const path = builtKernelFile(this.#ctx.cacheDir, k.id);
        return { name: k.id, kind: "built", version: k.version, path, sizeBytes: k.sizeBytes, default: chosen?.id === k.id, usedBy: users.get(path) ?? [], built: k };
      }),
    ];
  }

  /** Build skiff's kernel (minutes on a small host), or return the cached one made from the same inputs. */
  async build(opts: KernelBuildRequest = {}): Promise<BuiltKernel & { cached: boolean }> {
    const { buildKernel } = await import("../../kernel/build.js");
    return buildKernel({ cacheDir: this.#ctx.cacheDir, runner: this.#ctx.runner, ...opts });
  }

  /** The kernel new VMs boot unless they name one: a built kernel, or `debian`. */
  async use(ref: string): Promise<KernelListing> {
    const resolved = resolveKernelRef(ref, this.#ctx.cacheDir);
    if (resolved.kind === "path") {
      throw new SkiffError("ERR_SKIFF_USAGE", `the default kernel is a built one or debian, not a path: ${ref}`, {
        place: "kernel",
        hint: "give a path per VM with --kernel PATH (or kernel: in a project file)",
      });
    }
    await setDefaultKernel(this.#ctx.home, resolved.kind === "built" ? resolved.kernel : undefined);
    const listing = (await this.list()).find((k) => k.default);
    if (listing === undefined) throw new SkiffError("ERR_SKIFF_INTERNAL", "no default kernel after `kernel use`");
    return listing;
  }

  /** Remove a built kernel; refused while VMs or snapshots boot it (their boot snapshots go with it). */
  async remove(ref: string): Promise<BuiltKernel> {
    const resolved = resolveKernelRef(ref, this.#ctx.cacheDir);
    if (resolved.kind !== "built") {
      throw new SkiffError("ERR_SKIFF_USAGE", `only kernels skiff built can be removed: ${ref}`, { place: "kernel", hint: "`skiff kernel ls` lists them" });
    }
    const vms = (await this.#users()).get(resolved.path) ?? [];
    const { listSnapshots } = await import("../../snapshot/store.js");
    const snapshots = (await listSnapshots(this.#ctx)).filter((s) => s.kernelPath === resolved.path);
    const kept = snapshots.filter((s) => s.kind !== "boot");
    if (vms.length > 0 || kept.length > 0) {
      const some = (what: string, names: string[]) => (names.length === 0 ? [] : [`${what}${names.length === 1 ? "" : "s"} ${names.join(", ")}`]);
      const users = [...some("VM", vms), ...some("snapshot", kept.map((s) => s.name ?? s.id))].join(" and ");
      throw new SkiffError("ERR_SKIFF_KERNEL_IN_USE", `kernel ${resolved.kernel.id} is booted by ${users}`, {
        place: "kernel",
        hint: "remove those first (`skiff rm`, `skiff snapshot rm`)",
        details: { vms, snapshots: kept.map((s) => s.id) },
      });
    }
    for (const s of snapshots) await rm(s.dir, { recursive: true, force: true });
    if (defaultBuiltKernel(this.#ctx.home, this.#ctx.cacheDir)?.id === resolved.kernel.id) await setDefaultKernel(this.#ctx.home, undefined);
    await rm(dirname(resolved.path), { recursive: true, force: true });
    return resolved.kernel;
  }

  /** VM names by the kernel file their record boots. */
  async #users(): Promise<Map<string, string[]>> {
    const facts = await this.#ctx.hostFacts();
    const users = new Map<string, string[]>();
    for (const r of await this.#ctx.store.list()) {
      if (r.config.spec.boot?.kind === "cloud") continue;
      const path = r.config.kernel?.path ?? facts.vmlinuxPath;
      users.set(path, [...(users.get(path) ?? []), r.name]);
    }
    return users;
  }
}
