/**
 * Volumes in the engine: the volume verbs (create, ls, inspect, rm), the
 * checks a VM's mounts pass at create, what they become at start (QEMU
 * shares and disks), and the rule that one ext4 volume is attached to one
 * running VM at a time.
 */
import { stat } from "node:fs/promises";
import { isAbsolute, join, posix } from "node:path";
import { errnoOf, SkiffError } from "../errors.js";
import type { MountPlan } from "../qemu/plan.js";
import type { Mount } from "../spec/machine.js";
import type { VmRecord } from "../store/store.js";
import type { SnapshotRef, VmPaths, VmState } from "../store/vmdir.js";
import { defaultVolumeBytes, minVolumeBytes, validateVolumeName, volumeNotFound, VolumeStore, nameTaken, type VolumeRecord } from "../volume/store.js";
import { formatBytes } from "../util/units.js";
import { progress, warnBroken, type EngineContext } from "./context.js";
import { observeStatus, type RunState } from "./status.js";

export interface VolumeCreateOptions {
  name: string;
  /** Size of the disk (default 1 GiB). */
  sizeBytes?: number;
  labels?: Record<string, string>;
}

export interface VolumeUser {
  vm: string;
  state: RunState;
  /** Stopped with its memory saved (`stop --hibernate`): its guest still has the volume mounted, and resumes so. */
  hibernated: boolean;
  target: string;
  readOnly: boolean;
}

export interface VolumeInfo extends VolumeRecord {
  /** The ext4 disk file on the host. */
  diskPath: string;
  /** Every VM whose spec mounts the volume, running or not. */
  usedBy: VolumeUser[];
}

/**
 * A mount as asked for (CreateOptions.mounts): a Mount, with where it came
 * from for errors (a flag, a file's place; default `mounts[i]`); `create`: make a missing volume (default
 * size) instead of failing, as `docker run -v name:/dir` does.
 */
export type MountRequest = Exclude<Mount, { kind: "clone" }> & { place?: string; create?: boolean };

/** Most mounts a VM takes: each is a virtio-mmio device, and microvm has a limited number of slots. */
export const maxMounts = 8;

export function volumeStore(ctx: Pick<EngineContext, "home">): VolumeStore {
  return new VolumeStore(ctx.home);
}

export async function createVolume(ctx: EngineContext, opts: VolumeCreateOptions): Promise<VolumeInfo> {
  const name = validateVolumeName(opts.name);
  const sizeBytes = opts.sizeBytes ?? defaultVolumeBytes;
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < minVolumeBytes) {
    throw new SkiffError("ERR_SKIFF_USAGE", `a volume needs at least ${formatBytes(minVolumeBytes)}, not ${sizeBytes} bytes`, {
      place: "sizeBytes",
      hint: "e.g. 1g (the default) or 64m",
    });
  }
  const store = volumeStore(ctx);
  const record: VolumeRecord = { name, sizeBytes, labels: opts.labels ?? {}, createdAt: new Date().toISOString() };
  await store.locked(`create volume ${name}`, async () => {
    await store.sweep();
    if ((await store.find(name)) !== undefined) throw nameTaken(name);
    checkSpace(ctx, record, await store.space(), store.dir);
    await store.create(record, ctx.runner);
  });
  return { ...record, diskPath: store.diskPath(name), usedBy: [] };
}

/** Every sound volume; each broken one (its record fails its check) is a warning. */
/**
 * A volume's disk is a sparse file: it takes space as the guest writes. One
 * larger than the whole filesystem under it could never be filled (and past
 * the filesystem's largest file, not even made), so it is refused; one
 * larger than the space free now is made, with a warning, as thin
 * provisioning goes.
 */
export function checkSpace(ctx: EngineContext, record: VolumeRecord, space: { totalBytes: number; freeBytes: number }, dir: string): void {
  const { totalBytes, freeBytes } = space;
  if (record.sizeBytes > totalBytes) {
    throw new SkiffError("ERR_SKIFF_USAGE", `a volume of ${formatBytes(record.sizeBytes)} is larger than the filesystem holding volumes (${formatBytes(totalBytes)})`, {
      place: "sizeBytes",
      hint: `give at most ${formatBytes(totalBytes)}: the volume is a sparse file in ${dir} and can never outgrow that filesystem`,
    });
  }
  if (record.sizeBytes > freeBytes) {
    const message = `volume ${record.name} (${formatBytes(record.sizeBytes)}) is larger than the ${formatBytes(freeBytes)} free on the filesystem holding it; writes past that will fail in the guest`;
    progress(ctx, record.name, "warning", message, Date.now());
  }
}

