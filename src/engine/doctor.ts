/**
 * `skiff doctor`: what this host has and lacks for running VMs, each check
 * with the command that fixes it.
 */
import { readFileSync } from "node:fs";
import { collectGuestTools } from "../guest/tools.js";
import { ensureVmlinux, findDebianKernel, type KernelInfo } from "../kernel/debian.js";
import { bootMemoryOf, describeBootMemory, type BootMemoryEstimate } from "../kernel/boot-memory.js";
import { ensureBaseInitramfs } from "../guest/initramfs.js";
import type { VmRecord } from "../store/store.js";
import { initramfsVariant, vmKernel } from "./launch.js";
import { builtKernelFile, listBuiltKernels } from "../kernel/built.js";
import type { NetworkSpec } from "../spec/machine.js";
import { findQemu, probeAccel, qemuVersion } from "../qemu/accel.js";
import type { Runner } from "../process/runner.js";
import { SkiffError } from "../errors.js";
import type { VmInfo } from "./info.js";
import { qemuRuns } from "./status.js";
import { jailFindings } from "../jail/doctor.js";

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** Command that fixes it, when not ok. */
  fix?: string;
}

export interface DoctorReport {
  ok: boolean;
  checks: DoctorCheck[];
}

const setupFix = "./setup.sh (as root)";

async function check(name: string, fn: () => Promise<string>, fix: string): Promise<DoctorCheck> {
  try {
    return { name, ok: true, detail: await fn() };
  } catch (err) {
    const detail = err instanceof SkiffError ? err.message : err instanceof Error ? err.message : String(err);
    const hint = err instanceof SkiffError && err.hint !== undefined ? err.hint : fix;
    return { name, ok: false, detail, fix: hint };
  }
}

export function memAvailableMiB(meminfo?: string): number {
  const text = meminfo ?? readFileSync("/proc/meminfo", "utf8");
  const kb = Number(text.match(/^MemAvailable:\s+(\d+) kB/m)?.[1] ?? 0);
  return Math.floor(kb / 1024);
}

/** The least memory a VM of this spec boots in with skiff's initramfs (kernel/boot-memory.ts); undefined for a kernel skiff cannot read. */
async function bootEstimate(
  spec: Pick<VmRecord["config"]["spec"], "kernel" | "network" | "networks" | "mounts">,
  host: { kernel: KernelInfo; vmlinux: string; cacheDir: string },
): Promise<BootMemoryEstimate | undefined> {
  const kernel = vmKernel(spec, { kernel: host.kernel, vmlinuxPath: host.vmlinux }, host.cacheDir);
  const initramfs = await ensureBaseInitramfs({ kernel: kernel.modules, cacheDir: host.cacheDir, ...initramfsVariant(spec) });
  return bootMemoryOf(kernel.path, initramfs, kernel.headroomMiB);
}

