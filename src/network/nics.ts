/**
 * From a VM's network attachments to the NICs QEMU gets, pure. The user-net
 * NIC is `net0` (eth0 in the guest); attachment i is `net<i+1>`.
 */
import { join } from "node:path";
import { tapName } from "./tap.js";
import type { NetworkAttachment, NetworkRecord } from "./types.js";
import { crypto } from "../util/builtins.js";

export type NicBackend =
  /** private: every member sends to and listens on one multicast group on loopback. */
  | { kind: "mcast"; group: string; port: number }
  /**
   * bridge: a TAP the jailer creates and attaches to its bridge before QEMU
   * runs, handed to QEMU as descriptor `fd` (QEMU needs no privilege for it,
   * and the TAP is gone when QEMU ends).
   */
  | { kind: "tap"; ifname: string; bridge: string; fd: number }
  /** link: this end's datagram socket, and the other end's. */
  | { kind: "unix-dgram"; localPath: string; remotePath: string };

export interface NicPlan {
  netdevId: string;
  mac: string;
  backend: NicBackend;
}

export function netdevId(attachmentIndex: number): string {
  return `net${attachmentIndex + 1}`;
}

/**
 * A stable, locally administered unicast MAC: QEMU's 52:54:00 prefix and
 * three bytes of a hash of `key`, so a NIC keeps its address across restarts.
 */
export function macAddress(key: string): string {
  const hash = crypto().createHash("sha256").update(key).digest();
  return ["52", "54", "00", ...[...hash.subarray(0, 3)].map((b) => b.toString(16).padStart(2, "0"))].join(":");
}

/** The MAC of a VM's NIC on a named network (the user-net NIC's is `macAddress(vmName)`). */
export function attachmentMac(vmKey: string, network: string): string {
  return macAddress(`${vmKey}\0${network}`);
}

/** The two ends of a link network, in its run directory. */
export function linkSocketPath(runDir: string, slot: number): string {
  return join(runDir, `end-${slot}.sock`);
}

export function nicPlans(opts: {
  vmId: string;
  attachments: readonly NetworkAttachment[];
  networks: ReadonlyMap<string, NetworkRecord>;
  runDir: (network: string) => string;
}): NicPlan[] {
  let taps = 0;
  return opts.attachments.map((a, i) => {
    const net = opts.networks.get(a.network);
    if (net === undefined) throw new Error(`network ${a.network} not resolved`);
    const backend = backendFor(net, a, i, { ...opts, tapFd: firstTapFd + taps });
    if (backend.kind === "tap") taps++;
    return { netdevId: netdevId(i), mac: a.mac, backend };
  });
}

/** QEMU's descriptors 0–2 are its stdio; TAPs follow in NIC order. */
export const firstTapFd = 3;

function backendFor(
  net: NetworkRecord,
  a: NetworkAttachment,
  index: number,
  opts: { vmId: string; runDir: (network: string) => string; tapFd: number },
): NicBackend {
  switch (net.driver) {
    case "private":
      if (net.mcast === undefined) throw new Error(`private network ${net.name} has no multicast group`);
      return { kind: "mcast", group: net.mcast.group, port: net.mcast.port };
    case "bridge":
      if (net.bridge === undefined) throw new Error(`bridge network ${net.name} has no bridge`);
      return { kind: "tap", ifname: tapName(opts.vmId, index), bridge: net.bridge, fd: opts.tapFd };
    case "link": {
      const slot = a.slot ?? 0;
      const dir = opts.runDir(net.name);
      return { kind: "unix-dgram", localPath: linkSocketPath(dir, slot), remotePath: linkSocketPath(dir, 1 - slot) };
    }
  }
}
