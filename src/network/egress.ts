/**
 * Where a VM's traffic may go, enforced on the host, never in the guest.
 *
 * A guest on QEMU user networking reaches the world through sockets that
 * its QEMU opens on the host, and 10.0.2.2 is the host's own loopback: left
 * alone, every guest reaches every service bound to the host's 127.0.0.1.
 * Jailed as root, each VM's QEMU runs as a uid no other process has
 * (src/jail/claims.ts), so one nftables table per jail uid,
 * `inet skiff_jail_<uid>`, filters exactly that VM's connections on the
 * output hook (`meta skuid`):
 *
 * - replies on connections made to the VM (published ports) pass;
 * - DNS to the host's resolvers passes (slirp's 10.0.2.3 forwards to them,
 *   and they are often on loopback), except with `deny`;
 * - the host's loopback (127.0.0.0/8, ::1) is refused unless the VM may
 *   reach it (`--host-loopback`, whatever the policy, or a loopback address
 *   in `allow=`);
 * - then `all` passes the rest, `deny` refuses it, `allow=` passes only the
 *   destinations listed.
 *
 * The table is replaced at every start and deleted when the VM's QEMU ends
 * and when its uid is handed to another VM, so no rule outlives its VM.
 * Without root there is no uid to tell QEMU by: only `deny` holds (QEMU's
 * restrict=on); docs/security.md says so.
 */
import { readFileSync } from "node:fs";
import { SkiffError } from "../errors.js";
import { dns, net } from "../util/builtins.js";
import type { Runner } from "../process/runner.js";
import { formatSubnet, parseSubnet } from "./ipam.js";

export interface EgressRule {
  /** An IPv4 or IPv6 network in CIDR form (a single address is /32 or /128). */
  cidr: string;
  port?: number;
}

export interface EgressSpec {
  policy: "all" | "deny" | "allow";
  /** With policy "allow": the only destinations. */
  allow: EgressRule[];
  /** The guest may reach services on the host's loopback (10.0.2.2 on user networking). */
  hostLoopback: boolean;
}

export const defaultEgress: EgressSpec = { policy: "all", allow: [], hostLoopback: false };

const nftPackage = "nftables";

export function egressTableName(uid: number): string {
  if (!Number.isInteger(uid) || uid <= 0) throw new SkiffError("ERR_SKIFF_INTERNAL", `bad jail uid ${uid}`);
  return `skiff_jail_${uid}`;
}

/**
 * Parse the words of `--egress` (repeatable): `all`, `deny`, or
 * `allow=DEST[,DEST…]` with DEST an address, a CIDR or `[v6]`, each with an
 * optional `:PORT`. Host names are resolved by the caller (resolveEgress).
 */
export function parseEgress(values: readonly string[], place = "egress"): { policy: EgressSpec["policy"]; destinations: string[] } {
  let policy: EgressSpec["policy"] | undefined;
  const destinations: string[] = [];
  for (const value of values) {
    const word = value.trim();
    const allow = /^allow=(.*)$/.exec(word);
    const next: EgressSpec["policy"] = allow !== null ? "allow" : word === "all" || word === "deny" ? word : badEgress(value, place);
    if (policy !== undefined && policy !== next) {
      throw new SkiffError("ERR_SKIFF_USAGE", `egress policies ${policy} and ${next} cannot be combined`, {
        place,
        hint: "give one policy: all (the default), deny, or allow=DEST,… (repeat allow= to add destinations)",
      });
    }
    policy = next;
    if (allow !== null) {
      const items = allow[1]!.split(",").map((s) => s.trim()).filter((s) => s !== "");
      if (items.length === 0) badEgress(value, place);
      destinations.push(...items);
    }
  }
  return { policy: policy ?? "all", destinations };
}