export async function listVolumes(ctx: EngineContext): Promise<VolumeInfo[]> {
  const store = volumeStore(ctx);
  const [{ records, broken }, vms] = await Promise.all([store.scan(), ctx.store.list()]);
  warnBroken(ctx, broken);
  return Promise.all(records.map((r) => volumeInfo(ctx, r, vms)));
}

export async function inspectVolume(ctx: EngineContext, name: string): Promise<VolumeInfo> {
  const record = await volumeStore(ctx).get(name);
  return volumeInfo(ctx, record, await ctx.store.list());
}

/**
 * Remove a volume and its data. Refused while any VM (running or not) mounts
 * it, since its next start would fail; `force` removes it from under stopped
 * VMs, never from under a running one.
 */
export async function removeVolume(ctx: EngineContext, name: string, opts: { force?: boolean } = {}): Promise<void> {
  const store = volumeStore(ctx);
  await store.locked(`remove volume ${name}`, async () => {
    // A volume whose record is broken goes too: VMs name it, so who uses it is still known.
    const record = (await store.lookup(name)) ?? (await store.get(name));
    const users = await usersOf(ctx, record.name, await ctx.store.list({ includeIncomplete: true }));
    const running = users.find((u) => u.state === "running");
    if (running !== undefined) {
      throw new SkiffError("ERR_SKIFF_VOLUME_IN_USE", `volume ${name} is in use by running VM ${running.vm}`, {
        place: name,
        hint: `stop ${running.vm} first (\`skiff stop ${running.vm}\`)`,
        details: { usedBy: users.map((u) => u.vm) },
      });
    }
    if (users.length > 0 && opts.force !== true) {
      const names = users.map((u) => u.vm).join(", ");
      throw new SkiffError("ERR_SKIFF_VOLUME_IN_USE", `volume ${name} is used by ${names}`, {
        place: name,
        hint: `remove ${users.length === 1 ? "that VM" : "those VMs"} first, or use \`skiff volume rm -f ${name}\` (their next start will fail)`,
        details: { usedBy: users.map((u) => u.vm) },
      });
    }
    await store.remove(record.name);
  });
}

async function volumeInfo(ctx: EngineContext, record: VolumeRecord, vms: readonly VmRecord[]): Promise<VolumeInfo> {
  return { ...record, diskPath: volumeStore(ctx).diskPath(record.name), usedBy: await usersOf(ctx, record.name, vms) };
}

async function usersOf(ctx: EngineContext, volume: string, vms: readonly VmRecord[]): Promise<VolumeUser[]> {
  const users: VolumeUser[] = [];
  for (const vm of vms) {
    for (const m of vm.config.spec.mounts ?? []) {
      if (m.kind !== "volume" || m.volume !== volume) continue;
      const saved: VmState = await ctx.store.readState(vm.id).catch(() => ({}));
      const state = (await observeStatus(vm, saved)).state;
      users.push({ vm: vm.name, state, hibernated: state !== "running" && saved.hibernated !== undefined, target: m.target, readOnly: m.readOnly });
    }
  }
  return users;
}

/**
 * Check a new VM's mounts, all of them at once before anything is made:
 * targets absolute and distinct, bind sources existing directories, volumes
 * existing. Call holding the volumes lock (`withVolumesLocked`), so no volume
 * goes between this check and the VM's record.
 */
export async function checkMounts(ctx: EngineContext, requests: readonly MountRequest[]): Promise<Mount[]> {
  const targets = checkMountRequests(requests);
  const out: Mount[] = [];
  for (const [i, req] of requests.entries()) {
    const place = req.place ?? `mounts[${i}]`;
    const target = targets[i]!;
    if (req.kind === "bind") {
      out.push({ kind: "bind", source: checkBindSource(req.source, place, await sourceKind(req.source)), target, readOnly: req.readOnly });
    } else {
      const name = validateVolumeName(req.volume, place);
      if (req.create !== true && (await volumeStore(ctx).find(name)) === undefined) throw volumeNotFound(name, place);
      out.push({ kind: "volume", volume: name, target, readOnly: req.readOnly });
    }
  }
  return out;
}

/**
 * What a VM's mounts must be that needs nothing but the requests: at most
 * maxMounts, targets absolute, distinct and not skiff's own, each volume
 * once. `skiff config` runs the same checks on a project file, so what `up`
 * would refuse is reported at the file's line:column. Returns the targets,
 * normalized, in order.
 */
