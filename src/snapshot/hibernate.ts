/**
 * `skiff stop --hibernate`: the guest's RAM and device state are saved in
 * the VM's hibernate/ directory and its QEMU ends, so a parked VM holds no
 * memory; the next `start` resumes it in place (same name, addresses,
 * processes) instead of booting. Its disk is its own overlay, untouched
 * while it is stopped. Its named volumes stay its own too (QEMU flushed
 * them when the guest stopped, and `start` attaches the same drives): its
 * saved guest has them mounted, so no other VM may attach one meanwhile
 * (engine/volumes.ts: checkVolumesFree counts it as their holder). A state that cannot be resumed (another QEMU or
 * kernel since, a wedged image) makes `start` say so; `start --cold` boots
 * from the disk and drops the saved state (E2B's onResume: 'reboot').
 */
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { QmpClient } from "../qemu/qmp.js";
import type { ProcessIdentity } from "../process/pid.js";
import type { VmRecord } from "../store/store.js";
import type { EngineContext } from "../engine/context.js";
import { signalQemu } from "../engine/stop.js";
import { checkSnapshottable, pausedCopy } from "./capture.js";
import type { ResumeSource } from "./resume.js";
import { snapshotFiles } from "./store.js";
import { checkVersions, hostVersions } from "./versions.js";

/** The saved state, and the RAM file beside it unless the RAM went in the state (a fork's, capture.ts). */
function files(record: VmRecord): { state: string; mem?: string } {
  const mem = join(record.paths.hibernateDir, snapshotFiles.mem);
  return { state: join(record.paths.hibernateDir, snapshotFiles.state), ...(existsSync(mem) ? { mem } : {}) };
}

/** Save the running VM's memory and devices, then end its QEMU. Under the VM's lock; the caller records the end. */
export async function hibernateVm(ctx: EngineContext, record: VmRecord, qemu: ProcessIdentity): Promise<{ pausedMs: number }> {
  checkSnapshottable(record);
  await rm(record.paths.hibernateDir, { recursive: true, force: true });
  await mkdir(record.paths.hibernateDir, { recursive: true, mode: 0o700 });
  let saved: { pausedMs: number };
  try {
    saved = await pausedCopy(ctx, record, record.paths.hibernateDir, { disk: false, resume: false });
  } catch (err) {
    await rm(record.paths.hibernateDir, { recursive: true, force: true });
    await resumeGuest(record);
    throw err;
  }
  const facts = await ctx.hostFacts();
  const versions = await hostVersions(facts.qemuBinary, record.config.kernel?.path ?? facts.vmlinuxPath, ctx.cacheDir);
  // Recorded before QEMU ends: from here on the saved state is the VM's truth.
  await ctx.store.updateState(record.id, { hibernated: { at: new Date().toISOString(), ...versions } });
  await signalQemu(qemu, 15);
  return saved;
}

async function resumeGuest(record: VmRecord): Promise<void> {
  const qmp = await QmpClient.connect(record.paths.qmpSocket, { timeoutMs: 2_000 }).catch(() => undefined);
  if (qmp === undefined) return;
  try {
    await qmp.execute("cont");
  } catch {
    // not paused
  } finally {
    qmp.close();
  }
}

/**
 * What a start resumes from: the hibernated state, when there is one and
 * `cold` is not asked; with `cold` the state is dropped and the VM boots.
 */
export async function hibernatedSource(ctx: EngineContext, record: VmRecord, cold: boolean): Promise<ResumeSource | undefined> {
  const { hibernated } = await ctx.store.readState(record.id);
  if (hibernated === undefined) return undefined;
  if (cold) {
    await resumed(ctx, record);
    return undefined;
  }
  const facts = await ctx.hostFacts();
  const here = await hostVersions(facts.qemuBinary, record.config.kernel?.path ?? facts.vmlinuxPath, ctx.cacheDir);
  checkVersions(`${record.name}'s hibernated state`, hibernated, here, `boot it from its disk instead: \`skiff start --cold ${record.name}\` (the saved memory is dropped)`);
  return { ...files(record), what: "its hibernated state" };
}

/** The saved state has served (or was dropped): it goes. */
export async function resumed(ctx: Pick<EngineContext, "store">, record: VmRecord): Promise<void> {
  await ctx.store.updateState(record.id, { hibernated: undefined });
  await rm(record.paths.hibernateDir, { recursive: true, force: true });
}
