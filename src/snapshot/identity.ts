/**
 * After a restore or a resume, the guest is told who it is now: its name,
 * its addresses and MACs on each network, /etc/hosts, the host's clock (it
 * slept through the time in between) and a fresh seed for its random pool
 * (two VMs restored from one snapshot must never draw the same numbers).
 * One line on an agent port, answered by skiff-relay without SSH
 * (src/guest/identity.ts), so it costs milliseconds, not a key exchange.
 */
import type { GuestNetwork } from "../network/guest.js";
import type { VmRecord } from "../store/store.js";
import { identityFor, sendIdentity } from "../guest/identity.js";

/** How long the guest gets to answer: it has just been resumed and may be catching up on timers. */
const identityBudgetMs = 20_000;

export async function sendGuestIdentity(record: VmRecord, guest: GuestNetwork | undefined): Promise<void> {
  const socket = record.paths.agentSockets[0];
  if (socket === undefined || guest === undefined) return;
  await sendIdentity(socket, identityFor(record.config.spec.hostname, guest), { budgetMs: identityBudgetMs });
}
