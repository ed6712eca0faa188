/**
 * Paused guests. QEMU stops a guest's CPUs on its own when a disk write
 * fails for want of space on the host (the block error policy
 * `werror=enospc`, QEMU's default: runstate `io-error`), and on `skiff
 * pause` (QMP `stop`). Its process runs on, so the process table says
 * "running": only QEMU knows, so ps, inspect and exec ask it. One short QMP
 * exchange with a small deadline; a QEMU that does not answer in time (its
 * monitor serves one client at a time) counts as running rather than
 * making `ps` wait.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { SkiffError } from "../errors.js";
import { QmpClient, type QmpStatus } from "../qemu/qmp.js";
import type { VmPaths } from "../store/vmdir.js";
import { noSpace } from "../image/unpack/errors.js";

/** Why a running QEMU's guest does not run: `user` (skiff pause), `disk full`, `I/O error`, or QEMU's runstate. */
export type PauseReason = string;

/** How long ps and exec wait for QEMU's answer before taking the guest as running. */
const queryTimeoutMs = 1_000;
/** How long a resumed guest gets to retry its failed writes before we look whether it stopped again. */
const resumeSettleMs = 400;

/**
 * Why the guest is paused, from QEMU's runstate and its disks' I/O status
 * (query-block's `io-status`: ok, failed, nospace); undefined when it runs.
 */
export function pauseReason(status: string, ioStatuses: readonly string[] = []): PauseReason | undefined {
  if (status === "running") return undefined;
  // postmigrate: a paused guest that was snapshotted since (its state saved); `cont` lets it run as from `paused`.
  if (status === "paused" || status === "postmigrate") return "user";
  if (status === "io-error") return ioStatuses.includes("failed") && !ioStatuses.includes("nospace") ? "I/O error" : "disk full";
  return status;
}

/** How ps shows a paused guest: `paused`, `paused (disk full)`. */
export function pausedLabel(reason: PauseReason): string {
  return reason === "user" ? "paused" : `paused (${reason})`;
}

type Vm = { name: string; paths: Pick<VmPaths, "qmpSocket" | "dir"> };

async function withQmp<T>(vm: Vm, timeoutMs: number, fn: (qmp: QmpClient) => Promise<T>): Promise<T> {
  const qmp = await QmpClient.connect(vm.paths.qmpSocket, { timeoutMs, commandTimeoutMs: timeoutMs, label: vm.name });
  try {
    return await fn(qmp);
  } finally {
    qmp.close();
  }
}

async function reasonOf(qmp: QmpClient): Promise<PauseReason | undefined> {
  const { status } = await qmp.execute<QmpStatus>("query-status");
  if (status !== "io-error") return pauseReason(status);
  const blocks = await qmp.execute<{ "io-status"?: string }[]>("query-block");
  return pauseReason(status, blocks.map((b) => b["io-status"] ?? "ok"));
}

/** Why a running VM's guest is paused; undefined when it runs, or when QEMU did not answer in time. */
export async function guestPaused(vm: Vm, timeoutMs = queryTimeoutMs): Promise<PauseReason | undefined> {
  return withQmp(vm, timeoutMs, reasonOf).catch(() => undefined);
}

/** Stop the guest's CPUs (QMP `stop`); a paused guest stays as it is. */
export async function pauseGuest(vm: Vm): Promise<void> {
  await withQmp(vm, 5_000, (qmp) => qmp.execute("stop"));
}

/**
 * Let a paused guest run again (QMP `cont`); false when it was not paused.
 * A guest stopped by a full disk retries its writes at once: if it stops
 * again, the disk is still full, and that is the error.
 */
export async function resumeGuest(vm: Vm): Promise<boolean> {
  return withQmp(vm, 5_000, async (qmp) => {
    const before = await reasonOf(qmp);
    if (before === undefined) return false;
    await qmp.execute("cont");
    if (before !== "disk full") return true;
    await sleep(resumeSettleMs);
    if ((await reasonOf(qmp)) === "disk full") {
      throw noSpace(vm.paths.dir, `resuming ${vm.name}: its disk writes still fail`, undefined, {
        hint: `free space on the filesystem holding ${vm.paths.dir} (\`df ${vm.paths.dir}\`), then \`skiff start ${vm.name}\` again`,
      });
    }
    return true;
  });
}

/**
 * Before a stop: a paused guest cannot press its power button, so it runs
 * again first. True when it runs (the guest can power off), false when it
 * stopped again at once (a full disk): then only signals end its QEMU.
 */
export async function readyForPowerdown(vm: Vm): Promise<boolean> {
  const reason = await guestPaused(vm);
  if (reason === undefined) return true;
  try {
    return await resumeGuest(vm).then(() => true);
  } catch {
    return false;
  }
}

/** exec, cp and ssh into a paused guest would wait for an answer that never comes. */
export function vmPaused(name: string, reason: PauseReason): SkiffError {
  const full = reason === "disk full";
  return new SkiffError("ERR_SKIFF_VM_PAUSED", `${name} is ${pausedLabel(reason)}`, {
    hint: full
      ? `free space on the host's disk that holds the VM, then resume it: \`skiff unpause ${name}\` (or \`skiff start ${name}\`)`
      : `resume it: \`skiff unpause ${name}\``,
    place: name,
    details: { reason },
  });
}
