/**
 * A new identity for a running guest, told over an agent port. A VM
 * restored from a memory snapshot wakes up as its source: the source's
 * hostname, MACs, addresses, /etc/hosts, wall clock and kernel random pool
 * (two clones would share their /dev/urandom stream). Right after the
 * restore the host sends, in place of a HELLO,
 *
 *   SKIFF-IDENTITY <nonce> <lowercase hex of the payload>
 *
 * and the guest's relay (guest/relay.c; parsing in guest/identity.c, the
 * apply in guest/identity-apply.c) answers `SKIFF-IDENTITY-OK <nonce>` or
 * `SKIFF-IDENTITY-ERR <nonce> <reason>`. No SSH: its key exchange costs
 * ~0.8 s under TCG, this a few ms plus the guest's `ip` commands.
 */
import { randomBytes } from "node:crypto";
import { isIP, isIPv4 } from "node:net";
import { SkiffError } from "../errors.js";
import type { GuestNetwork, VmInterface } from "../network/guest.js";
import { askPort, newNonce, type Found } from "./agent-handshake.js";
import { guestText } from "./guest-text.js";
import { guestLimits } from "./limits.js";

export interface GuestIdentity {
  /** The guest's new wall clock, Unix ms; now (as the line is rendered) when absent. */
  timeMs?: number;
  /** 64 bytes mixed into the guest's kernel random pool and credited; fresh random bytes when absent. */
  seed?: Buffer;
  hostname: string;
  /** Each NIC by the name boot gave it (eth0, …), with its new MAC and ADDR/PREFIX. */
  nics: Pick<VmInterface, "mac" | "name" | "address">[];
  gateway?: string;
  /** The whole /etc/hosts. */
  hosts: string;
  /**
   * Have the guest run a command once when it has applied this (the image's `true`, detached): a restored guest
   * translates fork, exec and the dynamic loader afresh under TCG, and its first real command then finds them done
   * (guest/relay.c: warm_commands).
   */
  warm?: boolean;
}

const seedBytes = 64;

/** What a VM's guest should be: the names and addresses its boot config would give it now (renderGuestConfig's nic.N, gateway and hosts). */
export function identityFor(hostname: string, network: GuestNetwork): GuestIdentity {
  return {
    hostname,
    nics: network.nics.map(({ mac, name, address }) => ({ mac, name, address })),
    ...(network.gateway === undefined ? {} : { gateway: network.gateway }),
    hosts: network.hosts,
  };
}

function refuse(field: string, message: string): never {
  throw new SkiffError("ERR_SKIFF_IDENTITY", `cannot tell the guest its new identity: ${message}`, {
    place: field,
    hint: "the guest checks these as skiff-init's boot config does (guest/identity.c)",
  });
}

/** What the guest would refuse, refused here first, naming the field. */
function check(identity: GuestIdentity, timeMs: number, seed: Buffer): void {
  if (!Number.isSafeInteger(timeMs) || timeMs < 0 || timeMs >= 1e15) refuse("timeMs", `not a time in Unix ms: ${timeMs}`);
  if (seed.length !== seedBytes) refuse("seed", `a seed is ${seedBytes} bytes, not ${seed.length}`);
  if (!/^[\x21-\x7e]{1,64}$/.test(identity.hostname)) refuse("hostname", `hostname ${JSON.stringify(identity.hostname)}: 1 to 64 visible ASCII characters`);
  if (identity.nics.length > guestLimits.nics) refuse("nics", `${identity.nics.length} NICs, more than the ${guestLimits.nics} skiff-init takes`);
  identity.nics.forEach((nic, i) => {
    const [addr, prefix] = nic.address.split("/");
    const max = isIP(addr ?? "") === 6 ? 128 : 32;
    const ok =
      /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(nic.mac) &&
      /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}$/.test(nic.name) &&
      isIP(addr ?? "") !== 0 &&
      /^\d{1,3}$/.test(prefix ?? "") &&
      Number(prefix) <= max;
    if (!ok) refuse(`nics[${i}]`, `NIC ${JSON.stringify(nic)}: a MAC, an interface name and ADDR/PREFIX`);
  });
  if (identity.gateway !== undefined && !isIPv4(identity.gateway)) refuse("gateway", `gateway ${JSON.stringify(identity.gateway)} is not an IPv4 address`);
  if (identity.hosts.includes("\0")) refuse("hosts", "/etc/hosts holds a NUL byte");
}

