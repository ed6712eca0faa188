/**
 * LaunchPlan: everything needed to start one VM's QEMU, resolved to paths and
 * numbers. Pure data: `toQemuArgs(plan)` turns it into argv without touching
 * the host, so it can be snapshot-tested.
 */
import type { NicPlan } from "../network/nics.js";
import type { NetworkSpec } from "../spec/machine.js";

export type Accel = "kvm" | "tcg";

export interface LaunchPlan {
  name: string;
  qemuBinary: string;
  accel: Accel;
  /**
   * Under TCG, the size of QEMU's translated-code cache (`-accel tcg,tb-size=`,
   * MiB). QEMU's default grows to a gigabyte, and an idle guest kept ~100 MB
   * of it resident; absent: QEMU's default.
   */
  tcgCacheMiB?: number;
  cpus: number;
  memoryMiB: number;
  kernel: {
    /** Uncompressed PVH vmlinux (skiff's, or the user's `kernel.path`). */
    path: string;
    cmdline: string;
    /** The user's words (`kernel.args`), appended after skiff's own, tsc_early_khz included, so they win. */
    extraArgs?: string[];
  };
  /** Boot initramfs (skiff's init, guest tools, modules, per-VM config). */
  initrdPath: string;
  rootDisk: {
    /** qcow2 overlay whose backing file is the image's read-only ext4 base. */
    overlayPath: string;
    /**
     * The guest's flushes are not passed to the host's disk (QEMU's
     * `cache=unsafe`): for a VM whose disk is worth nothing until it has
     * powered off cleanly (a layer build's, engine/launch.ts).
     */
    ignoreFlushes?: boolean;
  };
  /** Serial console: a unix socket to attach to, and its log (QEMU writes it through the jailer's relay: consoleLogFd). */
  console: { socketPath: string; logPath: string };
  qmpSocketPath: string;
  pidfilePath: string;
  /** virtio-serial ports for the guest agent, one SSH session each. */
  agentPorts: { name: string; socketPath: string }[];
  network: NetworkSpec;
  /** NICs on named networks (private, bridge, link), after the user-net NIC. */
  nics: NicPlan[];
  /**
   * Present for a cloud image: boot `-M q35` with firmware from the root disk
   * (whose overlay sits on the image) instead of kernel + initrd, with the
   * NoCloud seed as a second disk and SSH forwarded from 127.0.0.1:sshPort.
   */
  cloud?: { seedPath: string; sshPort: number };
  /** Bind mounts (virtio-9p shares) and named volumes (extra virtio-blk disks), in the spec's order. */
  mounts?: MountPlan[];
  /** Host TSC frequency, passed as tsc_early_khz (microvm has no HPET/PIT to calibrate against). */
  tscKhz: number | undefined;
  /**
   * Guest RAM in a named shared file (memory-backend-file, share=on) rather
   * than QEMU's anonymous memory: a snapshot then copies the file and
   * migrates only the device state (x-ignore-shared), with the guest paused
   * for a tenth of a second (src/snapshot/capture.ts). Absent: anonymous RAM
   * (cloud images, which skiff does not snapshot). `fd`: a sealed copy of a
   * snapshot's RAM that this QEMU holds at that descriptor (the jail keeps it
   * open) and maps privately, copy-on-write, sharing the pages it has not
   * written with the other VMs forked beside it (src/snapshot/shared-ram.ts).
   */
  ram?: { path: string } | { fd: number };
  /**
   * Start waiting for a migration stream instead of booting (-incoming
   * defer): a restore from a snapshot (src/snapshot/restore.ts). These
   * arguments come last, so a restart supervisor can drop them: a VM that
   * crashes after a restore boots cold, never from a stale snapshot.
   */
  incoming?: boolean;
  /** QEMU's -sandbox filter (absent: none, the unjailed path); spawn for guest forwards that run socat. */
  sandbox?: { spawn: boolean };
}

/**
 * One mount as QEMU sees it. The guest finds a share by its mount tag and a
 * volume's disk by its serial (never by probe order), as skiff-init is told
 * in its config.
 */
export type MountPlan =
  | {
      kind: "9p";
      /** `skiff0`, `skiff1`, …: at most 31 bytes (virtio-9p's limit). */
      tag: string;
      hostPath: string;
      target: string;
      readOnly: boolean;
    }
  | {
      kind: "disk";
      /** `skiff-vol0`, …: at most 20 bytes (virtio-blk's serial). */
      serial: string;
      diskPath: string;
      /** raw (a named volume's ext4 disk, the default) or qcow2 (a restored VM's clone of one: an overlay on its snapshot's layer). */
      format?: "raw" | "qcow2";
      target: string;
      readOnly: boolean;
    };

/** The root disk's virtio-blk serial: skiff-init finds the root by it, whatever else is attached. */
export const rootDiskSerial = "skiff-root";

/**
 * Where QEMU finds its console log: a pipe the jailer hands it at this descriptor (logfile=/proc/self/fd/N), whose
 * other end the jailer's relay appends to LaunchPlan.console.logPath, rotated at a limit (src/jail/skiff-jail.c):
 * what the guest prints on its console is the guest's to choose, and QEMU writing the file itself let a guest fill
 * the host's disk (~300 KB/s under TCG).
 */
export const consoleLogFd = 12;

/** The RAM file QEMU maps shared (LaunchPlan.ram), or undefined: anonymous memory, or a sealed memfd it inherits. */
export function ramFileOf(plan: Pick<LaunchPlan, "ram">): string | undefined {
  return plan.ram !== undefined && "path" in plan.ram ? plan.ram.path : undefined;
}
