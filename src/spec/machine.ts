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
  /** The main command is `[...entrypoint, ...command]`, as in Docker: the image's unless overridden. */
  entrypoint: string[];
  /** CMD: the arguments of `run IMAGE CMD...`, or the image's Cmd. */
  command: string[];
  /** Default user of every command in the guest (name or uid[:gid]); the image's `User`. */
  user?: string;
  /** Default working directory of every command; the image's `WorkingDir`. */
  workingDir?: string;
  /** Ports the image says it listens on ("80/tcp"), shown by inspect. */
  exposedPorts: string[];
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