export function checkMountRequests(requests: readonly (Pick<MountRequest, "target" | "place"> & ({ kind: "bind" } | { kind: "volume"; volume: string }))[]): string[] {
  if (requests.length > maxMounts) {
    throw new SkiffError("ERR_SKIFF_USAGE", `too many mounts: ${requests.length} (at most ${maxMounts})`, {
      place: requests[0]?.place ?? "mounts",
      hint: "share a parent directory instead of several of its children",
    });
  }
  const targets = new Set<string>();
  const volumes = new Set<string>();
  return requests.map((req, i) => {
    const place = req.place ?? `mounts[${i}]`;
    const target = checkTarget(req.target, place);
    if (targets.has(target)) {
      throw new SkiffError("ERR_SKIFF_USAGE", `two mounts at ${target}`, { place, hint: "give each mount its own target" });
    }
    targets.add(target);
    if (req.kind === "volume") {
      if (volumes.has(req.volume)) {
        throw new SkiffError("ERR_SKIFF_USAGE", `volume ${req.volume} is mounted twice`, { place, hint: "an ext4 volume can be mounted once per VM" });
      }
      volumes.add(req.volume);
    }
    return target;
  });
}

function checkTarget(target: string, place: string): string {
  if (!isAbsolute(target) || /[\n\r\0]/.test(target)) {
    throw new SkiffError("ERR_SKIFF_BAD_PATH", `mount target must be an absolute path in the guest: ${JSON.stringify(target)}`, {
      place,
      hint: "e.g. -v ./src:/src",
    });
  }
  const normal = posix.normalize(target).replace(/\/+$/, "");
  if (normal === "" || normal === "/") {
    throw new SkiffError("ERR_SKIFF_BAD_PATH", "a mount cannot cover the guest's root directory", { place, hint: "mount at a directory such as /data" });
  }
  const taken = reservedTargets.find((r) => normal === r.path || (r.under && normal.startsWith(`${r.path}/`)));
  if (taken !== undefined) {
    throw new SkiffError("ERR_SKIFF_BAD_PATH", `a mount cannot be at ${normal}: ${taken.why}`, { place, hint: "mount at a directory such as /data" });
  }
  return normal;
}

/**
 * Guest paths a mount would break skiff at. skiff-init mounts the kernel's
 * filesystems and its own tools there before the VM's mounts, so a mount
 * on them hides what exec, cp, top and interactive sessions rely on. Only
 * skiff's own directories are closed beneath them too: /dev/shm or
 * /sys/fs/cgroup are the user's to mount over, as in Docker.
 */
const reservedTargets: readonly { path: string; under: boolean; why: string }[] = [
  { path: "/dev/.skiff", under: true, why: "skiff's guest tools are there (cp, top, sftp, the login shell)" },
  { path: "/dev/.skiff-run", under: true, why: "skiff-init keeps its run state there" },
  { path: "/dev", under: false, why: "it would hide the guest's devices and skiff's tools in /dev/.skiff" },
  { path: "/dev/pts", under: false, why: "it would hide the terminals of interactive sessions (exec -t, ssh)" },
  { path: "/proc", under: false, why: "it would hide the guest's /proc, which ps, top and exec need" },
  { path: "/sys", under: false, why: "it would hide the guest's /sys" },
];

/** What is at a bind mount's source on the host. */
export type SourceKind = "directory" | "other" | "missing";

async function sourceKind(source: string): Promise<SourceKind> {
  try {
    return (await stat(source)).isDirectory() ? "directory" : "other";
  } catch (err) {
    if (errnoOf(err) !== "ENOENT" && errnoOf(err) !== "ENOTDIR") throw err;
    return "missing";
  }
}

/**
 * A bind source as `up` takes it: an absolute path to a directory
 * (virtio-9p shares directories). `found` is what stat saw there; `skiff
 * config` passes what it saw, so a single-file bind is refused at the file's
 * line:column, not at `up`.
 */
export function checkBindSource(source: string, place: string, found: SourceKind): string {
  if (!isAbsolute(source) || /[\n\r\0]/.test(source)) {
    throw new SkiffError("ERR_SKIFF_BAD_PATH", `bind mount source must be an absolute host path: ${JSON.stringify(source)}`, { place, hint: "e.g. /home/me/src" });
  }
  if (found === "directory") return posix.normalize(source);
  if (found === "missing") {
    throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `bind mount source does not exist: ${source}`, { place, hint: "create the directory first, or fix the path" });
  }
  throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `bind mount source is not a directory: ${source}`, {
    place,
    hint: "share the directory that holds the file (virtio-9p shares directories), and use the file at its path inside that share",
  });
}

/**
 * Make the volumes `requests` may create that do not exist yet; call holding
 * the volumes lock. Returns their names, for `removeCreated` when what they
 * were made for fails.
 */
