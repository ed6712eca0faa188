/**
 * Facts about the host that every launch needs: the QEMU binary, the guest
 * kernel (vmlinux, modules), the acceleration verdict and the TSC rate.
 * Gathered once per Skiff instance; the expensive ones are cached on disk.
 */
import { readFileSync } from "node:fs";
import { ensureVmlinux, findDebianKernel, type KernelInfo } from "../kernel/debian.js";
import { findQemu, probeAccel, qemuVersion, type AccelVerdict } from "../qemu/accel.js";

export interface HostFacts {
  qemuBinary: string;
  kernel: KernelInfo;
  vmlinuxPath: string;
  accel: AccelVerdict;
  tscKhz: number | undefined;
}

/** Host TSC rate in kHz from /proc/cpuinfo; undefined if it cannot be read. */
export function hostTscKhz(cpuinfo?: string): number | undefined {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/cpuinfo", "utf8");
    } catch {
      return undefined;
    }
  }
  const match = text.match(/^cpu MHz\s*:\s*([0-9.]+)/m);
  if (match?.[1] === undefined) return undefined;
  const khz = Math.round(Number(match[1]) * 1000);
  return Number.isFinite(khz) && khz > 0 ? khz : undefined;
}

export async function gatherHostFacts(cacheDir: string): Promise<HostFacts> {
  const qemuBinary = await findQemu();
  const kernel = findDebianKernel();
  const vmlinuxPath = await ensureVmlinux(kernel, cacheDir);
  const accel = await probeAccel({ qemuBinary, kernelPath: vmlinuxPath, cacheDir, qemuVersion: (await qemuVersion(qemuBinary, cacheDir)).version });
  return { qemuBinary, kernel, vmlinuxPath, accel, tscKhz: hostTscKhz() };
}
