/**
 * MachineSpec: what the user asked for, as pure data, fully defaulted.
 * Built from CLI flags (later: config files, API, MCP) and stored in the VM's
 * directory; everything else (the LaunchPlan, QEMU's argv) is derived from it.
 */

export type NetworkSpec =
  | { mode: "none" }
  /** QEMU user networking; `restrict` cuts the guest off from the outside (tests). */
  | { mode: "user"; restrict: boolean; forwards: PortForward[] };

export interface PortForward {
  protocol: "tcp" | "udp";
  hostAddress: string;
  hostPort: number;
  guestPort: number;
}

export interface MachineSpec {
  name: string;
  /** Image reference as the user typed it, e.g. "base". */
  image: string;
  cpus: number;
  memoryMiB: number;
  hostname: string;
  /** Environment given to every command run in the guest (`-e`). */
  env: Record<string, string>;
  /** Command of `run IMAGE CMD...`, run by the CLI after boot; empty: none. */
  command: string[];
  network: NetworkSpec;
  /** `--rm`: remove the VM once it stops. */
  autoRemove: boolean;
  labels: Record<string, string>;
}

export const defaults = {
  cpus: 1,
  memoryMiB: 256,
  /** Concurrent exec sessions a VM accepts: one virtio-serial port each. */
  agentPorts: 8,
} as const;