export async function createMissingVolumes(ctx: EngineContext, requests: readonly MountRequest[]): Promise<string[]> {
  const store = volumeStore(ctx);
  const made: string[] = [];
  try {
    for (const req of requests) {
      if (req.kind !== "volume" || req.create !== true || (await store.find(req.volume)) !== undefined) continue;
      await store.create({ name: req.volume, sizeBytes: defaultVolumeBytes, labels: {}, createdAt: new Date().toISOString() }, ctx.runner);
      made.push(req.volume);
    }
  } catch (err) {
    await removeCreated(ctx, made);
    throw err;
  }
  return made;
}

export async function removeCreated(ctx: EngineContext, names: readonly string[]): Promise<void> {
  for (const name of names) await volumeStore(ctx).remove(name);
}

/** Run `fn` holding the volumes lock when `mounts` name volumes; without it otherwise. */
export function withVolumesLocked<T>(ctx: EngineContext, mounts: readonly Mount[] | undefined, purpose: string, fn: () => Promise<T>): Promise<T> {
  return (mounts ?? []).some((m) => m.kind === "volume") ? volumeStore(ctx).locked(purpose, fn) : fn();
}

/** A restored VM's clone of its Nth mount's volume: a qcow2 overlay on the snapshot's layer of it. */
export function cloneDiskPath(paths: Pick<VmPaths, "volumeClones">, index: number): string {
  return join(paths.volumeClones, `${index}.qcow2`);
}

/**
 * What QEMU is given for a VM's mounts (9p's security model is in
 * src/qemu/args.ts: mapped-xattr, so nothing a guest does lands on the host
 * as a set-id file, a device or another user's file). `vm`: the VM's
 * directory and snapshot, for a restored VM's clones of volumes (a
 * read-only one needs no overlay: its snapshot's layer is attached as is).
 * Disks keep the source's order, serials and drive ids, which the device
 * state a restore loads expects.
 */
export function mountPlans(
  ctx: Pick<EngineContext, "home">,
  mounts: readonly Mount[] | undefined,
  vm?: { paths: Pick<VmPaths, "volumeClones">; snapshot?: SnapshotRef | undefined },
): MountPlan[] {
  let shares = 0;
  let disks = 0;
  return (mounts ?? []).map((m, i): MountPlan => {
    if (m.kind === "bind") return { kind: "9p", tag: `skiff${shares++}`, hostPath: m.source, target: m.target, readOnly: m.readOnly };
    const common = { kind: "disk", serial: `skiff-vol${disks++}`, target: m.target, readOnly: m.readOnly } as const;
    if (m.kind === "volume") return { ...common, diskPath: volumeStore(ctx).diskPath(m.volume) };
    const layer = vm?.snapshot?.volumes?.find((v) => v.target === m.target);
    if (vm === undefined || layer === undefined) {
      throw new SkiffError("ERR_SKIFF_STATE_CORRUPT", `the clone of volume ${m.volume} at ${m.target} has no snapshot layer recorded`, {
        hint: "remove the VM (`skiff rm -f`) and restore it again",
      });
    }
    return m.readOnly ? { ...common, diskPath: layer.layer, format: layer.format } : { ...common, diskPath: cloneDiskPath(vm.paths, i), format: "qcow2" };
  });
}

/**
 * At start, under the volumes lock: every volume the VM mounts still exists
 * and no other running VM has it attached (ext4 is not a shared filesystem:
 * two kernels writing one would corrupt it). Returns the mount plans.
 */
export async function checkVolumesFree(ctx: EngineContext, record: VmRecord): Promise<MountPlan[]> {
  const mounts = record.config.spec.mounts ?? [];
  const vms = (await ctx.store.list()).filter((vm) => vm.id !== record.id);
  for (const m of mounts) {
    if (m.kind !== "volume") continue;
    if ((await volumeStore(ctx).find(m.volume)) === undefined) throw volumeNotFound(m.volume, record.name);
    // A hibernated guest holds the volume mounted in its saved memory: a write by another VM meanwhile would corrupt it on resume.
    const holder = (await usersOf(ctx, m.volume, vms)).find((u) => u.state === "running" || u.hibernated);
    if (holder !== undefined) {
      const how = holder.hibernated ? "hibernated" : "running";
      throw new SkiffError("ERR_SKIFF_VOLUME_IN_USE", `volume ${m.volume} is attached to ${how} VM ${holder.vm}`, {
        place: record.name,
        hint: holder.hibernated
          ? `its saved memory has the volume mounted: start and stop ${holder.vm} (or \`skiff start --cold ${holder.vm}\` then stop it) first`
          : `stop ${holder.vm} first; an ext4 volume is attached to one running VM at a time`,
        details: { volume: m.volume, holder: holder.vm },
      });
    }
  }
  return mountPlans(ctx, mounts, { paths: record.paths, snapshot: record.config.snapshot });
}
