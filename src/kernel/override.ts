/**
 * A VM's own kernel (`kernel.path`) and extra command line words
 * (`kernel.args`), checked when the VM is made so a bad one fails before
 * anything exists rather than at boot.
 */
import { stat } from "node:fs/promises";
import { isAbsolute } from "node:path";
import { errnoOf, SkiffError } from "../errors.js";
import { kernelArg } from "../qemu/args.js";
import type { KernelSpec } from "../spec/machine.js";

export async function checkKernel(kernel: KernelSpec): Promise<KernelSpec> {
  const args = (kernel.args ?? []).map(kernelArg);
  if (kernel.path === undefined) return args.length === 0 ? {} : { args };
  const path = kernel.path;
  if (!isAbsolute(path) || /[\n\r\0]/.test(path)) {
    throw new SkiffError("ERR_SKIFF_BAD_PATH", `kernel path must be absolute: ${JSON.stringify(path)}`, { place: "kernel", hint: "e.g. /boot/vmlinux-6.1-virtio" });
  }
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
  return { path, ...(args.length === 0 ? {} : { args }) };
}
