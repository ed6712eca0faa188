/**
 * A VM's kernel (`kernel.path`: a path, or a reference to a kernel skiff
 * built, kernel/built.ts) and extra command line words (`kernel.args`),
 * checked and resolved when the VM is made, so a bad one fails before
 * anything exists rather than at boot, and the record keeps the path the VM
 * boots whatever `skiff kernel use` says later.
 */
import { stat } from "node:fs/promises";
import { errnoOf, SkiffError } from "../errors.js";
import { kernelArg } from "../qemu/args.js";
import type { KernelSpec } from "../spec/machine.js";
import { defaultBuiltKernel, builtKernelFile, resolveKernelRef } from "./built.js";

export interface KernelChoice {
  cacheDir: string;
  home: string;
  /** A layer build's VM keeps the Debian kernel unless asked otherwise: apt and dpkg are tested there. */
  useDefault: boolean;
}

export async function checkKernel(kernel: KernelSpec | undefined, choice: KernelChoice): Promise<KernelSpec | undefined> {
  const args = (kernel?.args ?? []).map(kernelArg);
  const withArgs = (spec: KernelSpec): KernelSpec | undefined => {
    const out = { ...spec, ...(args.length === 0 ? {} : { args }) };
    return out.path === undefined && out.args === undefined ? undefined : out;
  };
  const ref = kernel?.path;
  if (ref === undefined) {
    const chosen = choice.useDefault ? defaultBuiltKernel(choice.home, choice.cacheDir) : undefined;
    return withArgs(chosen === undefined ? {} : { path: builtKernelFile(choice.cacheDir, chosen.id) });
  }
  if (/[\n\r\0]/.test(ref)) throw new SkiffError("ERR_SKIFF_BAD_PATH", `kernel path must be one line: ${JSON.stringify(ref)}`, { place: "kernel" });
  const resolved = resolveKernelRef(ref, choice.cacheDir);
  if (resolved.kind === "debian") return withArgs({});
  const path = resolved.path;
  let isFile = false;
  try {
    isFile = (await stat(path)).isFile();
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `kernel file cannot be opened: ${path} (${errnoOf(err) ?? "error"})`, {
      place: "kernel",
      hint: "give a vmlinux (PVH) or bzImage with the virtio drivers built in",
    });
  }
  if (!isFile) throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `kernel is not a file: ${path}`, { place: "kernel", hint: "give the kernel image file itself" });
  return withArgs({ path });
}
