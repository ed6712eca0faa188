/**
 * From a stored VM to a running QEMU: plan (pure), the VM's initrd, spawn.
 */
import { ensureBaseInitramfs, writeVmInitrd, type GuestConfig } from "../guest/initramfs.js";
import { SkiffError } from "../errors.js";
import { incomingArgCount, toQemuArgs } from "../qemu/args.js";
import { createRamFile, ramPath as ramFile } from "../snapshot/ram.js";
import { ramFdInQemu } from "../snapshot/shared-ram.js";
import { loadResumed, prepareResume, type ResumeSource } from "../snapshot/resume.js";
import type { LaunchPlan, MountPlan } from "../qemu/plan.js";
import type { GuestNetwork } from "../network/guest.js";
import type { NicPlan } from "../network/nics.js";
import type { Runner, RunResult } from "../process/runner.js";
import { processStartTime, type ProcessIdentity } from "../process/pid.js";
import { jailMode } from "../jail/ids.js";
import { toJailArgs } from "../jail/plan.js";
import { jailInput, prepareJail } from "../jail/prepare.js";
import { applyEgress, defaultEgress } from "../network/egress.js";
import { hostResolvers } from "./vm-network.js";
import type { VmRecord } from "../store/store.js";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { buildVmLabel, type MachineSpec } from "../spec/machine.js";
import { clearRuntimeFiles, type VmPaths } from "../store/vmdir.js";
import type { HostFacts } from "./host.js";
import { crashPoint } from "../util/crash-point.js";
import { bootHeadroomMiB, bootMemoryOf, builtKernelHeadroomMiB, checkBootMemory } from "../kernel/boot-memory.js";
import { builtKernelAt } from "../kernel/built.js";
import type { KernelInfo } from "../kernel/debian.js";

/**
 * Guest kernel command line. `quiet`: every line on the serial console costs
 * time under TCG. `cryptomgr.notests`: Debian's kernel runs its crypto
 * self-tests at boot (crypto_algapi_init alone 197 ms with initcall_debug,
 * more as modules register algorithms); the kernel reached its root mount
 * at 1.12–1.37 s of uptime without them against 1.63–1.70 s with them
 * (raw QEMU, three each). They test the guest's own crypto code on the
 * emulated CPU, which guards nothing of the host's; a kernel without the
 * crypto manager (skiff's own) ignores the word. `noreplace-smp`: a guest
 * with one CPU rewrote the kernel's SMP instructions into their UP forms at
 * boot, and under TCG every rewritten page throws its translated code
 * away; kept as they are, the raw kernel reached its root mount 0.07–0.33 s
 * sooner (four pairs), a cold `run` of `true` 79 ms sooner (median of 16
 * paired differences, a noisy host). Kept, the SMP forms cost a one-CPU
 * guest nothing measurable: 300 fork-and-execs and 25 MB through dd took
 * 1.81–2.02 s against 1.84–2.42 s (three each); a VM with more CPUs keeps
 * them anyway.
 */
export const kernelCmdline = "console=ttyS0 quiet panic=-1 cryptomgr.notests noreplace-smp";

/**
 * TCG's translated-code cache per VM, MiB. QEMU's own default let an idle
 * 256 MiB guest keep ~100 MB of it resident; 32 MiB keeps ~50 MB, and a
 * boot is no slower (docs/benchmarks.md, "Density").
 * SKIFF_TCG_CACHE_MIB sets another size; 0 leaves QEMU's default.
 */
export const defaultTcgCacheMiB = 32;

export function tcgCacheMiB(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const text = env.SKIFF_TCG_CACHE_MIB;
  if (text === undefined || text === "") return defaultTcgCacheMiB;
  const mib = Number(text);
  if (!Number.isInteger(mib) || mib < 0 || mib > 4096) {
    throw new SkiffError("ERR_SKIFF_USAGE", `SKIFF_TCG_CACHE_MIB is not a size in MiB: ${JSON.stringify(text)}`, {
      place: "SKIFF_TCG_CACHE_MIB",
      hint: "give a whole number of MiB from 1 to 4096, or 0 for QEMU's default",
    });
  }
  return mib === 0 ? undefined : mib;
}

