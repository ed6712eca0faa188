/**
 * A cgroup per VM, so one VM cannot take the host's memory, processes or
 * CPU from the others: memory.max from the VM's memory plus what QEMU needs
 * around it, pids.max, and a CPU quota from --cpus. The jailer puts QEMU in
 * it before exec; skiff removes it once QEMU is gone (rmdir of an empty
 * group), and sweeps groups whose VM no longer runs.
 *
 * cgroup v2 when /sys/fs/cgroup is the unified hierarchy; on a hybrid host
 * (v1 controllers, as on the machines we test on) the v1 memory, pids and
 * cpu hierarchies. A host with neither, or where skiff may not write them
 * (without root), gets no limits, and `skiff doctor` says so.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, rmdir, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { join, resolve } from "node:path";
import { errnoOf, SkiffError } from "../errors.js";
import { crypto } from "../util/builtins.js";

export type CgroupLayout =
  | { kind: "v2"; root: string }
  | { kind: "v1"; controllers: { memory?: string; pids?: string; cpu?: string } }
  | { kind: "none"; why: string };

export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
  /** CPU time per period, in cores (1.5 = one and a half cores). */
  cpus: number;
}

const cpuPeriodUs = 100_000;
const MiB = 1024 * 1024;

/**
 * What a VM's QEMU may use: the guest's RAM, TCG's translation cache (at
 * most 1 GiB in QEMU 7.2, touched as code is translated) and 256 MiB for
 * QEMU itself; QEMU's threads (vCPUs, a block thread pool of up to 64,
 * helpers) well under pids.max; the VM's CPUs plus half a core for QEMU's
 * main loop and I/O, which run beside the vCPU threads.
 */
export function vmLimits(spec: { memoryMiB: number; cpus: number }, accel: "kvm" | "tcg"): CgroupLimits {
  const overheadMiB = accel === "tcg" ? 1024 + 256 : 256;
  return { memoryBytes: (spec.memoryMiB + overheadMiB) * MiB, pids: 512, cpus: spec.cpus + 0.5 };
}

export function detectCgroups(root = "/sys/fs/cgroup", uid = process.getuid?.() ?? -1): CgroupLayout {
  if (uid !== 0) return { kind: "none", why: "skiff runs without root: cgroups need root (or a delegated subtree)" };
  if (existsSync(join(root, "cgroup.controllers"))) return { kind: "v2", root };
  const controllers: { memory?: string; pids?: string; cpu?: string } = {};
  for (const name of ["memory", "pids", "cpu"] as const) {
    if (existsSync(join(root, name, "cgroup.procs"))) controllers[name] = join(root, name);
  }
  if (Object.keys(controllers).length > 0) return { kind: "v1", controllers };
  return { kind: "none", why: `no cgroup hierarchy under ${root}` };
}

/** The group of all VMs of one skiff home: two homes never touch each other's VMs. */
export function homeGroupName(home: string): string {
  return `skiff-${crypto().createHash("sha256").update(resolve(home)).digest("hex").slice(0, 12)}`;
}

/** The directories the VM's QEMU joins, one per hierarchy. */
export function vmGroupDirs(layout: CgroupLayout, home: string, vmId: string): string[] {
  if (layout.kind === "none") return [];
  const rel = join(homeGroupName(home), `vm-${vmId}`);
  if (layout.kind === "v2") return [join(layout.root, rel)];
  return Object.values(layout.controllers).map((dir) => join(dir, rel));
}

