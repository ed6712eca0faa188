/**
 * Finding processes by an argument of their command line. A VM's QEMU is
 * normally known by the identity in its state.json; when that record is
 * broken (or its pidfile is), the one sure sign left is QEMU's argv, which
 * holds the VM's own pidfile path (`-pidfile /…/vms/<id>/qemu.pid`).
 */
import { readdirSync, readFileSync } from "node:fs";
import { processAlive, processStartTime, type ProcessIdentity } from "./pid.js";

/** Live processes (not zombies) with `arg` as one whole word of their argv. */
export function processesWithArg(arg: string): ProcessIdentity[] {
  const found: ProcessIdentity[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // exited meanwhile, or not ours to read
    }
    if (!argv.includes(arg)) continue;
    const startTime = processStartTime(pid);
    if (startTime !== undefined && processAlive(pid, startTime)) found.push({ pid, startTime });
  }
  return found;
}
