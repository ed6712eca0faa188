/**
 * IPv4 address management, pure: CIDR parsing, overlap, and picking the
 * next free address. Who holds which address is read from the VM records
 * (under the network's lock) by the caller, so there is no lease file that
 * could drift from the VMs that really exist.
 */
import { SkiffError } from "../errors.js";

export interface Subnet {
  /** Network address as a 32-bit unsigned number. */
  base: number;
  prefix: number;
}

export function parseIpv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text.trim());
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return (((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0);
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** "10.0.0.0/24" → Subnet; host bits set ("10.0.0.5/24") are an error, as Docker makes them. */
export function parseSubnet(text: string, place = "subnet"): Subnet {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text.trim());
  const base = m ? parseIpv4(m[1]!) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (base === undefined || !(prefix >= 8 && prefix <= 30)) {
    throw new SkiffError("ERR_SKIFF_USAGE", `not an IPv4 subnet: ${text}`, {
      place,
      hint: "give a CIDR with a prefix from /8 to /30, e.g. 10.90.0.0/24",
    });
  }
  if ((base & mask(prefix)) >>> 0 !== base) {
    throw new SkiffError("ERR_SKIFF_USAGE", `${text} has host bits set`, {
      place,
      hint: `did you mean ${formatIpv4((base & mask(prefix)) >>> 0)}/${prefix}?`,
    });
  }
  return { base, prefix };
}

export function formatSubnet(s: Subnet): string {
  return `${formatIpv4(s.base)}/${s.prefix}`;
}

export function subnetContains(s: Subnet, ip: number): boolean {
  return (ip & mask(s.prefix)) >>> 0 === s.base;
}

export function subnetsOverlap(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return (a.base & mask(p)) >>> 0 === (b.base & mask(p)) >>> 0;
}

function broadcast(s: Subnet): number {
  return (s.base | ~mask(s.prefix)) >>> 0;
}

/** The conventional gateway: the first host address. */
export function firstHost(s: Subnet): string {
  return formatIpv4(s.base + 1);
}

/**
 * Check an address a user asked for: inside the subnet, not its network or
 * broadcast address, not the gateway, not taken.
 */
export function checkRequestedAddress(opts: {
  subnet: Subnet;
  ip: string;
  taken: ReadonlyMap<string, string>;
  gateway?: string;
  network: string;
  place: string;
}): string {
  const n = parseIpv4(opts.ip);
  if (n === undefined) {
    throw new SkiffError("ERR_SKIFF_USAGE", `not an IPv4 address: ${opts.ip}`, { place: opts.place, hint: "e.g. 10.90.0.10" });
  }
  const text = formatIpv4(n);
  const range = formatSubnet(opts.subnet);
  if (!subnetContains(opts.subnet, n) || n === opts.subnet.base || n === broadcast(opts.subnet)) {
    throw new SkiffError("ERR_SKIFF_USAGE", `${text} is not a host address of network ${opts.network} (${range})`, {
      place: opts.place,
      hint: `choose an address inside ${range}, or leave the address out to get one`,
    });
  }
  if (opts.gateway === text) {
    throw new SkiffError("ERR_SKIFF_ADDRESS_IN_USE", `${text} is the gateway of network ${opts.network}`, {
      place: opts.place,
      hint: "choose another address, or leave the address out to get one",
    });
  }
  const holder = opts.taken.get(text);
  if (holder !== undefined) {
    throw new SkiffError("ERR_SKIFF_ADDRESS_IN_USE", `${text} on network ${opts.network} is taken by ${holder}`, {
      place: opts.place,
      hint: "choose another address, or leave the address out to get one",
    });
  }
  return text;
}

/**
 * The lowest free host address. Unless `reserveFirst` is false (a link: two
 * VMs and no router), the first host address is left for a gateway (the
 * host's bridge, or a router VM given it with --ip), so an allocated
 * address never has to move when a gateway appears later.
 */
export function allocateAddress(opts: {
  subnet: Subnet;
  taken: ReadonlySet<string> | ReadonlyMap<string, string>;
  network: string;
  reserveFirst?: boolean;
}): string {
  const last = broadcast(opts.subnet) - 1;
  for (let n = opts.subnet.base + (opts.reserveFirst === false ? 1 : 2); n <= last; n++) {
    const text = formatIpv4(n);
    if (!opts.taken.has(text)) return text;
  }
  throw new SkiffError("ERR_SKIFF_ADDRESS_IN_USE", `network ${opts.network} (${formatSubnet(opts.subnet)}) has no free address left`, {
    place: opts.network,
    hint: "remove VMs from it, or create a network with a larger subnet",
  });
}

/**
 * A /24 for a new network that overlaps none of `used`: 10.90.0.0/24,
 * 10.90.1.0/24, … (10.90/16 is skiff's pool, as 172.17/16 is Docker's).
 */
export function pickSubnet(used: readonly Subnet[]): Subnet {
  for (let third = 0; third < 256; third++) {
    const candidate = { base: parseIpv4(`10.90.${third}.0`)!, prefix: 24 };
    if (!used.some((u) => subnetsOverlap(u, candidate))) return candidate;
  }
  throw new SkiffError("ERR_SKIFF_USAGE", "skiff's default pool 10.90.0.0/16 is used up", {
    place: "subnet",
    hint: "give the network a subnet of its own",
  });
}

/** A VM's default route `gateway` must be an address of the network it is given for (`up`, and `skiff config` before it). */
export function checkGateway(gateway: string, subnet: Subnet, network: string, place: string): string {
  const ip = parseIpv4(gateway);
  if (ip === undefined || !subnetContains(subnet, ip)) {
    throw new SkiffError("ERR_SKIFF_USAGE", `gateway ${gateway} is not on network ${network} (${formatSubnet(subnet)})`, {
      place,
      hint: "a gateway must be an address of the network it is given for",
    });
  }
  return gateway;
}

/** A network's own `gateway`: a host address of its subnet (`network create`, and `skiff config` for a project's networks). */
export function checkNetworkGateway(gateway: string, subnet: Subnet, place: string): string {
  const n = parseIpv4(gateway);
  if (n === undefined || !subnetContains(subnet, n) || n === subnet.base) {
    throw new SkiffError("ERR_SKIFF_USAGE", `gateway ${gateway} is not a host address of ${formatSubnet(subnet)}`, {
      place,
      hint: `leave it out for ${firstHost(subnet)}, or give an address inside the subnet`,
    });
  }
  return gateway;
}