function badEgress(value: string, place: string): never {
  throw new SkiffError("ERR_SKIFF_USAGE", `invalid egress policy: ${JSON.stringify(value)}`, {
    place,
    hint: "use all, deny, or allow=HOST[:PORT],CIDR[:PORT],… (e.g. allow=10.0.0.0/8,pypi.org:443)",
  });
}

/** What a caller asks for: destinations as typed (names resolved at create by resolveEgress). */
export interface EgressRequest {
  policy?: EgressSpec["policy"];
  allow?: string[];
  hostLoopback?: boolean;
  /** Where the request came from, for errors (an option field such as `egress`, a flag, `skiff.yml:12:5`). */
  place?: string;
}

/**
 * An EgressSpec from a request: every destination as a CIDR, host names
 * resolved now (all their addresses), once, so the rules never depend on a
 * lookup the guest could influence later.
 */
export async function resolveEgress(req: EgressRequest): Promise<EgressSpec> {
  const place = req.place ?? "egress";
  const policy = req.policy ?? ((req.allow ?? []).length > 0 ? "allow" : "all");
  if (policy !== "allow" && (req.allow ?? []).length > 0) {
    throw new SkiffError("ERR_SKIFF_USAGE", `egress destinations only go with the allow policy, not ${policy}`, { place });
  }
  const allow: EgressRule[] = [];
  for (const text of req.allow ?? []) {
    const { host, port } = splitDestination(text, place);
    const cidr = cidrOf(host);
    const cidrs = cidr !== undefined ? [cidr] : await resolveName(host, place);
    for (const c of cidrs) allow.push({ cidr: c, ...(port === undefined ? {} : { port }) });
  }
  return { policy, allow, hostLoopback: req.hostLoopback ?? false };
}

async function resolveName(host: string, place: string): Promise<string[]> {
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/.test(host)) badDestination(host, place);
  try {
    const found = await dns().lookup(host, { all: true });
    return [...new Set(found.map((a) => (a.family === 6 ? `${a.address}/128` : `${a.address}/32`)))];
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_USAGE", `egress destination ${host} does not resolve: ${(err as Error).message}`, {
      place,
      hint: "give an address or CIDR, or a name the host can resolve",
      cause: err,
    });
  }
}

/** Split `DEST[:PORT]` (IPv6 in brackets when it has a port). */
export function splitDestination(text: string, place = "egress"): { host: string; port?: number } {
  let host = text;
  let port: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?(\/\d+)?$/.exec(text);
  if (bracket !== null) {
    host = bracket[1]! + (bracket[3] ?? "");
    port = bracket[2];
  } else if (!net().isIPv6(text.split("/")[0]!)) {
    const colon = text.lastIndexOf(":");
    if (colon >= 0) {
      host = text.slice(0, colon);
      port = text.slice(colon + 1);
    }
  }
  if (host === "") badDestination(text, place);
  if (port === undefined) return { host };
  const n = Number(port);
  if (!/^\d+$/.test(port) || n < 1 || n > 65535) badDestination(text, place);
  return { host, port: n };
}

function badDestination(text: string, place: string): never {
  throw new SkiffError("ERR_SKIFF_USAGE", `invalid egress destination: ${JSON.stringify(text)}`, {
    place,
    hint: "give an address, a CIDR or a host name, each with an optional :PORT (IPv6 as [::1]:80)",
  });
}

/** An address or CIDR as nft takes it; undefined when `host` is neither (a name to resolve). */
export function cidrOf(host: string): string | undefined {
  const [addr, bits] = host.split("/");
  if (net().isIPv4(addr!)) {
    if (bits === undefined) return `${addr}/32`;
    return formatSubnet(parseSubnet(host, "egress"));
  }
  if (net().isIPv6(addr!)) {
    const n = bits === undefined ? 128 : Number(bits);
    if (!Number.isInteger(n) || n < 0 || n > 128) return undefined;
    return `${addr}/${n}`;
  }
  return undefined;
}

