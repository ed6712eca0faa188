/**
 * Bringing the store in line with reality after crashes, and the two ways a
 * QEMU's end is recorded that reconcile shares with the lifecycle verbs.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { SkiffError } from "../errors.js";
import { sweepStaging } from "../guest/copy/staging.js";
import { detectCgroups, removeVmGroup, sweepVmGroups, vmGroupDirs, type CgroupLayout } from "../jail/cgroup.js";
import { releaseJailNetwork } from "../jail/reap.js";
import { identityAlive, processAlive } from "../process/pid.js";
import { ProcTable } from "../process/procs.js";
import { tryLock } from "../store/lock.js";
import { networksDir } from "../store/paths.js";
import { vmLockName, type BrokenVm, type VmRecord } from "../store/store.js";
import { clearRuntimeFiles, type ExitRecord, type VmConfig, type VmState } from "../store/vmdir.js";
import { progress, type EngineContext } from "./context.js";
import { observeStatus } from "./status.js";
import { killVmProcesses, waitForExit } from "./stop.js";
import { strays } from "./vm-process.js";
import { crashPoint } from "../util/crash-point.js";
import { removeRamFile, sweepRamFiles } from "../snapshot/ram.js";
import { sweepSnapshotStaging } from "../snapshot/store.js";

/** QEMU has ended: drop its sockets, pidfile and cgroup, and remember how. */
export async function recordExit(ctx: EngineContext, record: VmRecord, exit: Omit<ExitRecord, "at">): Promise<void> {
  await clearRuntimeFiles(record.paths);
  await releaseHost(ctx, record);
  await ctx.store.updateState(record.id, { exit: { at: new Date().toISOString(), ...exit }, owner: undefined });
}

/** Kill QEMU (and its supervisor) without asking the guest, and record why. */
export async function hardStop(ctx: EngineContext, record: VmRecord, reason: string): Promise<void> {
  await killVmProcesses(record);
  await recordExit(ctx, record, { reason, signal: "SIGKILL" });
}

/**
 * Remove a VM's directory and everything of it: its processes first (never
 * a directory whose QEMU still runs), then the directory, its jail user and
 * its cgroup.
 */
export async function removeVm(ctx: EngineContext, record: Pick<VmRecord, "id" | "name" | "paths"> & { config: Pick<VmConfig, "jail" | "snapshot"> }): Promise<void> {
  if (!(await killVmProcesses(record))) {
    throw new SkiffError("ERR_SKIFF_HOST", `the QEMU of ${record.name} did not end; its directory is kept`, {
      hint: "a process that SIGKILL does not end is stuck in the kernel (often I/O on a dead disk); retry later",
      place: record.name,
    });
  }
  crashPoint("rm:killed");
  await releaseHost(ctx, record);
  await ctx.store.remove(record.id);
  // It no longer stands on its boot snapshot (a snapshot of the home's keeps no users: nothing to remove there).
  const disk = record.config.snapshot?.disk;
  if (disk !== undefined) await (await import("../snapshot/boot-users.js")).removeBootUser(dirname(disk), ctx.home, record.id);
}

/**
 * What the host holds for a VM's run besides its QEMU: its egress rules, its
 * RAM file and its cgroup. The cgroup, made first by a start, goes last: while it exists
 * the run is not settled (reconcile looks for it), whenever this is killed.
 */
async function releaseHost(ctx: EngineContext, record: Pick<VmRecord, "id"> & { config: Pick<VmConfig, "jail"> }): Promise<void> {
  if (record.config.jail !== undefined) await releaseJailNetwork(record.config.jail.uid, ctx.runner);
  await removeRamFile(ctx.home, record.id);
  await removeVmGroup(detectCgroups(), ctx.home, record.id);
}

/**
 * Half-created VMs go; a QEMU whose VM has no record (a crash between
 * making a directory and removing one, or an older skiff's) is ended; a
 * QEMU a killed `run` started before it could write its state is adopted;
 * VMs whose foreground owner died are stopped, --rm VMs that stopped are
 * removed, and a QEMU that ended with nobody there to record it (a crash, a
 * guest power-off, a stop or rm killed half-way) is recorded, and what its
 * run held on the host (sockets, cgroup, egress table) goes, as it does for
 * a start killed before its QEMU ran. Returns the ids of the VMs removed.
 */
export async function reconcile(ctx: EngineContext): Promise<string[]> {
  return (await reconcileAndLook(ctx)).removed;
}

/** What reconcile did, and what it read. */
export interface Reconciled {
  /** The ids of the VMs removed. */
  removed: string[];
  /**
   * The VM directories and the host's processes as reconcile read them,
   * when it ended no process and settled or removed no VM: a listing right
   * after may use them rather than read every record and /proc again (most
   * of what `skiff ps` of many VMs spends). Undefined when it did.
   */
  seen?: { vms: VmRecord[]; broken: BrokenVm[]; table: ProcTable };
}

