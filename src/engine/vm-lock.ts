/**
 * A VM's lifecycle lock: every verb that changes what runs (start, stop,
 * kill, snapshot, fork, remove, pause) holds it, so two of them never act on
 * one VM at once, and each sees the state and status as they are under it.
 */
import { withLock } from "../store/lock.js";
import { vmLockName, type VmRecord } from "../store/store.js";
import type { VmState } from "../store/vmdir.js";
import type { EngineContext } from "./context.js";
import { notRunning } from "./context.js";
import { observeStatus, type ObservedStatus } from "./status.js";

/** Run `fn` holding the VM's lifecycle lock, with its state and observed status. */
export function lockedVm<T>(ctx: EngineContext, record: VmRecord, verb: string, fn: (state: VmState, status: ObservedStatus) => Promise<T>): Promise<T> {
  return withLock(
    vmLockName(record.id),
    async () => {
      const state = await ctx.store.readState(record.id);
      return fn(state, await observeStatus(record, state));
    },
    { home: ctx.home, purpose: `${verb} ${record.name}` },
  );
}

/** `fn` on a VM whose QEMU runs, under its lifecycle lock. */
export function onRunningVm<T>(ctx: EngineContext, record: VmRecord, verb: string, fn: (identity: NonNullable<ObservedStatus["qemu"]>) => Promise<T>): Promise<T> {
  return lockedVm(ctx, record, verb, async (_state, status) => {
    if (status.qemu === undefined) throw notRunning(record.name);
    return fn(status.qemu);
  });
}