/**
 * The VM's table, as nft's own syntax; pure. `resolvers`: the host's
 * nameservers; `forwards`: host services skiff itself connects the guest to
 * (a layer build's loopback apt mirror, through a guestfwd), whatever the policy.
 */
export function egressTable(
  uid: number,
  egress: EgressSpec,
  resolvers: readonly string[],
  forwards: readonly EgressRule[] = [],
  ephemeral: readonly [number, number] = [32768, 60999],
): string {
  const name = egressTableName(uid);
  const rules: string[] = [`meta skuid != ${uid} return`, "ct state established,related accept"];
  for (const r of forwards) rules.push(`ip daddr ${r.cidr}${r.port === undefined ? "" : ` tcp dport ${r.port}`} accept`);
  // A guest forward's socat talks to QEMU through a loopback socket pair QEMU's user networking makes for
  // it (libslirp binds 127.0.0.1 on an ephemeral port, then connects to it): that connection must pass.
  if (forwards.length > 0) rules.push(`ip daddr 127.0.0.1 tcp dport ${ephemeral[0]}-${ephemeral[1]} accept`);
  if (egress.policy !== "deny") {
    for (const ns of resolvers) {
      const family = net().isIPv6(ns) ? "ip6" : net().isIPv4(ns) ? "ip" : undefined;
      if (family === undefined) continue;
      rules.push(`${family} daddr ${ns} udp dport 53 accept`, `${family} daddr ${ns} tcp dport 53 accept`);
    }
  }
  if (egress.policy === "allow") {
    for (const r of egress.allow) {
      const family = r.cidr.includes(":") ? "ip6" : "ip";
      const port = r.port === undefined ? "" : ` th dport ${r.port}`;
      rules.push(`${family} daddr ${r.cidr}${port} accept`);
    }
  }
  // Listed loopback destinations passed above; the rest of the loopback as the VM may. Refused with
  // reject, not drop: QEMU's connect fails at once and the guest gets a reset, not a long timeout.
  const verdict = egress.hostLoopback ? "accept" : "reject";
  rules.push(`ip daddr 127.0.0.0/8 ${verdict}`, `ip6 daddr ::1 ${verdict}`);
  rules.push(egress.policy === "all" ? "accept" : "reject");
  return [
    `table inet ${name} {`,
    `\tcomment "skiff: what jail uid ${uid} may reach"`,
    "\tchain output {",
    "\t\ttype filter hook output priority filter; policy accept;",
    ...rules.map((r) => `\t\t${r}`),
    "\t}",
    "}",
    "",
  ].join("\n");
}

/** Put the VM's table in place (replacing any older one of its uid) in one transaction. */
export async function applyEgress(
  runner: Runner,
  uid: number,
  egress: EgressSpec,
  resolvers: readonly string[],
  forwards: readonly EgressRule[] = [],
): Promise<void> {
  const name = egressTableName(uid);
  const script = `table inet ${name}\ndelete table inet ${name}\n${egressTable(uid, egress, resolvers, forwards, localPortRange())}`;
  await runner.run("nft", ["-f", "-"], { input: script, check: true, debianPackage: nftPackage });
}

/** Delete a jail uid's table, if there is one. */
export async function removeEgress(runner: Runner, uid: number): Promise<void> {
  const name = egressTableName(uid);
  await runner.run("nft", ["-f", "-"], { input: `table inet ${name}\ndelete table inet ${name}\n`, check: true, debianPackage: nftPackage });
}

/** The jail uids that have a table in this network namespace. */
export async function egressTableUids(runner: Runner): Promise<number[]> {
  const r = await runner.run("nft", ["list", "tables", "inet"], { debianPackage: nftPackage });
  if (r.code !== 0) return [];
  return [...r.stdout.matchAll(/^table inet skiff_jail_(\d+)$/gm)].map((m) => Number(m[1]));
}

/** The host's ephemeral port range (net.ipv4.ip_local_port_range). */
function localPortRange(): [number, number] {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    // fall through
  }
  return [32768, 60999];
}
