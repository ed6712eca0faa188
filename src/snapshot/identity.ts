/**
 * After a restore or a resume, the guest is told who it is now: its name,
 * its addresses and MACs on each network, /etc/hosts, the host's clock (it
 * slept through the time in between) and a fresh seed for its random pool
 * (two VMs restored from one snapshot must never draw the same numbers).
 * One line on an agent port, answered by skiff-relay without SSH
 * (src/guest/identity.ts), so it costs milliseconds, not a key exchange.
 */
import type { GuestNetwork } from "../network/guest.js";
import { withLock } from "../store/lock.js";
import type { VmRecord } from "../store/store.js";
import { identityFor, sendIdentity } from "../guest/identity.js";

/** How long the guest gets to answer: it has just been resumed and may be catching up on timers. */
const identityBudgetMs = 20_000;

/** The kernel's limit (HOST_NAME_MAX); a longer name (skiff.yml allows DNS's 253) is cut as boot would fail to set it. */
const hostNameMax = 64;

export async function sendGuestIdentity(record: VmRecord, home: string, guest: GuestNetwork | undefined): Promise<void> {
  const socket = record.paths.agentSockets[0];
  if (socket === undefined || guest === undefined) return;
  const identity = identityFor(record.config.spec.hostname.slice(0, hostNameMax), guest);
  // Port 0 as an agent session would take it: an exec racing the restore waits rather than reading the answer.
  await withLock(`vm-${record.id}-agent-0`, () => sendIdentity(socket, identity, { budgetMs: identityBudgetMs, vm: record.name }), {
    home,
    purpose: `identity of ${record.name}`,
  });
}
