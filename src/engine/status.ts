/**
 * Whether a VM runs is worked out from its pidfile and the process table,
 * never trusted from state.json, which only remembers what cannot be
 * observed later (how the last run ended).
 */
import { existsSync } from "node:fs";
import { processAlive, readPidfile } from "../process/pid.js";
import type { VmPaths, VmState } from "../store/vmdir.js";

export type RunState = "created" | "running" | "stopped" | "crashed";

export interface ObservedStatus {
  state: RunState;
  pid?: number;
  /** How the last run ended, when it is not running. */
  reason?: string;
}

export async function observeStatus(paths: VmPaths, state: VmState): Promise<ObservedStatus> {
  let pid: number | undefined;
  try {
    pid = await readPidfile(paths.pidfile);
  } catch {
    pid = undefined; // a garbled pidfile cannot name a live QEMU
  }
  if (pid !== undefined) {
    const startTime = state.qemu?.pid === pid ? state.qemu.startTime : undefined;
    if (processAlive(pid, startTime)) return { state: "running", pid };
  }
  if (state.qemu === undefined && state.exit === undefined) return { state: "created" };
  if (state.exit !== undefined) {
    return { state: state.exit.reason === "crashed" ? "crashed" : "stopped", reason: state.exit.reason ?? "stopped" };
  }
  // QEMU removes its pidfile when it exits on its own (guest power-off, quit).
  // A pidfile left behind by a dead QEMU means it was killed: a crash.
  if (existsSync(paths.pidfile)) return { state: "crashed", reason: "crashed" };
  return { state: "stopped", reason: "guest-poweroff" };
}