export async function runDoctor(opts: {
  cacheDir: string;
  home: string;
  runner: Runner;
  vms: VmInfo[];
  /** The VMs' records, for the kernel each boots (the boot memory check); absent: that check is left out. */
  records?: VmRecord[];
}): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  let qemuBinary: string | undefined;
  checks.push(
    await check(
      "qemu",
      async () => {
        qemuBinary = await findQemu();
        const v = await qemuVersion(qemuBinary);
        return `${qemuBinary} (QEMU ${v.version})`;
      },
      "apt-get install qemu-system-x86",
    ),
  );
  let vmlinux: string | undefined;
  let kernel: KernelInfo | undefined;
  checks.push(
    await check(
      "kernel",
      async () => {
        kernel = findDebianKernel();
        vmlinux = await ensureVmlinux(kernel, opts.cacheDir);
        return `Debian ${kernel.version}, vmlinux ${vmlinux}`;
      },
      "apt-get install linux-image-amd64",
    ),
  );
  checks.push(
    await check(
      "acceleration",
      async () => {
        if (qemuBinary === undefined || vmlinux === undefined) throw new Error("needs QEMU and a kernel first");
        const verdict = await probeAccel({ qemuBinary, kernelPath: vmlinux, cacheDir: opts.cacheDir });
        return `${verdict.accel.toUpperCase()}: ${verdict.reason}`;
      },
      setupFix,
    ),
  );
  checks.push(
    await check(
      "guest tools",
      async () => {
        const tools = await collectGuestTools();
        return `${tools.length} files (skiff-init, busybox, dropbear, sftp-server and their libraries)`;
      },
      setupFix,
    ),
  );
  for (const [tool, pkg] of [
    ["qemu-img", "qemu-utils"],
    ["mke2fs", "e2fsprogs"],
    ["tar", "tar"],
  ] as const) {
    checks.push(
      await check(
        tool,
        async () => {
          const r = await opts.runner.run("sh", ["-c", `command -v ${tool}`]);
          if (r.code !== 0) throw new Error(`${tool} not found on PATH`);
          return r.stdout.trim();
        },
        `apt-get install ${pkg}`,
      ),
    );
  }
  checks.push(...(await bootMemoryChecks(opts, kernel === undefined || vmlinux === undefined ? undefined : { kernel, vmlinux, cacheDir: opts.cacheDir })));
  checks.push(...(await jailFindings(opts.runner, opts.home)));
  checks.push(
    await check(
      "memory",
      async () => {
        const available = memAvailableMiB();
        const running = opts.vms.filter((v) => qemuRuns(v.state)).reduce((s, v) => s + v.memoryMiB, 0);
        const stopped = opts.vms.filter((v) => !qemuRuns(v.state)).reduce((s, v) => s + v.memoryMiB, 0);
        const line = `${available} MiB available; running VMs use up to ${running} MiB; starting the ${opts.vms.length - opts.vms.filter((v) => qemuRuns(v.state)).length} stopped VMs would need ${stopped} MiB more`;
        if (stopped > available) throw new Error(line);
        return line;
      },
      "stop or remove VMs (`skiff ps -a`), or give them less --memory",
    ),
  );
  return { ok: checks.every((c) => c.ok), checks };
}

/**
 * What the default kernel needs to boot (a VM on user networking), and for
 * each microVM whether its memory is at least what its own kernel needs:
 * one made before its kernel grew would panic at boot.
 */
async function bootMemoryChecks(
  opts: { records?: VmRecord[] },
  host: { kernel: KernelInfo; vmlinux: string; cacheDir: string } | undefined,
): Promise<DoctorCheck[]> {
  if (host === undefined) return [];
  const checks = [
    await check(
      "boot memory",
      async () => {
        const network: NetworkSpec = { mode: "user", restrict: false, forwards: [] };
        const e = await bootEstimate({ network }, host);
        if (e === undefined) throw new Error(`cannot read the kernel image ${host.vmlinux}`);
        const lines = [`Debian ${host.kernel.version} needs ${e.totalMiB} MiB: ${describeBootMemory(e)}`];
        // The newest kernel `skiff kernel build` made, which `--kernel skiff` boots.
        const own = listBuiltKernels(host.cacheDir)[0];
        const ownEstimate = own === undefined ? undefined : await bootEstimate({ network, kernel: { path: builtKernelFile(host.cacheDir, own.id) } }, host);
        if (own !== undefined && ownEstimate !== undefined) lines.push(`skiff's ${own.version} (${own.id}) needs ${ownEstimate.totalMiB} MiB: ${describeBootMemory(ownEstimate)}`);
        return lines.join("; ");
      },
      setupFix,
    ),
  ];
  const micro = (opts.records ?? []).filter((r) => r.config.spec.boot?.kind !== "cloud");
  if (micro.length === 0) return checks;
  checks.push(
    await check(
      "vm memory",
      async () => {
        const verdicts: string[] = [];
        const small: string[] = [];
        for (const r of micro) {
          const e = await bootEstimate(r.config.spec, host);
          const mib = r.config.spec.memoryMiB;
          if (e === undefined) verdicts.push(`${r.name} ${mib} MiB (its kernel cannot be read)`);
          else if (mib >= e.totalMiB) verdicts.push(`${r.name} ${mib} MiB >= ${e.totalMiB}`);
          else small.push(`${r.name} ${mib} MiB < ${e.totalMiB}`);
        }
        const line = [...small, ...verdicts].join("; ");
        if (small.length > 0) throw new Error(`below what their kernel needs to boot: ${line}`);
        return `each at least what its kernel needs to boot: ${line}`;
      },
      "a VM's memory is fixed when it is made: `skiff rm` it and create it again with more --memory (`skiff doctor` shows the least that boots)",
    ),
  );
  return checks;
}
