/**
 * After a restore or a resume, the guest is told who it is now: its name,
 * its addresses and MACs on each network, /etc/hosts, the host's clock (it
 * slept through the time in between) and a fresh seed for its random pool
 * (two VMs restored from one snapshot must never draw the same numbers).
 * A VM unpaused after a long pause is told the clock alone (sendGuestClock).
 * One line on an agent port, answered by skiff-relay without SSH
 * (src/guest/identity.ts), so it costs milliseconds, not a key exchange.
 */
import type { GuestNetwork } from "../network/guest.js";
import { withLock } from "../store/lock.js";
import type { VmRecord } from "../store/store.js";
import { identityFor, sendIdentity, type GuestIdentity } from "../guest/identity.js";
import type { EngineContext } from "../engine/context.js";
import { hostsFor } from "../engine/vm-network.js";

/** How long the guest gets to answer: it has just been resumed and may be catching up on timers. */
const identityBudgetMs = 20_000;

/** The kernel's limit (HOST_NAME_MAX); a longer name (skiff.yml allows DNS's 253) is cut as boot would fail to set it. */
const hostNameMax = 64;

/** `warm`: the guest runs a command once after applying it (GuestIdentity.warm), for the first command to come. */
export async function sendGuestIdentity(record: VmRecord, home: string, guest: GuestNetwork | undefined, opts: { warm: boolean }): Promise<void> {
  if (guest === undefined) return;
  await tell(record, home, { ...identityFor(guestHostname(record), guest), warm: opts.warm }, { budgetMs: identityBudgetMs });
}

function guestHostname(record: VmRecord): string {
  return record.config.spec.hostname.slice(0, hostNameMax);
}

/**
 * A guest resumed in place (unpause) has its clock behind by the pause:
 * the host's clock is sent, with a fresh seed for its random pool, and its
 * names as they are. No NICs: its addresses stay untouched (the guest
 * renumbers only the NICs it is told of); /etc/hosts as boot and peers
 * write it. `budgetMs` bounds both the wait for the agent port and the answer.
 */
export async function sendGuestClock(ctx: EngineContext, record: VmRecord, budgetMs: number): Promise<void> {
  const identity = { hostname: guestHostname(record), nics: [], hosts: await hostsFor(ctx, record) };
  await tell(record, ctx.home, identity, { budgetMs, lockTimeoutMs: budgetMs });
}

async function tell(record: VmRecord, home: string, identity: GuestIdentity, opts: { budgetMs: number; lockTimeoutMs?: number }): Promise<void> {
  const socket = record.paths.agentSockets[0];
  if (socket === undefined) return;
  // Port 0 as an agent session would take it: an exec racing the restore waits rather than reading the answer.
  await withLock(`vm-${record.id}-agent-0`, () => sendIdentity(socket, identity, { budgetMs: opts.budgetMs, vm: record.name }), {
    home,
    purpose: `identity of ${record.name}`,
    ...(opts.lockTimeoutMs === undefined ? {} : { timeoutMs: opts.lockTimeoutMs }),
  });
}
