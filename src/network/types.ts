/**
 * Networks other than a VM's own user-net NIC: what `skiff network create`
 * records, and what a VM's spec says about its place on one.
 *
 * - `private`: a rootless L2 segment; every VM's NIC is a QEMU socket netdev
 *   on one UDP multicast group on loopback, so frames reach every member and
 *   nothing leaves the host. No host interface, no root.
 * - `bridge` (root): a Linux bridge holding the gateway address, one TAP per
 *   VM, NAT through the host's default route with `masquerade`, no routing at
 *   all with `internal`.
 * - `link`: exactly two VMs joined by a pair of unix datagram sockets.
 */
export type NetworkDriver = "private" | "bridge" | "link";

export const networkDrivers: readonly NetworkDriver[] = ["private", "bridge", "link"];

export interface NetworkRecord {
  schemaVersion: 1;
  name: string;
  /** Random hex; names host-side objects (bridge alias, nft table) so they are never confused with another home's. */
  id: string;
  driver: NetworkDriver;
  /** CIDR, e.g. "10.90.3.0/24". */
  subnet: string;
  /** The router's address: the host's bridge address (bridge), or a VM that routes (given with --gateway). */
  gateway?: string;
  /** bridge: NAT the subnet out of the host's default route. */
  masquerade: boolean;
  /** bridge: the host neither routes nor NATs for this network. */
  internal: boolean;
  /** bridge: the Linux bridge's interface name. */
  bridge?: string;
  /** private: the multicast group and port on 127.0.0.1 carrying the segment's frames. */
  mcast?: { group: string; port: number };
  labels: Record<string, string>;
  createdAt: string;
}

/** A VM's place on one named network, fixed at create. */
export interface NetworkAttachment {
  network: string;
  /** Copied from the network at create, so args need no lookup for the kind of NIC. */
  driver: NetworkDriver;
  /** The VM's address on it, without prefix. */
  ip: string;
  prefix: number;
  mac: string;
  /** link: which end of the pair this VM is (0 or 1). */
  slot?: number;
  /** This VM's default route goes through this address on this network (a router VM), whatever else it has. */
  gateway?: string;
}
