/**
 * Stopping QEMU in steps, as Lima does: ask the guest (ACPI power button via
 * QMP; skiff-init ends every process, syncs and powers off), wait with a
 * deadline, then SIGTERM (QEMU shuts down cleanly, flushing its disks), then
 * SIGKILL.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { processAlive, type ProcessIdentity } from "../process/pid.js";
import { QmpClient } from "../qemu/qmp.js";
import type { VmConfig, VmPaths } from "../store/vmdir.js";
import { processesOf, ProcTable } from "../process/procs.js";
import { qemuOf, supervisorOf } from "./vm-process.js";

export type StopStep = "powerdown" | "sigterm" | "sigkill";

/** Wait until the process is gone; true if it went within the deadline. */
export async function waitForExit(identity: ProcessIdentity, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(identity.pid, identity.startTime)) {
    if (Date.now() >= deadline) return false;
    await sleep(25);
  }
  return true;
}

function signal(identity: ProcessIdentity, sig: NodeJS.Signals | number): void {
  if (!processAlive(identity.pid, identity.startTime)) return;
  try {
    process.kill(identity.pid, sig);
  } catch {
    // gone meanwhile
  }
}

export async function stopQemu(opts: {
  identity: ProcessIdentity;
  qmpSocket: string;
  /** How long the guest gets to power off by itself. */
  timeoutMs: number;
  onStep?: (step: StopStep) => void;
}): Promise<StopStep> {
  const { identity } = opts;
  if (opts.timeoutMs > 0) {
    opts.onStep?.("powerdown");
    try {
      const qmp = await QmpClient.connect(opts.qmpSocket, { timeoutMs: 2_000 });
      try {
        await qmp.execute("system_powerdown");
      } finally {
        qmp.close();
      }
      if (await waitForExit(identity, opts.timeoutMs)) return "powerdown";
    } catch {
      // QMP unreachable: go straight on to signals.
    }
  }
  opts.onStep?.("sigterm");
  signal(identity, "SIGTERM");
  if (await waitForExit(identity, 3_000)) return "sigterm";
  opts.onStep?.("sigkill");
  signal(identity, "SIGKILL");
  await waitForExit(identity, 5_000);
  return "sigkill";
}

/** Send one signal to QEMU (`skiff kill`), and wait briefly for it to take effect. */
export async function signalQemu(identity: ProcessIdentity, sig: number): Promise<boolean> {
  signal(identity, sig);
  return waitForExit(identity, sig === 9 || sig === 15 ? 5_000 : 200);
}

type VmProcesses = { paths: VmPaths; config: Pick<VmConfig, "jail"> };

/**
 * A VM with a restart policy has a supervisor that would start its QEMU
 * again: tell it that this end is wanted (SIGTERM: it exits once QEMU has).
 */
export async function releaseSupervisor(vm: { paths: VmPaths; config: Pick<VmConfig, "jail"> }): Promise<boolean> {
  const supervisor = supervisorOf(vm);
  if (supervisor === undefined) return false;
  signal(supervisor, "SIGTERM");
  // It exits at once between restarts; while a QEMU of its runs it waits for that QEMU, which the caller then stops.
  const deadline = Date.now() + 2_000;
  while (processAlive(supervisor.pid, supervisor.startTime) && qemuOf(vm) === undefined && Date.now() < deadline) await sleep(25);
  return true;
}

/**
 * End everything of the VM at once: its supervisor, its QEMU and anything
 * else that runs as its jail user. True when nothing is left (`rm -f` never
 * removes the directory of a QEMU that still runs).
 */
export async function killVmProcesses(vm: VmProcesses, timeoutMs = 5_000): Promise<boolean> {
  const table = new ProcTable();
  const supervisor = supervisorOf(vm, table);
  const qemu = qemuOf(vm, table);
  const jailed = vm.config.jail !== undefined && process.getuid?.() === 0 ? processesOf(vm.config.jail.uid, table) : [];
  // The supervisor first, so that it cannot start QEMU again in between.
  if (supervisor !== undefined) signal(supervisor, "SIGKILL");
  const all = [...(supervisor === undefined ? [] : [supervisor]), ...(qemu === undefined ? [] : [qemu]), ...jailed];
  for (const p of all) signal(p, "SIGKILL");
  const deadline = Date.now() + timeoutMs;
  for (const p of all) {
    if (!(await waitForExit(p, Math.max(0, deadline - Date.now())))) {
      signal(p, "SIGKILL");
      if (!(await waitForExit(p, 1_000))) return false;
    }
  }
  return true;
}