/** The line to send (newline included), pure but for the defaults: now, and a seed from the host's CSPRNG. */
export function renderIdentityLine(identity: GuestIdentity, nonce: string): string {
  if (!/^[0-9a-f]{24}$/.test(nonce)) throw new SkiffError("ERR_SKIFF_INTERNAL", `bad nonce for an identity line: ${JSON.stringify(nonce)}`);
  const timeMs = identity.timeMs ?? Date.now();
  const seed = identity.seed ?? randomBytes(seedBytes);
  check(identity, timeMs, seed);
  const lines = [`time=${timeMs}`, `seed=${seed.toString("hex")}`, `hostname=${identity.hostname}`];
  identity.nics.forEach((nic, i) => lines.push(`nic.${i}=${nic.mac} ${nic.name} ${nic.address}`));
  if (identity.gateway !== undefined) lines.push(`gateway=${identity.gateway}`);
  if (identity.warm === true) lines.push("warm=1");
  const payload = Buffer.from(`${lines.join("\n")}\n--\n${identity.hosts}`, "utf8");
  if (payload.length > guestLimits.identityBytes) {
    refuse("hosts", `${payload.length} bytes, more than the ${guestLimits.identityBytes} skiff-init takes (/etc/hosts is most of it)`);
  }
  return `SKIFF-IDENTITY ${nonce} ${payload.toString("hex")}\n`;
}


/** More than the guest's own reasons (256 bytes in skiff-init): an ERR line that has not ended by then is read that far. */
const maxReasonBytes = 300;

/** The guest's answer to `nonce` in what the port sent: undefined for OK, the reason for ERR. */
function answerTo(nonce: string): (seen: Buffer) => Found<string | undefined> | undefined {
  const ok = Buffer.from(`SKIFF-IDENTITY-OK ${nonce}\n`);
  const err = Buffer.from(`SKIFF-IDENTITY-ERR ${nonce} `);
  return (seen) => {
    const okAt = seen.indexOf(ok);
    const errAt = seen.indexOf(err);
    if (okAt >= 0 && (errAt < 0 || okAt < errAt)) return { value: undefined, end: okAt + ok.length };
    if (errAt < 0) return undefined;
    const from = errAt + err.length;
    const newline = seen.indexOf(0x0a, from);
    const end = newline >= 0 ? newline : seen.length - from >= maxReasonBytes ? from + maxReasonBytes : -1;
    if (end < 0) return undefined;
    return { value: guestText(seen.subarray(from, end)), end: end + (newline >= 0 ? 1 : 0) };
  };
}

export interface SendIdentityOptions {
  /** How long the guest has to answer (it runs `ip` for each NIC: allow ~100 ms a NIC under TCG). */
  budgetMs: number;
  /** How often the line is repeated until the answer (default 50 ms, as HELLO). */
  repeatMs?: number;
  /** The VM's name, for the error's place and hint. */
  vm?: string;
}

/**
 * Send `identity` on the agent port at `socketPath` and wait for the guest
 * to have applied it. Throws ERR_SKIFF_IDENTITY when the guest refuses it
 * (its reason in the message), stays silent past the budget, or the port is
 * not there or closes. The port is free again when this returns.
 */
export async function sendIdentity(socketPath: string, identity: GuestIdentity, opts: SendIdentityOptions): Promise<void> {
  const nonce = newNonce();
  const line = renderIdentityLine(identity, nonce);
  const result = await askPort(socketPath, {
    budgetMs: opts.budgetMs,
    ...(opts.repeatMs === undefined ? {} : { repeatMs: opts.repeatMs }),
    line,
    find: answerTo(nonce),
    // Enough for an ERR line that has begun, and no more of what the guest sends.
    tail: 2 * maxReasonBytes,
  });
  if (result.kind === "answered") result.socket.destroy();
  const failure =
    result.kind === "answered"
      ? result.value === undefined
        ? undefined
        : `the guest refused its new identity: ${result.value}`
      : result.kind === "silent"
        ? `the guest did not answer its new identity within ${opts.budgetMs} ms`
        : result.kind === "absent"
          ? `no agent port at ${socketPath} (${result.errno})`
          : `the agent port failed while sending the new identity: ${result.reason}`;
  if (failure === undefined) return;
  throw new SkiffError("ERR_SKIFF_IDENTITY", failure, {
    ...(opts.vm === undefined ? {} : { place: opts.vm, hint: `see the guest's side in \`skiff logs ${opts.vm}\`` }),
    details: { outcome: result.kind === "answered" ? "refused" : result.kind },
  });
}
