/**
 * Names of the host objects of bridge networks, pure: interface names,
 * the alias that marks a bridge as skiff's, and the tag that tells one
 * skiff home's objects from another's on the same host.
 */
import { resolve } from "node:path";
import { SkiffError } from "../errors.js";
import { crypto } from "../util/builtins.js";

/** IFNAMSIZ - 1: the kernel's limit on an interface name. */
export const maxIfNameLength = 15;

/**
 * Stricter than the kernel (which takes anything but '/', ':' and white
 * space): the name also goes into nft strings, where '*' is a wildcard and a
 * '"' cannot be written, into a shell script, and into ip's argv.
 */
const ifNamePattern = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export function validateIfName(name: string, place = "bridgeName"): string {
  if (name.length === 0 || name.length > maxIfNameLength || !ifNamePattern.test(name)) {
    throw new SkiffError("ERR_SKIFF_BAD_NAME", `invalid interface name ${JSON.stringify(name)}`, {
      place,
      hint: `use 1 to ${maxIfNameLength} letters, digits, '_', '.' or '-', starting with a letter, digit or '_'`,
    });
  }
  return name;
}

/**
 * The bridge of a network nobody named one for: `skb-` + the network's
 * name. A name too long to fit keeps its start and gets a hash of the
 * whole, so two long names with a common start do not meet on one bridge.
 */
export function defaultBridgeName(networkName: string): string {
  const prefix = "skb-";
  const safe = networkName.replace(/[^A-Za-z0-9_-]/g, "-");
  if (prefix.length + safe.length <= maxIfNameLength && safe !== "") return `${prefix}${safe}`;
  const hash = crypto().createHash("sha256").update(networkName).digest("hex").slice(0, 4);
  return `${prefix}${safe.slice(0, maxIfNameLength - prefix.length - hash.length - 1)}-${hash}`;
}

/** First 8 hex of sha256 of the home's absolute path: this home's mark on host-wide objects. */
export function homeTag(home: string): string {
  return crypto().createHash("sha256").update(resolve(home)).digest("hex").slice(0, 8);
}

/** The interface alias a bridge of this home's network `networkId` carries. */
export function bridgeAlias(tag: string, networkId: string): string {
  return `skiff:${tag}:${networkId}`;
}

/**
 * The name a bridge is made under, before it is tagged and renamed to its
 * own: `ip link add` cannot set the alias, so without this a crash between
 * the two commands would leave an untagged bridge under the network's name,
 * which skiff could neither prove its own nor make again. This name carries
 * the home's tag itself (and the start of the network id).
 */
export function pendingBridgeName(tag: string, networkId: string): string {
  return `${pendingPrefix(tag)}${networkId.slice(0, maxIfNameLength - pendingPrefix(tag).length)}`;
}

/** Whether `name` is a bridge name of this home's made under pendingBridgeName. */
export function isPendingBridgeName(tag: string, name: string): boolean {
  return name.startsWith(pendingPrefix(tag)) && name.length > pendingPrefix(tag).length;
}

const pendingPrefix = (tag: string) => `skn${tag}`;

/** What an alias says about whose bridge it is; undefined for an alias skiff did not write. */
export function parseBridgeAlias(alias: string | undefined): { tag: string; networkId: string } | undefined {
  const m = /^skiff:([0-9a-f]{8}):([A-Za-z0-9]+)$/.exec(alias ?? "");
  return m ? { tag: m[1]!, networkId: m[2]! } : undefined;
}

/** A network id goes into nft identifiers and the alias: letters and digits only. */
export function checkNetworkId(id: string, network: string): void {
  if (!/^[A-Za-z0-9]{1,64}$/.test(id)) {
    throw new SkiffError("ERR_SKIFF_STATE_CORRUPT", `network ${network} has an unusable id ${JSON.stringify(id)}`, {
      place: network,
      hint: `remove and recreate the network: skiff network rm ${network}`,
    });
  }
}
