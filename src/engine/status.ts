/**
 * Whether a VM runs is worked out from the process table (vm-process.ts),
 * never trusted from state.json, which only remembers what cannot be
 * observed later (how the last run ended), nor from QEMU's pidfile, which
 * its jailed QEMU writes and may forge.
 */
import { existsSync } from "node:fs";
import type { ProcessIdentity } from "../process/pid.js";
import type { VmConfig, VmPaths, VmState } from "../store/vmdir.js";
import { ProcTable } from "../process/procs.js";
import { qemuOf, supervisorOf } from "./vm-process.js";

/** What ps shows. `paused` is QEMU's word (pause.ts): to the process table a paused VM runs. */
export type RunState = "created" | "running" | "paused" | "restarting" | "stopped" | "crashed";

/** QEMU runs: the guest runs, or is paused. */
export function qemuRuns(state: RunState): boolean {
  return state === "running" || state === "paused";
}

export interface ObservedStatus {
  state: Exclude<RunState, "paused">;
  pid?: number;
  /** The running QEMU, exactly (pid and start time): what stop, kill and rm signal. */
  qemu?: ProcessIdentity;
  /** How the last run ended, when it is not running. */
  reason?: string;
}

export async function observeStatus(
  vm: { paths: VmPaths; config: Pick<VmConfig, "jail"> },
  state: VmState,
  table = new ProcTable(),
): Promise<ObservedStatus> {
  const qemu = qemuOf(vm, table);
  if (qemu !== undefined) return { state: "running", pid: qemu.pid, qemu };
  // QEMU ended and its restart policy's supervisor waits out its backoff: it comes back by itself.
  if (supervisorOf(vm, table) !== undefined) return { state: "restarting", reason: "restarting" };
  if (state.qemu === undefined && state.exit === undefined) return { state: "created" };
  if (state.exit !== undefined) {
    return { state: state.exit.reason === "crashed" ? "crashed" : "stopped", reason: state.exit.reason ?? "stopped" };
  }
  // QEMU removes its pidfile when it exits on its own (guest power-off, quit).
  // A pidfile left behind by a dead QEMU means it was killed: a crash.
  if (existsSync(vm.paths.pidfile)) return { state: "crashed", reason: "crashed" };
  return { state: "stopped", reason: "guest-poweroff" };
}
