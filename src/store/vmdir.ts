/**
 * One directory per VM holds everything about it. `vmFiles` names every file
 * that may appear there (after Lima's `filenames`), so no other module
 * invents a path and `skiff rm` knows it removes all of it.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { defaults } from "../spec/machine.js";

/**
 * What the VM's jailed QEMU may write lives in `run/`, the one directory its
 * jail user owns: its sockets and pidfile. Everything else in the VM's
 * directory (config, keys, state, the logs the jailer's relay writes) stays
 * the owner's alone.
 */
const runDirName = "run";
const agentSocketNames = Array.from({ length: defaults.agentPorts }, (_, n) => `${runDirName}/agent-${n}.sock`);

export const vmFiles = {
  /** VmConfig: what the VM is. Written once at create, never by a running VM. */
  config: "config.json",
  /** VmState: last known facts about runs. Status is still derived from pid + QMP. */
  state: "state.json",
  /** Present while the VM is being created; holds the creator, so a crash is detectable. */
  creating: "creating.json",
  /** The jailed QEMU's own directory (owned by its jail user). */
  runDir: runDirName,
  pidfile: `${runDirName}/qemu.pid`,
  qmpSocket: `${runDirName}/qmp.sock`,
  consoleSocket: `${runDirName}/console.sock`,
  /** What the guest printed on its console, written by the jailer's relay (rotated to console.log.1 at a limit). */
  consoleLog: "console.log",
  /** virtio-serial ports of the guest agent; one SSH session each. */
  agentSockets: agentSocketNames as readonly string[],
  overlay: "overlay.qcow2",
  /** A restored VM's clones of named volumes: `N.qcow2` per mount N, each on its snapshot's layer (src/snapshot/volumes.ts). */
  volumeClones: "volumes",
  /** Per-VM boot initramfs (skiff's init + this VM's config blob). */
  initrd: "initrd.img",
  /** Cloud images: the cloud-init NoCloud seed (ISO, label cidata). */
  seed: "seed.iso",
  /** Client key skiff uses to reach the guest. */
  sshKey: "id_ed25519",
  sshPublicKey: "id_ed25519.pub",
  /** The guest's SSH host key, generated on the host so it can be pinned in known_hosts. */
  hostKey: "ssh_host_ed25519_key",
  hostPublicKey: "ssh_host_ed25519_key.pub",
  knownHosts: "known_hosts",
  qemuStderr: "qemu.stderr",
  /** The empty directory the jailer mounts QEMU's private root on. */
  jailRoot: "jail",
  /** Restart policies: the supervisor's pid and a line per QEMU start and end (src/jail/skiff-jail.c). */
  supervisorStatus: "supervisor.log",
  /** Projects: every provision step's command and output (`skiff logs --provision`). */
  provisionLog: "provision.log",
  /** `stop --hibernate`: the guest's memory and device state, until the next start resumes from them. */
  hibernateDir: "hibernate",
  /** A snapshot being taken: its taker, so a guest left paused by a killed capture is resumed (src/snapshot/capture.ts). */
  capturing: "capturing.json",
  /** The unix socket QEMU's migration stream goes through (in the jail's run directory). */
  migrateSocket: `${runDirName}/migrate.sock`,
} as const;

/** Every socket QEMU binds in a VM directory; their length bounds the home path. */
export const socketFiles: readonly string[] = [
  vmFiles.qmpSocket,
  vmFiles.migrateSocket,
  vmFiles.consoleSocket,
  ...vmFiles.agentSockets,
];

export function longestVmFileName(): string {
  return socketFiles.reduce((a, b) => (b.length > a.length ? b : a));
}

export interface VmPaths {
  dir: string;
  config: string;
  state: string;
  creating: string;
  pidfile: string;
  qmpSocket: string;
  consoleSocket: string;
  consoleLog: string;
  agentSockets: string[];
  overlay: string;
  volumeClones: string;
  initrd: string;
  seed: string;
  sshKey: string;
  sshPublicKey: string;
  hostKey: string;
  hostPublicKey: string;
  knownHosts: string;
  qemuStderr: string;
  runDir: string;
  jailRoot: string;
  supervisorStatus: string;
  provisionLog: string;
  hibernateDir: string;
  capturing: string;
  migrateSocket: string;
}

export function vmDir(home: string, id: string): string {
  return join(home, "vms", id);
}

/** A VM's paths with only its own agent ports' sockets (spec/machine.ts: agentPortCount). */
export function withAgentPorts(paths: VmPaths, count: number): VmPaths {
  return { ...paths, agentSockets: paths.agentSockets.slice(0, count) };
}

export function vmPaths(home: string, id: string): VmPaths {
  const dir = vmDir(home, id);
  const at = (file: string) => join(dir, file);
  return {
    dir,
    config: at(vmFiles.config),
    state: at(vmFiles.state),
    creating: at(vmFiles.creating),
    pidfile: at(vmFiles.pidfile),
    qmpSocket: at(vmFiles.qmpSocket),
    consoleSocket: at(vmFiles.consoleSocket),
    consoleLog: at(vmFiles.consoleLog),
    agentSockets: vmFiles.agentSockets.map(at),
    overlay: at(vmFiles.overlay),
    volumeClones: at(vmFiles.volumeClones),
    initrd: at(vmFiles.initrd),
    seed: at(vmFiles.seed),
    sshKey: at(vmFiles.sshKey),
    sshPublicKey: at(vmFiles.sshPublicKey),
    hostKey: at(vmFiles.hostKey),
    hostPublicKey: at(vmFiles.hostPublicKey),
    knownHosts: at(vmFiles.knownHosts),
    qemuStderr: at(vmFiles.qemuStderr),
    runDir: at(vmFiles.runDir),
    jailRoot: at(vmFiles.jailRoot),
    supervisorStatus: at(vmFiles.supervisorStatus),
    provisionLog: at(vmFiles.provisionLog),
    hibernateDir: at(vmFiles.hibernateDir),
    capturing: at(vmFiles.capturing),
    migrateSocket: at(vmFiles.migrateSocket),
  };
}

/** Files of a previous run that must not confuse this one. */
export async function clearRuntimeFiles(paths: VmPaths): Promise<void> {
  await Promise.all(
    [paths.pidfile, paths.qmpSocket, paths.consoleSocket, ...paths.agentSockets].map((p) => rm(p, { force: true })),
  );
}

// The records' types come from their schemas (schema.ts), checked whenever they are read back.
export type { ExitRecord, ImageRecord, JailIds, KernelRecord, SnapshotRef, VmConfig, VmState } from "./schema.js";
