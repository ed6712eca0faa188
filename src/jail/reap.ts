/**
 * What a jail uid leaves on the host besides its files: processes, and the
 * nftables table of its egress rules. Both go when the VM's QEMU ends and
 * when a uid whose VM is gone is handed to another VM (claims.ts), so no
 * rule or process of one VM ever applies to the next.
 */
import { removeEgress } from "../network/egress.js";
import { killUid } from "../process/procs.js";
import { defaultRunner, type Runner } from "../process/runner.js";

/** The VM's QEMU has ended: its egress rules go (only as root: there are none otherwise). */
export async function releaseJailNetwork(uid: number, runner: Runner = defaultRunner): Promise<void> {
  if (process.getuid?.() !== 0) return;
  await removeEgress(runner, uid);
}

/** A stale uid: end whatever still runs as it and drop its rules; false when something still ran as it at the deadline. */
export async function reapJailUid(uid: number, runner: Runner = defaultRunner): Promise<boolean> {
  const clear = await killUid(uid);
  await releaseJailNetwork(uid, runner);
  return clear;
}
