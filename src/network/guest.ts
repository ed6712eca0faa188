/**
 * What the guest's init is told about its network, pure: each NIC by MAC
 * with its address, the default route, nameservers and /etc/hosts. No DHCP:
 * skiff knows every address already, having handed them out.
 */
import { macAddress } from "./nics.js";
import type { NetworkDriver, NetworkRecord } from "./types.js";
import type { MachineSpec } from "../spec/machine.js";

/** QEMU user networking's fixed addresses (slirp defaults). */
export const userNet = { address: "10.0.2.15", prefix: 24, gateway: "10.0.2.2", dns: "10.0.2.3" } as const;

export interface VmInterface {
  /** The name skiff's init gives it: user networking's eth0, then eth1, eth2, … in the order the networks were given. */
  name: string;
  /** "user" for QEMU user networking, else the named network. */
  network: string;
  driver: "user" | NetworkDriver;
  mac: string;
  /** "10.90.0.2/24". */
  address: string;
}

/** A VM's NICs in the guest's order. */
export function interfacesOf(spec: MachineSpec): VmInterface[] {
  const out: VmInterface[] = [];
  if (spec.network.mode === "user") {
    out.push({ name: "eth0", network: "user", driver: "user", mac: macAddress(spec.name), address: `${userNet.address}/${userNet.prefix}` });
  }
  for (const a of spec.networks ?? []) {
    out.push({ name: `eth${out.length}`, network: a.network, driver: a.driver, mac: a.mac, address: `${a.ip}/${a.prefix}` });
  }
  return out;
}

export interface GuestNetwork {
  nics: VmInterface[];
  gateway?: string;
  dns: string[];
  /** The whole /etc/hosts. */
  hosts: string;
}

export interface Peer {
  name: string;
  hostname: string;
  /** network name → the peer's address on it. */
  addresses: ReadonlyMap<string, string>;
}

export function guestNetwork(opts: {
  spec: MachineSpec;
  networks: ReadonlyMap<string, NetworkRecord>;
  /** Every other VM of this home; those sharing a network with this one end up in /etc/hosts. */
  peers: readonly Peer[];
  /** Nameservers of the host, for VMs without user networking. */
  hostDns: readonly string[];
}): GuestNetwork {
  const { spec } = opts;
  // A gateway given for one of its networks (a router VM in a project) wins over user networking's.
  let gateway: string | undefined = (spec.networks ?? []).find((a) => a.gateway !== undefined)?.gateway;
  gateway ??= spec.network.mode === "user" ? userNet.gateway : undefined;
  for (const a of spec.networks ?? []) {
    const net = opts.networks.get(a.network);
    // The first network with a router gives the default route when there is no user networking.
    if (gateway === undefined && net?.gateway !== undefined && !net.internal && net.gateway !== a.ip) gateway = net.gateway;
  }
  const dns = spec.dns !== undefined && spec.dns.length > 0 ? [...spec.dns] : spec.network.mode === "user" ? [userNet.dns] : [...opts.hostDns];
  return { nics: interfacesOf(spec), ...(gateway === undefined ? {} : { gateway }), dns, hosts: renderHosts(spec, opts.peers) };
}

/** /etc/hosts: loopback, this VM's own name on each of its addresses, and every VM it shares a network with. */
export function renderHosts(spec: MachineSpec, peers: readonly Peer[]): string {
  const lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"];
  const own = spec.networks ?? [];
  const names = (name: string, hostname: string) => (name === hostname ? name : `${hostname} ${name}`);
  if (own.length === 0) lines.push(`127.0.1.1\t${names(spec.name, spec.hostname)}`);
  for (const a of own) lines.push(`${a.ip}\t${names(spec.name, spec.hostname)}`);
  const mine = new Set(own.map((a) => a.network));
  const seen = new Set<string>();
  for (const peer of [...peers].sort((a, b) => a.name.localeCompare(b.name))) {
    for (const [network, ip] of peer.addresses) {
      if (!mine.has(network) || seen.has(`${peer.name}@${ip}`)) continue;
      seen.add(`${peer.name}@${ip}`);
      lines.push(`${ip}\t${names(peer.name, peer.hostname)}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The nameservers a guest without user networking can use: the host's, minus loopback ones it cannot reach. */
export function hostNameservers(resolvConf: string): string[] {
  return resolvConf
    .split("\n")
    .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
    .filter((ip): ip is string => ip !== undefined && /^\d+\.\d+\.\d+\.\d+$/.test(ip) && !ip.startsWith("127."));
}
