/**
 * A sandbox's deadline (Sandbox.create's timeoutMs), as a VM label that the
 * SDK writes and `skiff serve` enforces: the label lives with the VM, so
 * every process sharing the home, and a server started again, read the same
 * end. Counted from the VM's (last) start rather than stored as a time:
 * boot time is not the caller's, and a fork or restore of the VM (which
 * carries its labels) gets its own full time.
 */
import type { VmInfo } from "../index.js";

/** Milliseconds from the VM's start to its end. */
export const timeoutLabel = "skiff.sdk.timeout-ms";

/** When the VM is to be removed: its start plus its timeout; undefined without one (or before it started). */
export function endOf(vm: Pick<VmInfo, "labels" | "startedAt">): Date | undefined {
  const label = vm.labels[timeoutLabel];
  const timeoutMs = label === undefined ? NaN : Number(label);
  const started = vm.startedAt === undefined ? NaN : Date.parse(vm.startedAt);
  return Number.isFinite(timeoutMs) && timeoutMs > 0 && Number.isFinite(started) ? new Date(started + timeoutMs) : undefined;
}

/** The names of the VMs past their end. */
export function expired(vms: VmInfo[], now = Date.now()): string[] {
  return vms.filter((vm) => (endOf(vm)?.getTime() ?? Infinity) <= now).map((vm) => vm.name);
}

/**
 * The label change that ends `vm` `timeoutMs` from `now` (E2B's setTimeout:
 * the new end replaces the old one, sooner or later); 0 removes the
 * deadline. A VM that has not started has no start to count from: its
 * timeout counts from the start to come.
 */
export function deadlineLabel(vm: Pick<VmInfo, "startedAt">, timeoutMs: number, now = Date.now()): Record<string, string | null> {
  if (timeoutMs === 0) return { [timeoutLabel]: null };
  const started = vm.startedAt === undefined ? NaN : Date.parse(vm.startedAt);
  const fromStart = Number.isFinite(started) ? now + timeoutMs - started : timeoutMs;
  return { [timeoutLabel]: String(Math.max(1, Math.round(fromStart))) };
}
