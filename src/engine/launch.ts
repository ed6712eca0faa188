/**
 * From a stored VM to a running QEMU: plan (pure), the VM's initrd, spawn.
 */
import { rm } from "node:fs/promises";
import { ensureBaseInitramfs, writeVmInitrd, type GuestConfig } from "../guest/initramfs.js";
import { SkiffError } from "../errors.js";
import { toQemuArgs } from "../qemu/args.js";
import type { LaunchPlan, MountPlan } from "../qemu/plan.js";
import type { GuestNetwork } from "../network/guest.js";
import type { NicPlan } from "../network/nics.js";
import type { Runner } from "../process/runner.js";
import { processStartTime, readPidfile, type ProcessIdentity } from "../process/pid.js";
import { readFile } from "node:fs/promises";
import type { MachineSpec } from "../spec/machine.js";
import type { VmPaths } from "../store/vmdir.js";
import type { HostFacts } from "./host.js";

/** Guest kernel command line. `quiet`: every line on the serial console costs time under TCG. */
export const kernelCmdline = "console=ttyS0 quiet panic=-1";

/** The VM's NICs on named networks and what its init is told about all its networks (vm-network.ts). */
export interface VmNetworking {
  nics: NicPlan[];
  guest: GuestNetwork;
}

export function buildPlan(opts: { spec: MachineSpec; paths: VmPaths; facts: HostFacts; nics: NicPlan[]; mounts?: MountPlan[] }): LaunchPlan {
  const { spec, paths, facts } = opts;
  const extraArgs = spec.kernel?.args ?? [];
  return {
    name: spec.name,
    qemuBinary: facts.qemuBinary,
    accel: facts.accel.accel,
    cpus: spec.cpus,
    memoryMiB: spec.memoryMiB,
    kernel: { path: spec.kernel?.path ?? facts.vmlinuxPath, cmdline: kernelCmdline, ...(extraArgs.length === 0 ? {} : { extraArgs }) },
    initrdPath: paths.initrd,
    rootDisk: { overlayPath: paths.overlay },
    console: { socketPath: paths.consoleSocket, logPath: paths.consoleLog },
    qmpSocketPath: paths.qmpSocket,
    pidfilePath: paths.pidfile,
    agentPorts: paths.agentSockets.map((socketPath, i) => ({ name: `skiff.agent.${i}`, socketPath })),
    network: spec.network,
    nics: opts.nics,
    tscKhz: facts.tscKhz,
    ...(opts.mounts === undefined || opts.mounts.length === 0 ? {} : { mounts: opts.mounts }),
    ...(spec.boot?.kind === "cloud" ? { cloud: { seedPath: paths.seed, sshPort: spec.boot.sshPort } } : {}),
  };
}

export function guestConfigFor(
  spec: MachineSpec,
  keys: { clientPublicKey: string; hostKey: Buffer },
  agentPorts: number,
  network: GuestNetwork,
  mounts: readonly MountPlan[] = [],
): GuestConfig {
  const main = [...spec.entrypoint, ...spec.command];
  return {
    hostname: spec.hostname,
    agentPorts,
    debug: process.env.SKIFF_GUEST_DEBUG === "1",
    env: spec.env,
    network,
    authorizedKey: keys.clientPublicKey,
    hostKey: keys.hostKey,
    mounts: mounts.map((m) => ({ fs: m.kind === "9p" ? "9p" : "ext4", source: m.kind === "9p" ? m.tag : m.serial, target: m.target, readOnly: m.readOnly })),
    ...(spec.init === undefined || main.length === 0
      ? {}
      : {
          main: {
            restart: spec.init.restart,
            request: { argv: main, ...(spec.user === undefined ? {} : { user: spec.user }), cwd: spec.workingDir ?? "/" },
          },
        }),
  };
}

/** Files of a previous run that must not confuse this one. */
export async function clearRuntimeFiles(paths: VmPaths): Promise<void> {
  await Promise.all(
    [paths.pidfile, paths.qmpSocket, paths.consoleSocket, ...paths.agentSockets].map((p) => rm(p, { force: true })),
  );
}

/**
 * Start QEMU for a VM and return its identity. QEMU daemonizes itself once
 * its sockets are bound, so when this returns the VM is reachable over QMP.
 */
export async function spawnQemu(opts: {
  spec: MachineSpec;
  paths: VmPaths;
  facts: HostFacts;
  runner: Runner;
  cacheDir: string;
  networking: VmNetworking;
  /** The VM's shares and volume disks (volumes.ts: mountPlans). */
  mounts?: MountPlan[];
}): Promise<ProcessIdentity> {
  const { spec, paths, facts, runner, networking } = opts;
  const mounts = opts.mounts ?? [];
  // A cloud image boots its own kernel; its seed was written at create.
  if (spec.boot?.kind !== "cloud") {
    const network = spec.network.mode !== "none" || networking.nics.length > 0;
    const shares = mounts.some((m) => m.kind === "9p");
    const base = await ensureBaseInitramfs({ kernel: facts.kernel, cacheDir: opts.cacheDir, network, shares });
    const clientPublicKey = (await readFile(paths.sshPublicKey, "utf8")).trim();
    const hostKey = await readFile(paths.hostKey);
    const config = guestConfigFor(spec, { clientPublicKey, hostKey }, paths.agentSockets.length, networking.guest, mounts);
    await writeVmInitrd(base, config, paths.initrd);
  }
  await clearRuntimeFiles(paths);
  const plan = buildPlan({ spec, paths, facts, nics: networking.nics, mounts });
  const result = await runner.run(plan.qemuBinary, toQemuArgs(plan), { timeoutMs: 30_000, debianPackage: "qemu-system-x86" });
  if (result.code !== 0) {
    const fwd = /Could not set up host forwarding rule '([^']*)'/.exec(result.stderr);
    if (fwd) {
      throw new SkiffError("ERR_SKIFF_PORT_IN_USE", `${spec.name}: the host port of forward ${fwd[1]} is taken`, {
        hint: "stop whatever listens there, or publish on another host port (-p HOST:GUEST)",
        place: spec.name,
      });
    }
    throw new SkiffError("ERR_SKIFF_QEMU_FAILED", `QEMU did not start for ${spec.name}: ${result.stderr.trim() || `exit ${result.code}`}`, {
      hint: "run `skiff doctor` to check QEMU, the kernel and memory",
      place: spec.name,
    });
  }
  const pid = await readPidfile(paths.pidfile);
  const startTime = pid === undefined ? undefined : processStartTime(pid);
  if (pid === undefined || startTime === undefined) {
    throw new SkiffError("ERR_SKIFF_QEMU_FAILED", `QEMU exited right after starting ${spec.name}`, {
      hint: `see \`skiff logs ${spec.name}\``,
      place: spec.name,
    });
  }
  return { pid, startTime };
}

/** The console line that best says why a boot failed (a panic, the OOM killer, skiff-init's own complaint). */
export async function bootFailureReason(consoleLog: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(consoleLog, "utf8");
  } catch {
    return undefined;
  }
  const lines = text.split("\n").map((l) => l.replace(/^\[\s*[\d.]+\]\s*/, "").trim()).filter((l) => l !== "");
  const telling = [/Kernel panic.*/, /Out of memory.*/, /^skiff: (?!ready|powering).*/];
  for (const re of telling) {
    const hit = lines.find((l) => re.test(l));
    if (hit !== undefined) return hit;
  }
  return lines.at(-1);
}
