/**
 * Bringing the store in line with reality after crashes, and the two ways a
 * QEMU's end is recorded that reconcile shares with the lifecycle verbs.
 */
import { existsSync } from "node:fs";
import { sweepStaging } from "../guest/copy/staging.js";
import { identityAlive } from "../process/pid.js";
import { sweepNetworks } from "./networks.js";
import { networkStore } from "./vm-network.js";
import type { VmRecord } from "../store/store.js";
import type { ExitRecord } from "../store/vmdir.js";
import { progress, type EngineContext } from "./context.js";
import { clearRuntimeFiles } from "./launch.js";
import { observeStatus } from "./status.js";
import { signalQemu } from "./stop.js";

/** QEMU has ended: drop its sockets and pidfile and remember how. */
export async function recordExit(ctx: EngineContext, record: VmRecord, exit: Omit<ExitRecord, "at">): Promise<void> {
  await clearRuntimeFiles(record.paths);
  await ctx.store.updateState(record.id, { exit: { at: new Date().toISOString(), ...exit }, owner: undefined });
}

/** Kill QEMU without asking the guest, and record why. */
export async function hardStop(ctx: EngineContext, record: VmRecord, reason: string): Promise<void> {
  const state = await ctx.store.readState(record.id);
  if (state.qemu !== undefined) await signalQemu(state.qemu, 9);
  await recordExit(ctx, record, { reason, signal: "SIGKILL" });
}

/**
 * Half-created VMs go, VMs whose foreground owner died are stopped, --rm VMs
 * that stopped are removed, and a QEMU that died behind skiff's back is
 * marked crashed. Returns the ids of the VMs removed.
 */
export async function reconcile(ctx: EngineContext): Promise<string[]> {
  const t0 = Date.now();
  const reaped = await ctx.store.gc();
  // Bridges and NAT tables whose network record never got written (or was removed) are debris of a crash.
  if (existsSync(networkStore(ctx).dir)) await sweepNetworks(ctx);
  // Staging directories of `skiff cp`s that were killed.
  await sweepStaging(ctx.home);
  for (const record of await ctx.store.list()) {
    const state = await ctx.store.readState(record.id);
    const status = await observeStatus(record.paths, state);
    const ownerDead = state.owner !== undefined && !identityAlive(state.owner);
    if (status.state === "running" && ownerDead) {
      await hardStop(ctx, record, "owner-died");
      progress(ctx, record.name, "reaped", `${record.name} stopped: the skiff run attached to it died`, t0);
    } else if (status.state === "crashed" && state.exit === undefined) {
      await recordExit(ctx, record, { reason: "crashed" });
    }
    const after = await observeStatus(record.paths, await ctx.store.readState(record.id));
    const attached = state.owner !== undefined && !ownerDead;
    if (record.config.spec.autoRemove && after.state !== "running" && after.state !== "created" && !attached) {
      await ctx.store.remove(record.id);
      reaped.push(record.id);
      progress(ctx, record.name, "removed", `${record.name} removed (--rm)`, t0);
    }
  }
  return reaped;
}