/**
 * A layer build's VM (engine/layers.ts labels it): short-lived and busy
 * translating apt and dpkg, so it keeps QEMU's own cache size (the layer-build
 * tests took 158 s with 32 MiB against 147 s), where a long-lived VM trades
 * that for memory. A cloud image keeps it too: a whole distribution's boot
 * (systemd, cloud-init) is more code than 32 MiB holds (the cloud-image
 * tests took 152 s against 130 s).
 *
 * Its disk ignores the guest's flushes (cache=unsafe): dpkg syncs its
 * database several times per package, and each sync waited for the host's
 * disk, which another writer on the host (a compile beside the tests) made
 * slow: 40 guest fsyncs took 2.7-3.4 s on a quiet host and 6.8-7.5 s beside
 * a writer. A build's disk is worth nothing until the VM has powered off
 * cleanly (QEMU has written it all by then) and it is committed
 * (engine/layers.ts), which syncs the image it makes; a build cut off is
 * thrown away.
 */
function buildVm(spec: MachineSpec): boolean {
  return spec.labels[buildVmLabel] !== undefined;
}

/** The VM's NICs on named networks and what its init is told about all its networks (vm-network.ts). */
export interface VmNetworking {
  nics: NicPlan[];
  guest: GuestNetwork;
}

export function buildPlan(opts: {
  spec: MachineSpec;
  paths: VmPaths;
  facts: HostFacts;
  nics: NicPlan[];
  mounts?: MountPlan[];
  /** Where QEMU reads the kernel (jailInput); default the spec's or skiff's. */
  kernelPath?: string;
  /** The guest's RAM file (src/snapshot/ram.ts), or a sealed memfd QEMU inherits at `fd` (shared-ram.ts); absent: anonymous memory. */
  ram?: { path: string } | { fd: number };
  /** Restore from a snapshot rather than boot. */
  incoming?: boolean;
  /** TCG's code cache, MiB (tcgCacheMiB()); absent: QEMU's default. */
  tcgCache?: number;
}): LaunchPlan {
  const { spec, paths, facts, tcgCache } = opts;
  const extraArgs = spec.kernel?.args ?? [];
  return {
    name: spec.name,
    qemuBinary: facts.qemuBinary,
    accel: facts.accel.accel,
    ...(facts.accel.accel === "tcg" && tcgCache !== undefined ? { tcgCacheMiB: tcgCache } : {}),
    cpus: spec.cpus,
    memoryMiB: spec.memoryMiB,
    kernel: { path: opts.kernelPath ?? spec.kernel?.path ?? facts.vmlinuxPath, cmdline: kernelCmdline, ...(extraArgs.length === 0 ? {} : { extraArgs }) },
    initrdPath: paths.initrd,
    rootDisk: { overlayPath: paths.overlay, ...(buildVm(spec) ? { ignoreFlushes: true } : {}) },
    console: { socketPath: paths.consoleSocket, logPath: paths.consoleLog },
    qmpSocketPath: paths.qmpSocket,
    pidfilePath: paths.pidfile,
    agentPorts: paths.agentSockets.map((socketPath, i) => ({ name: `skiff.agent.${i}`, socketPath })),
    network: spec.network,
    nics: opts.nics,
    tscKhz: facts.tscKhz,
    ...(opts.mounts === undefined || opts.mounts.length === 0 ? {} : { mounts: opts.mounts }),
    ...(spec.boot?.kind === "cloud" ? { cloud: { seedPath: paths.seed, sshPort: spec.boot.sshPort } } : {}),
    ...(opts.ram === undefined ? {} : { ram: opts.ram }),
    ...(opts.incoming === true ? { incoming: true } : {}),
    // QEMU's own filter whenever it is jailed; socat for guest forwards is the one process it may start.
    ...(jailMode() === "off" ? {} : { sandbox: { spawn: (spec.network.mode === "user" && (spec.network.guestForwards ?? []).length > 0) } }),
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

/**
 * Which base initramfs a VM boots with (initramfs.ts): the network modules
 * when it has a NIC, the 9p ones when it shares host directories, the
 * modules' signatures when its kernel arguments enforce them.
 */
export function initramfsVariant(spec: {
  network?: { mode: string } | undefined;
  networks?: readonly unknown[] | undefined;
  mounts?: readonly { kind: string }[] | undefined;
  kernel?: { args?: readonly string[] | undefined } | undefined;
}): { network: boolean; shares: boolean; kernelArgs: readonly string[] } {
  return {
    network: (spec.network?.mode ?? "user") !== "none" || (spec.networks ?? []).length > 0,
    shares: (spec.mounts ?? []).some((m) => m.kind === "bind"),
    kernelArgs: spec.kernel?.args ?? [],
  };
}

/**
 * The kernel a VM boots, as launch, create and doctor need it: its path,
 * the Debian kernel whose modules its initramfs carries (none for a kernel
 * skiff built: everything is built in), how messages name it, and the
 * headroom its boot needs beyond kernel and initramfs (kernel/boot-memory.ts).
 */
export interface VmKernel {
  path: string;
  modules: KernelInfo | undefined;
  name: string;
  version: string;
  headroomMiB: number;
}

export function vmKernel(spec: Pick<MachineSpec, "kernel">, facts: Pick<HostFacts, "kernel" | "vmlinuxPath">, cacheDir: string): VmKernel {
  const path = spec.kernel?.path ?? facts.vmlinuxPath;
  const built = builtKernelAt(path, cacheDir);
  if (built !== undefined) {
    return { path, modules: undefined, name: `skiff's kernel ${built.version} (${built.id})`, version: built.version, headroomMiB: builtKernelHeadroomMiB };
  }
  return {
    path,
    modules: facts.kernel,
    name: spec.kernel?.path !== undefined ? `the kernel ${path}` : `the Debian kernel ${facts.kernel.version}`,
    version: facts.kernel.version,
    headroomMiB: bootHeadroomMiB,
  };
}

/**
 * Refuse (ERR_SKIFF_BAD_MEMORY at `memory`) a VM whose memory is below what
 * its kernel and initramfs need to boot (kernel/boot-memory.ts), before it
 * is made or its QEMU started: too little memory would only end in a kernel
 * panic at boot. A kernel of a format skiff cannot read is let through.
 */
export async function checkVmBootMemory(opts: { memoryMiB: number; kernel: VmKernel; initramfsPath: string }): Promise<void> {
  const estimate = await bootMemoryOf(opts.kernel.path, opts.initramfsPath, opts.kernel.headroomMiB);
  if (estimate !== undefined) checkBootMemory(opts.memoryMiB, estimate, opts.kernel.name);
}

/** The jailer's exit code for a jail that could not be made (src/jail/skiff-jail.c). */
const jailFailed = 125;

/**
 * Start QEMU for a VM, jailed (src/jail), and return its identity. The
 * jailer returns once QEMU accepts QMP connections, so when this returns the
 * VM is reachable over QMP.
 */
export async function spawnQemu(opts: {
  record: VmRecord;
  home: string;
  facts: HostFacts;
  runner: Runner;
  cacheDir: string;
  networking: VmNetworking;
  /** The VM's shares and volume disks (volumes.ts: mountPlans). */
  mounts?: MountPlan[];
  /** Resume saved state (a snapshot, a hibernated VM) instead of booting. */
  resume?: ResumeSource;
}): Promise<ProcessIdentity> {
  const { record, runner, resume } = opts;
  if (resume !== undefined) {
    // The guest in the saved RAM booted with that initramfs: the new QEMU maps the same. The RAM is copied meanwhile.
    const copying = await prepareResume({ home: opts.home, runner }, record, resume);
    try {
      return await launchQemu(opts, copying.ram);
    } finally {
      await copying.settled();
    }
  }
  return launchQemu(opts);
}

/** spawnQemu once the initrd (or the resumed RAM's copy, `ramReady`) is under way. */
async function launchQemu(opts: Parameters<typeof spawnQemu>[0], ramReady?: Promise<void>): Promise<ProcessIdentity> {
  const { record, facts, runner, networking, resume } = opts;
  const { spec } = record.config;
  const { paths } = record;
  const mounts = opts.mounts ?? [];
  const cloud = spec.boot?.kind === "cloud";
  // A cloud image boots its own kernel; its seed was written at create.
  if (resume === undefined && !cloud) {
    const kernel = vmKernel(spec, facts, opts.cacheDir);
    const base = await ensureBaseInitramfs({ kernel: kernel.modules, cacheDir: opts.cacheDir, ...initramfsVariant(spec) });
    // A VM made before its kernel grew (or under another estimate) is refused here rather than panicking at boot.
    await checkVmBootMemory({ memoryMiB: spec.memoryMiB, kernel, initramfsPath: base });
    const clientPublicKey = (await readFile(paths.sshPublicKey, "utf8")).trim();
    const hostKey = await readFile(paths.hostKey);
    const config = guestConfigFor(spec, { clientPublicKey, hostKey }, paths.agentSockets.length, networking.guest, mounts);
    await writeVmInitrd(base, config, paths.initrd);
  }
  await clearRuntimeFiles(paths);
  const kernelPath = await jailInput(spec.kernel?.path ?? facts.vmlinuxPath, opts.cacheDir);
  const ram = cloud
    ? undefined
    : resume?.sharedRam !== undefined
      ? { fd: ramFdInQemu }
      : { path: resume !== undefined ? ramFile(opts.home, record.id) : await createRamFile(opts.home, record.id) };
  const plan = buildPlan({
    spec,
    paths,
    facts,
    nics: networking.nics,
    mounts,
    kernelPath,
    ...(ram === undefined ? {} : { ram }),
    ...(resume === undefined ? {} : { incoming: true }),
    ...(buildVm(spec) || spec.boot?.kind === "cloud" ? {} : { tcgCache: tcgCacheMiB() }),
  });
  const jail = await prepareJail({
    vmId: record.id,
    home: opts.home,
    cacheDir: opts.cacheDir,
    paths,
    launch: plan,
    backingFiles: backingFiles(record),
    ids: record.config.jail,
    ...(spec.restart === undefined || spec.restart === "no"
      ? {}
      : {
          supervise: {
            policy: spec.restart === "on-failure" ? "on-failure" : "always",
            status: paths.supervisorStatus,
            ...(plan.incoming === true ? { firstOnly: incomingArgCount } : {}),
          },
        }),
  });
  // The VM's egress rules are in place before its QEMU opens a single socket.
  if (jail.mode === "root" && jail.ids !== undefined && spec.network.mode === "user") {
    const forwards = (spec.network.guestForwards ?? []).map((f) => ({ cidr: `${f.hostAddress}/32`, port: f.hostPort }));
    await applyEgress(runner, jail.ids.uid, spec.egress ?? defaultEgress, await hostResolvers(), forwards);
  }
  await ramReady;
  crashPoint("start:jail-ready");
  const result = await runner.run(jail.jailerPath, toJailArgs(jail, [plan.qemuBinary, ...toQemuArgs(plan)]), {
    timeoutMs: 90_000,
    ...(resume?.sharedRam === undefined ? {} : { passFds: new Map([[ramFdInQemu, resume.sharedRam.fd]]) }),
  });
  if (result.code !== 0) throw startFailure(spec.name, result);
  const pid = Number(result.stdout.trim());
  const startTime = Number.isInteger(pid) && pid > 0 ? processStartTime(pid) : undefined;
  if (startTime === undefined) {
    throw new SkiffError("ERR_SKIFF_QEMU_FAILED", `QEMU exited right after starting ${spec.name}`, {
      hint: `see \`skiff logs ${spec.name}\``,
      place: spec.name,
    });
  }
  if (resume !== undefined) await loadResumed(record, { pid, startTime }, resume);
  return { pid, startTime };
}

/**
 * The overlays' read-only backing chains: a snapshot's disk and volume layers (restored VMs), then the image base.
 * One that is gone (removed from a cache another SKIFF_HOME shares, say) is said here, before QEMU or the jail trips on it.
 */
function backingFiles(record: VmRecord): string[] {
  const { image, snapshot } = record.config;
  const layers = (snapshot?.volumes ?? []).map((v) => v.layer);
  const files = [...(snapshot === undefined ? [] : [snapshot.disk]), ...layers, ...(image?.basePath === undefined ? [] : [image.basePath])];
  const gone = files.find((f) => !existsSync(f));
  if (gone !== undefined) {
    const ofSnapshot = snapshot !== undefined && gone !== image?.basePath;
    throw new SkiffError(ofSnapshot ? "ERR_SKIFF_SNAPSHOT_NOT_FOUND" : "ERR_SKIFF_IMAGE_NOT_FOUND", `VM ${record.name} stands on ${gone}, which is gone`, {
      place: record.name,
      hint: `its disk is nothing without it: \`skiff rm ${record.name}\` and make it again${ofSnapshot ? " (a snapshot or boot snapshot was removed while it stood on it" : " (its image was removed"}, perhaps from another SKIFF_HOME sharing this SKIFF_CACHE)`,
      details: { missing: gone },
    });
  }
  return files;
}

function startFailure(name: string, result: RunResult): SkiffError {
  const stderr = result.stderr.trim();
  const fwd = /Could not set up host forwarding rule '([^']*)'/.exec(stderr);
  if (fwd) {
    return new SkiffError("ERR_SKIFF_PORT_IN_USE", `${name}: the host port of forward ${fwd[1]} is taken`, {
      hint: "stop whatever listens there, or publish on another host port (-p HOST:GUEST)",
      place: name,
    });
  }
  if (result.code === jailFailed) {
    return new SkiffError("ERR_SKIFF_HOST", `the jail for ${name}'s QEMU could not be made: ${stderr.replace(/^skiff-jail: /, "")}`, {
      hint: "run `skiff doctor`: the jail needs root (or unprivileged user namespaces), mount namespaces and, for bind mounts, a filesystem with idmapped mounts",
      place: name,
    });
  }
  return new SkiffError("ERR_SKIFF_QEMU_FAILED", `QEMU did not start for ${name}: ${stderr || `exit ${result.code}`}`, {
    hint: "run `skiff doctor` to check QEMU, the kernel and memory",
    place: name,
  });
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
