/**
 * The nftables side of a bridge network: one `inet` table per network,
 * named `skiff_<homeTag>_<network id>`, so skiff only ever lists, replaces
 * and deletes tables it can tell are its own (and this home's), and never
 * edits a rule of anyone else's.
 *
 * Why one `inet` table: since Linux 5.2 an inet table can hold a nat chain,
 * so the NAT and the filter rules of a network come and go together in one
 * transaction, for IPv4 and IPv6 alike.
 *
 * Chain priorities: the nat chain runs at `srcnat` (100), where masquerade
 * belongs. The forward chain runs at `filter` (0); the exact number does not
 * change any verdict, because in nftables an `accept` only ends the chain it
 * is in: the packet still meets every other base chain on the forward hook,
 * and a `drop` (a rule, or a chain's policy) anywhere is final. So no
 * priority lets our accepts overrule a host whose own forward policy is
 * drop (Docker's `ip filter FORWARD`); `forwardDropChains` finds such chains
 * so the caller can warn, and the user decides (e.g. Docker's DOCKER-USER).
 * Our drops, for `internal`, hold whatever the other tables say.
 */
import { SkiffError } from "../errors.js";
import type { Runner } from "../process/runner.js";
import { parseSubnet, formatSubnet } from "./ipam.js";
import type { NetworkRecord } from "./types.js";

const nftPackage = "nftables";
/** The table family skiff's tables live in. */
export const nftFamily = "inet";

export function nftTablePrefix(homeTag: string): string {
  return `skiff_${homeTag}_`;
}

export function nftTableName(homeTag: string, networkId: string): string {
  return `${nftTablePrefix(homeTag)}${networkId}`;
}

/** The network id a table of this home is for, or undefined for anyone else's table. */
export function networkIdOfTable(homeTag: string, table: { family: string; name: string }): string | undefined {
  const prefix = nftTablePrefix(homeTag);
  if (table.family !== nftFamily || !table.name.startsWith(prefix)) return undefined;
  const id = table.name.slice(prefix.length);
  return id === "" ? undefined : id;
}

/** The table of one bridge network, as nft's own syntax; pure. */
export function nftTable(net: NetworkRecord, homeTag: string): string {
  const bridge = net.bridge;
  if (bridge === undefined) throw new SkiffError("ERR_SKIFF_INTERNAL", `network ${net.name} has no bridge name`);
  const br = JSON.stringify(bridge);
  const lines = [`table ${nftFamily} ${nftTableName(homeTag, net.id)} {`, `\tcomment "skiff network ${net.name}"`];
  if (net.internal) {
    lines.push(
      "\tchain forward {",
      "\t\ttype filter hook forward priority filter; policy accept;",
      // Only traffic crossing the bridge's edge: frames between two VMs on it stay allowed even where br_netfilter shows them here.
      `\t\tiifname ${br} oifname != ${br} drop`,
      `\t\toifname ${br} iifname != ${br} drop`,
      "\t}",
    );
  } else if (net.masquerade) {
    const subnet = formatSubnet(parseSubnet(net.subnet, net.name));
    lines.push(
      "\tchain postrouting {",
      "\t\ttype nat hook postrouting priority srcnat; policy accept;",
      `\t\tip saddr ${subnet} oifname != ${br} masquerade`,
      "\t}",
      "\tchain forward {",
      "\t\ttype filter hook forward priority filter; policy accept;",
      `\t\tiifname ${br} accept`,
      `\t\toifname ${br} ct state established,related accept`,
      // Ports a later DNAT publishes on purpose.
      `\t\toifname ${br} ct status dnat accept`,
      // New connections into the subnet from elsewhere (other networks included) are not let in, as with Docker.
      `\t\toifname ${br} drop`,
      "\t}",
    );
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

/**
 * A script for `nft -f -` that replaces the table in one transaction: the
 * empty `table` makes sure the `delete` has something to delete, so the same
 * script creates the table or swaps an old one for the current rules.
 */
export function nftReplaceScript(net: NetworkRecord, homeTag: string): string {
  const name = `${nftFamily} ${nftTableName(homeTag, net.id)}`;
  return `table ${name}\ndelete table ${name}\n${nftTable(net, homeTag)}`;
}

export async function applyNftTable(net: NetworkRecord, opts: { homeTag: string; runner: Runner }): Promise<void> {
  await opts.runner.run("nft", ["-f", "-"], { input: nftReplaceScript(net, opts.homeTag), check: true, debianPackage: nftPackage });
}

/** Delete one of our tables; true if it was there. */
export async function deleteNftTable(name: string, runner: Runner): Promise<boolean> {
  const result = await runner.run("nft", ["delete", "table", nftFamily, name], { debianPackage: nftPackage });
  if (result.code === 0) return true;
  if (/No such file or directory/.test(result.stderr)) return false;
  throw new SkiffError("ERR_SKIFF_TOOL_FAILED", `nft could not delete table ${nftFamily} ${name}: ${result.stderr.trim()}`, {
    details: { cmd: "nft", table: name, code: result.code, stderr: result.stderr.trim() },
  });
}

export interface NftChain {
  family: string;
  table: string;
  name: string;
  type?: string;
  hook?: string;
  prio?: number;
  policy?: string;
}

async function listJson<T>(runner: Runner, what: "tables" | "chains", key: "table" | "chain"): Promise<T[]> {
  const result = await runner.run("nft", ["-j", "list", what], { check: true, debianPackage: nftPackage });
  const parsed = JSON.parse(result.stdout || "{}") as { nftables?: Record<string, T>[] };
  return (parsed.nftables ?? []).flatMap((entry) => (entry[key] === undefined ? [] : [entry[key]!]));
}

export function listNftTables(runner: Runner): Promise<{ family: string; name: string }[]> {
  return listJson(runner, "tables", "table");
}

export function listNftChains(runner: Runner): Promise<NftChain[]> {
  return listJson(runner, "chains", "chain");
}

/**
 * Tables of any skiff home that masquerade (have a nat postrouting chain):
 * the networks that need ip_forward. Any home's, not only this one's, so one
 * home giving forwarding back does not cut off another home's networks.
 */
export async function masqueradingSkiffTables(runner: Runner): Promise<string[]> {
  const chains = await listNftChains(runner);
  const tables = chains
    .filter((c) => c.family === nftFamily && c.table.startsWith("skiff_") && c.type === "nat" && c.hook === "postrouting")
    .map((c) => c.table);
  return [...new Set(tables)];
}

/**
 * Other tables' forward base chains whose policy is drop, as "family
 * table/chain": where they exist, forwarded traffic of a masquerade network
 * is dropped whatever our chain accepts (see the top of this file).
 * Rules of iptables-legacy are invisible to nft and not found here.
 */
export async function forwardDropChains(runner: Runner): Promise<string[]> {
  const chains = await listNftChains(runner);
  return chains
    .filter((c) => c.hook === "forward" && c.policy === "drop" && !c.table.startsWith("skiff_"))
    .map((c) => `${c.family} ${c.table}/${c.name}`);
}
