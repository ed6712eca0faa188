/**
 * Making a VM's files ready for its jailed QEMU, as root, just before it
 * starts: its run directory and disks belong to its jail user; the shared,
 * read-only inputs (image bases, the kernel) are readable by the jail group
 * and nobody else; its cgroup exists with its limits. Then the JailPlan.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { chmod, chown, copyFile, mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { SkiffError } from "../errors.js";
import { packageRoot } from "../util/package-root.js";
import { ramFileOf, type LaunchPlan } from "../qemu/plan.js";
import type { VmPaths } from "../store/vmdir.js";
import { createVmGroup, detectCgroups, vmLimits } from "./cgroup.js";
import { jailMode, sharedJailGid, type JailIds } from "./ids.js";
import { jailView, type JailPlan } from "./plan.js";

export function jailerPath(): string {
  const path = process.env.SKIFF_JAILER ?? join(packageRoot(), "dist", "jail", "skiff-jail");
  if (!existsSync(path)) {
    throw new SkiffError("ERR_SKIFF_TOOL_MISSING", `the jailer is not built: ${path} (ENOENT)`, {
      hint: "run `./setup.sh` (or `npm run build`; it needs gcc and libc6-dev)",
    });
  }
  return path;
}

export interface PrepareJailOptions {
  vmId: string;
  home: string;
  cacheDir: string;
  paths: VmPaths;
  launch: LaunchPlan;
  /** The overlay's read-only backing files (image base). */
  backingFiles: string[];
  ids: JailIds | undefined;
  supervise?: JailPlan["supervise"];
}

/** The lowest port an unprivileged process may bind (net.ipv4.ip_unprivileged_port_start, 1024 by default). */
export function unprivilegedPortStart(): number {
  try {
    const n = Number(readFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8").trim());
    return Number.isInteger(n) ? n : 1024;
  } catch {
    return 1024;
  }
}

/** The JailPlan for a start (mode "off" with SKIFF_JAIL=off: only the TAPs and the detaching). */
export async function prepareJail(opts: PrepareJailOptions): Promise<JailPlan> {
  const mode = jailMode();
  const { paths, launch } = opts;
  await mkdir(paths.runDir, { recursive: true, mode: 0o700 });
  await mkdir(paths.jailRoot, { recursive: true, mode: 0o700 });
  const view = jailView(launch, { runDir: paths.runDir, backingFiles: opts.backingFiles, kvm: launch.accel === "kvm" });
  const base: Omit<JailPlan, "mode"> = {
    jailerPath: jailerPath(),
    ...view,
    groups: [],
    cgroups: [],
    rootDir: paths.jailRoot,
    log: paths.qemuStderr,
    waitSocket: launch.qmpSocketPath,
    ...(opts.supervise === undefined ? {} : { supervise: opts.supervise }),
  };
  if (mode !== "root") return { ...base, mode };

  const ids = opts.ids;
  if (ids === undefined) throw new SkiffError("ERR_SKIFF_INTERNAL", `VM ${opts.vmId} has no jail user`);
  const shared = sharedJailGid();
  // What only this VM's QEMU writes or reads: its own.
  await chown(paths.runDir, ids.uid, ids.gid);
  await chmod(paths.runDir, 0o700);
  for (const file of view.readWrite) {
    if (file === paths.runDir) continue;
    if (file.startsWith(`${paths.dir}/`) || isVolumeDisk(file, opts.home) || file === ramFileOf(launch)) await ownBy(file, ids, 0o600);
    else await shareWithGroup(file, shared, 0o2770); // a link network's socket directory
  }
  for (const file of [launch.initrdPath, ...(launch.cloud === undefined ? [] : [launch.cloud.seedPath])]) {
    if (existsSync(file)) await ownBy(file, ids, 0o400);
  }
  // Shared inputs: readable by every jail user, by no one else.
  for (const file of view.readOnly) {
    if (file.startsWith(`${paths.dir}/`)) continue;
    if (isVolumeDisk(file, opts.home)) await ownBy(file, ids);
    else if (file.startsWith(`${opts.cacheDir}/`) || file.startsWith(`${join(opts.home, "snapshots")}/`)) await shareWithGroup(file, shared, 0o440);
    else throw new SkiffError("ERR_SKIFF_INTERNAL", `${file} is not skiff's to give to a jailed QEMU (see jailInput)`);
  }
  const shareOwners = new Map<string, { uid: number; gid: number }>();
  for (const share of view.shares) {
    const st = await stat(share.path);
    shareOwners.set(share.path, { uid: st.uid, gid: st.gid });
  }
  const layout = detectCgroups();
  const cgroups = await createVmGroup(layout, opts.home, opts.vmId, vmLimits({ memoryMiB: launch.memoryMiB, cpus: launch.cpus }, launch.accel));
  const forwards = launch.network.mode === "user" ? launch.network.forwards : [];
  const bindLowPorts = forwards.some((f) => f.hostPort < unprivilegedPortStart());
  return { ...base, mode, ids, groups: [shared], shareOwners, cgroups, ...(bindLowPorts ? { bindLowPorts } : {}) };
}

/**
 * The path a jailed QEMU reads `file` at: files of skiff's own cache as they
 * are; a file of the user's (a kernel given with kernel.path), which skiff
 * must not re-own, copied once into the cache (keyed by path, size, mtime).
 */
export async function jailInput(file: string, cacheDir: string): Promise<string> {
  if (jailMode() !== "root" || file.startsWith(`${cacheDir}/`)) return file;
  return cacheCopy(file, cacheDir, sharedJailGid());
}

function isVolumeDisk(file: string, home: string): boolean {
  return file.startsWith(`${join(home, "volumes")}/`);
}

async function ownBy(file: string, ids: JailIds, mode?: number): Promise<void> {
  await chown(file, ids.uid, ids.gid);
  if (mode !== undefined) await chmod(file, mode);
}

/** Group `gid`, permissions `mode` (only ever loosened towards the group, never towards others). */
async function shareWithGroup(file: string, gid: number, mode: number): Promise<void> {
  const st = await stat(file);
  if (st.gid !== gid) await chown(file, st.uid, gid);
  if ((st.mode & 0o7777) !== mode) await chmod(file, mode);
}

/**
 * A file of the user's (a kernel given with kernel.path) that skiff must not
 * re-own: copied once into the cache, keyed by its path, size and mtime.
 */
async function cacheCopy(file: string, cacheDir: string, gid: number): Promise<string> {
  const st = await stat(file);
  const key = createHash("sha256").update(`${file}\0${st.size}\0${st.mtimeMs}`).digest("hex").slice(0, 24);
  const dir = join(cacheDir, "jail-inputs");
  const copy = join(dir, key);
  if (!existsSync(copy)) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const temp = `${copy}.tmp-${process.pid}`;
    try {
      await copyFile(file, temp);
      await chown(temp, 0, gid);
      await chmod(temp, 0o440);
      await rename(temp, copy);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }
  return copy;
}
