/**
 * MachineSpec: what the user asked for, as pure data, fully defaulted.
 * Built from CLI flags (later: config files, API, MCP) and stored in the VM's
 * directory; everything else (the LaunchPlan, QEMU's argv) is derived from it.
 */

import type { EgressSpec } from "../network/egress.js";
import type { NetworkAttachment } from "../network/types.js";

/** The label a layer build's VM carries (engine/layers.ts), its value the build's hash. */
export const buildVmLabel = "skiff.layer-build";

/** The VM's user-networking NIC (eth0), or none. Named networks are `MachineSpec.networks`. */
export type NetworkSpec =
  | { mode: "none" }
  /** QEMU user networking; `restrict` cuts the guest off from the outside (tests). */
  | { mode: "user"; restrict: boolean; forwards: PortForward[]; guestForwards?: GuestForward[] };

/**
 * Whether user networking is restricted when nothing says otherwise:
 * SKIFF_USERNET_RESTRICT=1 (tests, cautious users) gives guests no route
 * out of the host.
 */
export function restrictUserNetByDefault(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.SKIFF_USERNET_RESTRICT === "1";
}

export interface PortForward {
  protocol: "tcp" | "udp";
  hostAddress: string;
  hostPort: number;
  guestPort: number;
}

/**
 * A user-net `guestfwd`: the guest's TCP connections to `guestAddress:guestPort`
 * (an address inside user-net's 10.0.2.0/24) reach `hostAddress:hostPort` on
 * the host. restrict=on does not block them, so a restricted guest can still
 * reach one chosen host service (a layer build's loopback apt mirror).
 */
export interface GuestForward {
  guestAddress: string;
  guestPort: number;
  hostAddress: string;
  hostPort: number;
}

/**
 * How the VM boots. `microvm` (the default, and what a config without `boot`
 * means): skiff's kernel and initramfs on `-M microvm`, the image as an ext4
 * root, the guest agent over virtio-serial. `cloud`: a whole disk with its own
 * bootloader on `-M q35` + SeaBIOS, configured by a cloud-init NoCloud seed,
 * reached by SSH over a user-net forward of `sshPort` on 127.0.0.1.
 */
export type BootSpec =
  | { kind: "microvm" }
  | {
      kind: "cloud";
      /** The cached read-only cloud image the overlay sits on. */
      imagePath: string;
      format: "qcow2" | "raw";
      /** `--disk`: the overlay is resized to this (never below the image's own size). */
      diskBytes?: number;
      /** `--user-data`: the user's file, merged into skiff's (see cloudInitSeed). */
      userDataPath?: string;
      /** Host port on 127.0.0.1 forwarded to the guest's port 22; unique among VMs (allocated under the "ports" lock). */
      sshPort: number;
      /** The image's default user, whom cloud-init gives the VM's key. */
      sshUser: string;
    };

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
  /** Named networks (private, bridge, link), in the order given: eth1, eth2, … after a user NIC (eth0). */
  networks?: NetworkAttachment[];
  /** `--dns`: nameservers for the guest's resolv.conf; default: user-net's, else the host's. */
  dns?: string[];
  /** `--rm`: remove the VM once it stops. */
  autoRemove: boolean;
  labels: Record<string, string>;
  /** Absent in configs written before cloud images: microvm. */
  boot?: BootSpec;
  /** Host directories and named volumes mounted in the guest, in order (microvm only). */
  mounts?: Mount[];
  /** A kernel of the user's instead of skiff's, and words appended to the command line. */
  kernel?: KernelSpec;
  /** Set: skiff-init starts the main command itself and restarts it by this policy (services of `skiff up`). */
  init?: InitSpec;
  /** Where the VM's traffic may go (src/network/egress.ts); absent: anywhere but the host's loopback. */
  egress?: EgressSpec;
  /** When QEMU itself ends: started again by a supervisor (on-failure, always, unless-stopped) or not. */
  restart?: RestartPolicy;
}

/**
 * A host directory shared live with the guest (virtio-9p), or a named
 * volume (an ext4 disk of its own, see src/volume/) mounted at `target`.
 */
export type Mount =
  /** `source`: an absolute host directory. */
  | { kind: "bind"; source: string; target: string; readOnly: boolean }
  /** `volume`: the name of a skiff volume (`skiff volume ls`). */
  | { kind: "volume"; volume: string; target: string; readOnly: boolean }
  /**
   * A restored VM's private copy-on-write clone of named volume `volume` as
   * its snapshot captured it (src/snapshot/volumes.ts), not the volume
   * itself: made by restore and fork only, never asked for.
   */
  | { kind: "clone"; volume: string; target: string; readOnly: boolean };

export interface KernelSpec {
  /** An uncompressed (PVH) vmlinux or bzImage with virtio built in; skiff's modules are then optional. */
  path?: string;
  /** Appended to skiff's own kernel command line. */
  args?: string[];
}

export type RestartPolicy = "no" | "on-failure" | "always" | "unless-stopped";

export interface InitSpec {
  restart: RestartPolicy;
}

export function bootOf(spec: MachineSpec): BootSpec {
  return spec.boot ?? { kind: "microvm" };
}

export const defaults = {
  cpus: 1,
  memoryMiB: 256,
  /** Cloud images run a full distribution (systemd, cloud-init in Python): 256 MiB is too tight. */
  cloudMemoryMiB: 1024,
  /** Concurrent exec sessions a VM accepts: one virtio-serial port each. */
  agentPorts: 8,
} as const;

/**
 * The agent ports a VM gets. Each costs the guest 4 MiB of RAM for as long
 * as it runs: Linux's virtio_console fills a port's receive ring (1024
 * entries on QEMU 7.2) with a page each. Eight ports and the control queue
 * held 36 MiB of a 64 MiB guest, more than it had once the kernel and
 * initramfs were in (measured: 9232 kmalloc-4k objects). A VM below 128 MiB
 * gets two ports, 8 MiB: its sessions beyond two wait for a free port.
 */
export function agentPortCount(memoryMiB: number): number {
  return memoryMiB < 128 ? 2 : defaults.agentPorts;
}