/** Make the VM's group(s) with its limits; returns the directories for the jailer. */
export async function createVmGroup(layout: CgroupLayout, home: string, vmId: string, limits: CgroupLimits): Promise<string[]> {
  try {
    if (layout.kind === "v2") {
      const parent = join(layout.root, homeGroupName(home));
      await enableControllers(layout.root);
      await mkdir(parent, { recursive: true });
      await enableControllers(parent);
      const [dir] = vmGroupDirs(layout, home, vmId);
      await mkdir(dir!, { recursive: true });
      await writeFile(join(dir!, "memory.max"), String(limits.memoryBytes));
      await writeFile(join(dir!, "pids.max"), String(limits.pids));
      await writeFile(join(dir!, "cpu.max"), `${Math.round(limits.cpus * cpuPeriodUs)} ${cpuPeriodUs}`);
      return [dir!];
    }
    if (layout.kind === "v1") {
      const dirs: string[] = [];
      const rel = join(homeGroupName(home), `vm-${vmId}`);
      const { memory, pids, cpu } = layout.controllers;
      if (memory !== undefined) {
        const dir = join(memory, rel);
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, "memory.limit_in_bytes"), String(limits.memoryBytes));
        dirs.push(dir);
      }
      if (pids !== undefined) {
        const dir = join(pids, rel);
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, "pids.max"), String(limits.pids));
        dirs.push(dir);
      }
      if (cpu !== undefined) {
        const dir = join(cpu, rel);
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, "cpu.cfs_period_us"), String(cpuPeriodUs));
        await writeFile(join(dir, "cpu.cfs_quota_us"), String(Math.round(limits.cpus * cpuPeriodUs)));
        dirs.push(dir);
      }
      return dirs;
    }
    return [];
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_HOST", `cannot make the cgroup of VM ${vmId}: ${(err as Error).message}`, {
      cause: err,
      hint: "skiff needs a writable cgroup hierarchy under /sys/fs/cgroup as root; `skiff doctor` shows what it found",
    });
  }
}

async function enableControllers(dir: string): Promise<void> {
  const available = (await readFile(join(dir, "cgroup.controllers"), "utf8")).split(/\s+/);
  const wanted = ["memory", "pids", "cpu"].filter((c) => available.includes(c));
  if (wanted.length === 0) return;
  await writeFile(join(dir, "cgroup.subtree_control"), wanted.map((c) => `+${c}`).join(" "));
}

/**
 * Remove the VM's groups once its QEMU has ended. A killed QEMU leaves its
 * group only when its parent (init, here a process manager that may take
 * its time) has reaped it: until then rmdir says EBUSY, so it is tried
 * again for a while. A group still busy after that (a QEMU that did not
 * end) stays, for reconcile.
 */
export async function removeVmGroup(layout: CgroupLayout, home: string, vmId: string, waitMs = 3_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (const dir of vmGroupDirs(layout, home, vmId)) {
    while (!(await rmdirQuiet(dir)) && Date.now() < deadline) await sleep(20);
  }
}

/**
 * Groups of this home whose VM has no directory (`hasVm` asks, at the
 * moment of removing): what a removal killed half-way, or a QEMU reaped
 * late, left. A group is only ever made by a start, under the VM's lock,
 * for a VM whose directory exists, and a removal takes that lock, so none
 * of these belongs to a start under way; groups of VMs that exist are
 * reconcile's to settle, under their lock.
 */
export async function sweepVmGroups(layout: CgroupLayout, home: string, hasVm: (id: string) => boolean): Promise<void> {
  const parents =
    layout.kind === "v2"
      ? [join(layout.root, homeGroupName(home))]
      : layout.kind === "v1"
        ? Object.values(layout.controllers).map((dir) => join(dir, homeGroupName(home)))
        : [];
  for (const parent of parents) {
    let entries: string[];
    try {
      entries = await readdir(parent);
    } catch {
      continue;
    }
    for (const entry of entries) {
      const match = /^vm-([0-9a-f]+)$/.exec(entry);
      if (match !== null && !hasVm(match[1]!)) await rmdirQuiet(join(parent, entry));
    }
  }
}

/** rmdir; false while the group still has a process. */
async function rmdirQuiet(dir: string): Promise<boolean> {
  try {
    await rmdir(dir);
  } catch (err) {
    const code = errnoOf(err);
    if (code === "EBUSY") return false;
    if (code !== "ENOENT") throw err;
  }
  return true;
}