/** reconcile(), and what it read when that is still how things are. */
export async function reconcileAndLook(ctx: EngineContext): Promise<Reconciled> {
  const t0 = Date.now();
  const reaped = await ctx.store.gc();
  // Bridges and NAT tables whose network record never got written (or was removed) are debris of a crash.
  if (existsSync(networksDir(ctx.home))) {
    // Loaded only where there are networks: a `skiff ps` elsewhere does not pay for them.
    const { sweepNetworks } = await import("./networks.js");
    await sweepNetworks(ctx);
  }
  // Staging directories of `skiff cp`s and snapshots that were killed.
  await sweepStaging(ctx.home);
  await sweepSnapshotStaging(ctx, (pid) => processAlive(pid));
  const { vms, broken } = await ctx.store.scan();
  const table = new ProcTable();
  let acted = (await endStrays(ctx, new Set([...vms.map((vm) => vm.id), ...broken.map((b) => b.id)]), table)) > 0;
  const cgroups = detectCgroups();
  for (const record of vms.filter((vm) => vm.complete)) {
    const state = await ctx.store.readState(record.id);
    const status = await observeStatus(record, state, table);
    const ownerDead = state.owner !== undefined && !identityAlive(state.owner);
    // A snapshot killed while its guest was paused: the guest runs again.
    if (status.qemu !== undefined && existsSync(record.paths.capturing) && (await (await import("../snapshot/capture.js")).resumeAbandonedCapture(record))) {
      acted = true;
      progress(ctx, record.name, "warning", `${record.name} resumed: a snapshot of it was killed while its guest was paused`, t0);
    }
    if (status.qemu !== undefined && ownerDead) {
      acted = true;
      await hardStop(ctx, record, "owner-died");
      progress(ctx, record.name, "reaped", `${record.name} stopped: the skiff run attached to it died`, t0);
    } else if (status.qemu !== undefined && (state.qemu?.pid !== status.qemu.pid || state.exit !== undefined)) {
      // Started, but its starter died before saying so (or it was restarted by its supervisor): this is its QEMU now.
      await ctx.store.updateState(record.id, { qemu: status.qemu, exit: undefined, startedAt: state.startedAt ?? new Date().toISOString() });
    } else if (status.qemu === undefined && status.state !== "restarting" && leftUnsettled(cgroups, ctx.home, record, state)) {
      acted = true;
      await whenIdle(ctx, record, () => settleEnded(ctx, record));
    }
    if (status.qemu === undefined && ownerDead && !record.config.spec.autoRemove) {
      // A foreground `run` killed before its QEMU ran: the VM is the user's now, not tied to a dead process.
      await ctx.store.updateState(record.id, { owner: undefined });
    }
    // The table is still right unless this VM's QEMU was just ended; look again only then, or for --rm.
    const changed = status.qemu !== undefined && ownerDead;
    const after = changed || record.config.spec.autoRemove ? await observeStatus(record, await ctx.store.readState(record.id)) : status;
    const attached = state.owner !== undefined && !ownerDead;
    // A --rm VM never started stays for its `start`, unless the `run` that made it died.
    const settled = after.state !== "created" || ownerDead;
    if (record.config.spec.autoRemove && after.state !== "running" && after.state !== "restarting" && settled && !attached) {
      acted = true;
      await removeVm(ctx, record);
      reaped.push(record.id);
      progress(ctx, record.name, "removed", `${record.name} removed (--rm)`, t0);
    }
  }
  const hasVm = (id: string) => existsSync(join(ctx.store.vmsDir, id));
  await sweepVmGroups(cgroups, ctx.home, hasVm);
  await sweepRamFiles(ctx.home, hasVm);
  return { removed: reaped, ...(acted ? {} : { seen: { vms, broken, table } }) };
}

/** A QEMU was started and no end of it was recorded. */
function unrecordedEnd(state: VmState): boolean {
  return state.qemu !== undefined && state.exit === undefined;
}

/**
 * A run that is over (its QEMU is gone) is not settled: its end is not
 * recorded, or its cgroup exists (a start made it, before its egress table,
 * and only the end of that run removes it).
 */
function leftUnsettled(cgroups: CgroupLayout, home: string, record: VmRecord, state: VmState): boolean {
  return unrecordedEnd(state) || vmGroupDirs(cgroups, home, record.id).some((dir) => existsSync(dir));
}

/**
 * Run `fn` holding the VM's lifecycle lock, or not at all when a verb holds
 * it: a start between making the VM's cgroup and egress table and spawning
 * its QEMU, or a stop about to record the end itself, must not be undone.
 */
async function whenIdle(ctx: EngineContext, record: VmRecord, fn: () => Promise<void>): Promise<void> {
  const lock = await tryLock(vmLockName(record.id), { home: ctx.home, purpose: `reconcile ${record.name}` });
  if (lock === undefined) return;
  try {
    await fn();
  } finally {
    await lock.release();
  }
}

/**
 * Under the VM's lock: if its QEMU is gone, record how it ended (once) and
 * give back what its run held. For reconcile, and for a stop that finds no
 * QEMU (a start or stop was killed half-way): what stop leaves is settled.
 */
export async function settleEnded(ctx: EngineContext, record: VmRecord): Promise<void> {
  const state = await ctx.store.readState(record.id);
  if (!leftUnsettled(detectCgroups(), ctx.home, record, state)) return;
  const status = await observeStatus(record, state);
  if (status.qemu !== undefined || status.state === "restarting") return;
  if (unrecordedEnd(state)) await recordExit(ctx, record, { reason: status.reason ?? "crashed" });
  else {
    await clearRuntimeFiles(record.paths);
    await releaseHost(ctx, record);
  }
}

/** QEMUs (and supervisors) of this home that belong to no VM directory: end them; how many there were. */
async function endStrays(ctx: EngineContext, known: ReadonlySet<string>, table: ProcTable): Promise<number> {
  const found = strays(ctx.store.vmsDir, known, table);
  for (const p of found) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  for (const p of found) await waitForExit(p, 5_000);
  return found.length;
}
