/**
 * LaunchPlan -> QEMU argv. Pure: no host access, so the whole command line is
 * snapshot-tested. Probing (KVM usable? TSC rate?) happens before and arrives
 * as data in the plan.
 */
import { isAbsolute } from "node:path";
import { SkiffError } from "../errors.js";
import { macAddress, type NicPlan } from "../network/nics.js";
import type { GuestForward, NetworkSpec, PortForward } from "../spec/machine.js";
import { consoleLogFd, rootDiskSerial, type LaunchPlan, type MountPlan } from "./plan.js";

/**
 * microvm with ISA serial for the console, ACPI so the kernel finds the
 * virtio-mmio devices without `virtio_mmio.device=` arguments, and the RTC for
 * wall-clock time. PIT and PIC are legacy devices the guest does not need;
 * option ROMs only slow the start.
 */
export const microvmMachine = "microvm,x-option-roms=off,pit=off,pic=off,isa-serial=on,rtc=on,acpi=on";

/** Longest unix socket path the kernel takes (sun_path is 108 bytes with the NUL). */
export const maxSocketPathBytes = 107;

/**
 * Argv for `plan.qemuBinary`, without the binary itself.
 *
 * The kernel command line is `plan.kernel.cmdline` with ` tsc_early_khz=N`
 * appended here when `plan.tscKhz` is set: it is a fact about the host QEMU
 * runs on, not about the guest, so it travels with the rest of the host facts.
 *
 * QEMU runs in its jail's private root (src/jail), where every file it uses
 * is bound at its own absolute path: every path must be absolute, and is
 * rejected otherwise. The jailer detaches it, as -daemonize would.
 */
export function toQemuArgs(plan: LaunchPlan): string[] {
  if (plan.cloud !== undefined) return cloudQemuArgs(plan, plan.cloud);
  return [
    ...machineArgs(plan),
    ...bootArgs(plan),
    ...consoleArgs(plan),
    ...rootDiskArgs(plan),
    ...mountArgs(plan.mounts ?? []),
    "-device", "virtio-rng-device",
    ...balloonArgs("virtio-balloon-device"),
    ...agentArgs(plan),
    ...networkArgs(plan.name, plan.network),
    ...nicArgs(plan.nics, "virtio-net-device"),
    "-qmp", `unix:${optValue(socketPath(plan.qmpSocketPath, "QMP socket"))},server=on,wait=off`,
    "-pidfile", filePath(plan.pidfilePath, "pidfile"),
    ...sandboxArgs(plan),
    ...incomingArgs(plan),
  ];
}

/**
 * A balloon that is never inflated, for its free page reporting: the guest
 * tells QEMU which of its pages it has freed (in blocks of 4 MiB, 2 s after
 * they were freed) and QEMU punches them out of the RAM file, so memory a
 * guest used once and gave back returns to the host. Measured here: a guest
 * that wrote 80 MB into a tmpfs and removed it held 220 MiB of RAM file,
 * then 145 MiB (its size after boot) 6 s later; without it, 219 MiB for
 * good. Pages freed before the driver loads are not reported, but a booted
 * guest's free memory is clean anyway (what a boot touches stays in use).
 * A cloud image's kernel loads its driver by itself; its RAM is anonymous
 * memory, which QEMU gives back the same way (madvise).
 */
function balloonArgs(device: "virtio-balloon-device" | "virtio-balloon-pci"): string[] {
  return ["-device", `${device},free-page-reporting=on`];
}

/** How many arguments `incomingArgs` adds at the end: the jailer's supervisor drops them on restarts. */
export const incomingArgCount = 2;

/**
 * A restore: QEMU waits for its state on a socket that `migrate-incoming`
 * names, after skiff has set the migration capabilities over QMP. Always
 * the last arguments (see LaunchPlan.incoming).
 */
function incomingArgs(plan: LaunchPlan): string[] {
  return plan.incoming === true ? ["-incoming", "defer"] : [];
}

/** The RAM backend's id on QEMU's command line. */
const ramId = "ram";

/**
 * Guest RAM in a named file, shared: a snapshot copies the file instead of
 * streaming the memory (see LaunchPlan.ram). Its size is `-m`'s. Or a
 * sealed memfd QEMU was handed at a descriptor, mapped privately: QEMU
 * reaches it through its own /proc (the jail mounts one showing only QEMU).
 */
function ramArgs(plan: LaunchPlan): string[] {
  if (plan.ram === undefined) return [];
  if ("fd" in plan.ram) {
    const { fd } = plan.ram;
    if (!Number.isInteger(fd) || fd < 3 || fd > 64) throw new SkiffError("ERR_SKIFF_INTERNAL", `bad RAM descriptor: ${fd}`);
    return ["-object", `memory-backend-file,id=${ramId},mem-path=/proc/self/fd/${fd},size=${plan.memoryMiB}M,share=off`];
  }
  const path = optValue(filePath(plan.ram.path, "guest RAM file"));
  return ["-object", `memory-backend-file,id=${ramId},mem-path=${path},size=${plan.memoryMiB}M,share=on`];
}

/**
 * QEMU's own seccomp filter, on top of the jail: no obsolete system calls,
 * no privilege changes, no processes (except where a guest forward runs
 * `cmd:socat` per connection), no scheduler or resource changes.
 */
function sandboxArgs(plan: LaunchPlan): string[] {
  if (plan.sandbox === undefined) return [];
  // A spawned child calls setsid (glib's spawn), which QEMU counts among the privilege changes; the jail
  // has left nothing to elevate to (no capabilities, no_new_privs), so where QEMU must spawn it may.
  const spawn = plan.sandbox.spawn ? "spawn=allow,elevateprivileges=allow" : "spawn=deny,elevateprivileges=deny";
  return ["-sandbox", `on,obsolete=deny,${spawn},resourcecontrol=deny`];
}

function accelArgs(plan: LaunchPlan): string[] {
  if (plan.accel === "kvm") return ["-accel", "kvm", "-cpu", "host"];
  // Multi-threaded TCG always, with room for a second vCPU (smpArgs): see there.
  const tcg = ["tcg", "thread=multi"];
  if (plan.tcgCacheMiB !== undefined) {
    if (!Number.isInteger(plan.tcgCacheMiB) || plan.tcgCacheMiB < 1) throw new SkiffError("ERR_SKIFF_INTERNAL", `TCG cache size out of range: ${plan.tcgCacheMiB}`);
    tcg.push(`tb-size=${plan.tcgCacheMiB}`);
  }
  return ["-accel", tcg.join(","), "-cpu", "max"];
}

/**
 * `-smp`. Under TCG a VM is never told it has only one possible vCPU: a
 * single-vCPU TCG guest runs without its memory barriers. QEMU translates
 * guest code "parallel" (locked instructions atomic, fences kept) only
 * when the machine may have more than one vCPU (tcg_cpu_init_cflags(cpu,
 * max_cpus > 1)), yet its device emulation reads and writes guest RAM from
 * another thread while the vCPU runs. virtio's handshake (the guest writes
 * used_event, fences, reads the used index; QEMU does the mirror image)
 * then loses a completion now and then: found as a layer build whose
 * guest hung for good in jbd2 with 38 requests it thought in flight, while
 * QEMU had completed them all and, by the guest's stale used_event, owed
 * it no interrupt (x-query-virtio-queue-status, `info irq`). maxcpus=2
 * makes the translation parallel, and the guest is told `nr_cpus=1`
 * (bootArgs) so that it still runs as a one-CPU kernel: a guest that saw two
 * possible CPUs cost 3.5x the host CPU while idle (77 against 21 ticks in
 * 40 s), where the parallel translation alone cost nothing measurable.
 * KVM runs guest code on the real CPU: as asked.
 */
function oneTcgCpu(plan: LaunchPlan): boolean {
  return plan.accel !== "kvm" && plan.cpus === 1;
}

function smpArgs(plan: LaunchPlan): string[] {
  return ["-smp", oneTcgCpu(plan) ? `${plan.cpus},maxcpus=2` : String(plan.cpus)];
}

function machineArgs(plan: LaunchPlan): string[] {
  return [
    "-M", plan.ram === undefined ? microvmMachine : `${microvmMachine},memory-backend=${ramId}`,
    ...ramArgs(plan),
    "-nodefaults", "-no-user-config",
    "-display", "none",
    // A guest reboot ends QEMU like a power-off: skiff decides about restarts, not the guest.
    "-no-reboot",
    ...accelArgs(plan),
    ...smpArgs(plan),
    "-m", `${plan.memoryMiB}M`,
  ];
}

/**
 * A cloud image on q35: QEMU's default firmware (SeaBIOS) boots the disk's
 * own bootloader; virtio PCI devices, which every cloud kernel drives; the
 * NoCloud seed as a read-only second disk; SSH reachable on 127.0.0.1 only.
 * No -no-reboot: cloud images may reboot once while setting themselves up.
 */
function cloudQemuArgs(plan: LaunchPlan, cloud: NonNullable<LaunchPlan["cloud"]>): string[] {
  const overlay = optValue(filePath(plan.rootDisk.overlayPath, "root disk overlay"));
  const seed = optValue(filePath(cloud.seedPath, "cloud-init seed"));
  if (!Number.isInteger(cloud.sshPort) || cloud.sshPort < 1 || cloud.sshPort > 65535) {
    throw new SkiffError("ERR_SKIFF_INTERNAL", `SSH forward port out of range: ${cloud.sshPort}`);
  }
  const network: NetworkSpec =
    plan.network.mode === "user" ? plan.network : { mode: "user", restrict: true, forwards: [] };
  const netdev = ["user", "id=net0"];
  if (network.restrict) netdev.push("restrict=on");
  netdev.push(`hostfwd=tcp:127.0.0.1:${cloud.sshPort}-:22`);
  for (const fwd of network.forwards) netdev.push(`hostfwd=${hostfwd(fwd)}`);
  return [
    "-M", "q35",
    "-nodefaults", "-no-user-config",
    "-display", "none",
    ...accelArgs(plan),
    ...smpArgs(plan),
    "-m", `${plan.memoryMiB}M`,
    ...consoleArgs(plan),
    "-drive", `file=${overlay},if=virtio,format=qcow2,cache=writeback,discard=unmap`,
    "-drive", `file=${seed},if=virtio,format=raw,readonly=on`,
    "-netdev", netdev.join(","),
    "-device", `virtio-net-pci,netdev=net0,mac=${macAddress(plan.name)}`,
    ...nicArgs(plan.nics, "virtio-net-pci"),
    "-device", "virtio-rng-pci",
    ...balloonArgs("virtio-balloon-pci"),
    "-qmp", `unix:${optValue(socketPath(plan.qmpSocketPath, "QMP socket"))},server=on,wait=off`,
    "-pidfile", filePath(plan.pidfilePath, "pidfile"),
    ...sandboxArgs(plan),
  ];
}

function bootArgs(plan: LaunchPlan): string[] {
  // -kernel, -initrd and -append are taken verbatim (not option lists): no comma escaping.
  const words = [plan.kernel.cmdline, ...(plan.tscKhz === undefined ? [] : [`tsc_early_khz=${plan.tscKhz}`])];
  if (oneTcgCpu(plan)) words.push("nr_cpus=1"); // QEMU has room for two (smpArgs); the guest stays a one-CPU kernel
  for (const arg of plan.kernel.extraArgs ?? []) words.push(kernelArg(arg));
  const cmdline = words.join(" ").trim();
  return [
    "-kernel", filePath(plan.kernel.path, "kernel"),
    "-initrd", filePath(plan.initrdPath, "initrd"),
    "-append", cmdline,
  ];
}

function consoleArgs(plan: LaunchPlan): string[] {
  const sock = optValue(socketPath(plan.console.socketPath, "console socket"));
  // Checked although QEMU is not given it: the jailer's relay writes it (plan.ts: consoleLogFd).
  filePath(plan.console.logPath, "console log");
  return [
    "-chardev", `socket,id=console,path=${sock},server=on,wait=off,logfile=/proc/self/fd/${consoleLogFd},logappend=on`,
    "-serial", "chardev:console",
  ];
}

function rootDiskArgs(plan: LaunchPlan): string[] {
  const overlay = optValue(filePath(plan.rootDisk.overlayPath, "root disk overlay"));
  return [
    "-drive", `id=root,file=${overlay},format=qcow2,if=none,cache=${plan.rootDisk.ignoreFlushes === true ? "unsafe" : "writeback"},discard=unmap`,
    "-device", `virtio-blk-device,drive=root,serial=${rootDiskSerial}`,
  ];
}

/**
 * Bind mounts become virtio-9p shares, named volumes extra raw disks (a
 * restored VM's clones of them qcow2 overlays). Read-only
 * is enforced by QEMU (readonly=on), not only by the guest's mount flags.
 *
 * 9p's `mapped-xattr` model: the guest's owners, modes, device nodes and
 * symlinks are kept in xattrs of plain files and directories on the host
 * (mode 0600/0700, owned by whom the jail acts for), so a guest's root can
 * never make a set-id file, a device node or a file of another user on the
 * host; files the host already has show their own modes in the guest.
 */
function mountArgs(mounts: readonly MountPlan[]): string[] {
  return mounts.flatMap((m, i) => {
    const ro = m.readOnly ? ",readonly=on" : "";
    if (m.kind === "9p") {
      if (!/^[A-Za-z0-9_-]{1,31}$/.test(m.tag)) throw new SkiffError("ERR_SKIFF_INTERNAL", `bad 9p mount tag: ${m.tag}`);
      const path = optValue(filePath(m.hostPath, "bind mount source"));
      return [
        "-fsdev", `local,id=fs${i},path=${path},security_model=mapped-xattr${ro}`,
        "-device", `virtio-9p-device,fsdev=fs${i},mount_tag=${m.tag}`,
      ];
    }
    if (!/^[A-Za-z0-9_-]{1,20}$/.test(m.serial)) throw new SkiffError("ERR_SKIFF_INTERNAL", `bad volume disk serial: ${m.serial}`);
    const path = optValue(filePath(m.diskPath, "volume disk"));
    return [
      "-drive", `id=vol${i},file=${path},format=${m.format ?? "raw"},if=none,cache=writeback,discard=unmap${ro}`,
      "-device", `virtio-blk-device,drive=vol${i},serial=${m.serial}`,
    ];
  });
}

/** A word of `kernel.args`: the command line is one line, and -append takes it verbatim. */
export function kernelArg(arg: string): string {
  if (arg === "" || /[\n\r\0]/.test(arg)) {
    throw new SkiffError("ERR_SKIFF_USAGE", `kernel argument cannot go on the command line: ${JSON.stringify(arg)}`, {
      place: "kernel.args",
      hint: "kernel arguments are non-empty and free of newline and NUL characters",
    });
  }
  return arg;
}

/**
 * The agent ports. `max_ports` is the VM's port count plus port 0 (which QEMU keeps for a console): QEMU's default, 31,
 * makes the guest set up a receive and a send ring for every possible port, ~2.8 MiB of guest RAM per VM (measured
 * on a 256 MiB VM) for ports that never exist. A snapshot's device state holds the count (snapshot format 5).
 */
function agentArgs(plan: LaunchPlan): string[] {
  if (plan.agentPorts.length === 0) return [];
  const args = ["-device", `virtio-serial-device,max_ports=${plan.agentPorts.length + 1}`];
  plan.agentPorts.forEach((port, i) => {
    if (!/^[A-Za-z0-9_.-]+$/.test(port.name)) {
      throw new SkiffError("ERR_SKIFF_INTERNAL", `agent port name cannot be given to QEMU: ${JSON.stringify(port.name)}`);
    }
    const sock = optValue(socketPath(port.socketPath, "agent socket"));
    args.push(
      "-chardev", `socket,id=agent${i},path=${sock},server=on,wait=off`,
      "-device", `virtserialport,chardev=agent${i},name=${port.name}`,
    );
  });
  return args;
}

function networkArgs(name: string, network: NetworkSpec): string[] {
  if (network.mode === "none") return [];
  const netdev = ["user", "id=net0"];
  if (network.restrict) netdev.push("restrict=on");
  for (const fwd of network.forwards) netdev.push(`hostfwd=${hostfwd(fwd)}`);
  for (const fwd of network.guestForwards ?? []) netdev.push(`guestfwd=${guestfwd(fwd)}`);
  return [
    "-netdev", netdev.join(","),
    "-device", `virtio-net-device,netdev=net0,mac=${macAddress(name)}`,
  ];
}

function hostfwd(fwd: PortForward): string {
  // slirp in QEMU 7.2 parses the host address with inet_aton: IPv4 or nothing (all addresses).
  if (fwd.hostAddress !== "" && !/^\d{1,3}(\.\d{1,3}){3}$/.test(fwd.hostAddress)) {
    throw new SkiffError("ERR_SKIFF_USAGE", `QEMU user networking cannot forward from host address ${fwd.hostAddress}`, {
      hint: "use an IPv4 address such as 127.0.0.1, or 0.0.0.0 for all addresses",
      place: "network.forwards",
    });
  }
  for (const port of [fwd.hostPort, fwd.guestPort]) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new SkiffError("ERR_SKIFF_USAGE", `port out of range: ${port}`, {
        hint: "ports are whole numbers from 1 to 65535",
        place: "network.forwards",
      });
    }
  }
  return `${fwd.protocol}:${fwd.hostAddress}:${fwd.hostPort}-:${fwd.guestPort}`;
}

const ipv4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/**
 * `tcp:GUESTADDR:GUESTPORT-cmd:socat STDIO TCP:HOSTADDR:HOSTPORT`. Not the
 * `-tcp:HOST:PORT` form: that is a chardev, connected once when QEMU starts
 * and gone after the first connection closes; `cmd:` runs socat for each
 * connection the guest makes.
 */
export function guestfwd(fwd: GuestForward): string {
  for (const addr of [fwd.guestAddress, fwd.hostAddress]) {
    if (!ipv4.test(addr)) throw new SkiffError("ERR_SKIFF_INTERNAL", `guestfwd needs IPv4 addresses, got ${JSON.stringify(addr)}`);
  }
  for (const port of [fwd.guestPort, fwd.hostPort]) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new SkiffError("ERR_SKIFF_INTERNAL", `guestfwd port out of range: ${port}`);
  }
  return `tcp:${fwd.guestAddress}:${fwd.guestPort}-cmd:socat STDIO TCP:${fwd.hostAddress}:${fwd.hostPort}`;
}

/** The NICs on named networks; the guest names them eth1, eth2, … by MAC. */
function nicArgs(nics: readonly NicPlan[], device: "virtio-net-device" | "virtio-net-pci"): string[] {
  return nics.flatMap((nic) => {
    if (!/^net\d+$/.test(nic.netdevId) || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(nic.mac)) {
      throw new SkiffError("ERR_SKIFF_INTERNAL", `NIC cannot be given to QEMU: ${nic.netdevId} ${nic.mac}`);
    }
    return ["-netdev", `${netdevBackend(nic)}`, "-device", `${device},netdev=${nic.netdevId},mac=${nic.mac}`];
  });
}

function netdevBackend(nic: NicPlan): string {
  const b = nic.backend;
  switch (b.kind) {
    case "mcast":
      // localaddr pins the group to loopback: frames never leave the host, and no root is needed.
      return `socket,id=${nic.netdevId},mcast=${b.group}:${b.port},localaddr=127.0.0.1`;
    case "tap":
      if (!Number.isInteger(b.fd) || b.fd < 3) throw new SkiffError("ERR_SKIFF_INTERNAL", `bad TAP descriptor: ${b.fd}`);
      return `tap,id=${nic.netdevId},fd=${b.fd}`;
    case "unix-dgram":
      return [
        `dgram,id=${nic.netdevId}`,
        `local.type=unix,local.path=${optValue(socketPath(b.localPath, "link socket"))}`,
        `remote.type=unix,remote.path=${optValue(socketPath(b.remotePath, "link socket"))}`,
      ].join(",");
  }
}

/** Escape a value inside a QEMU `key=value,...` option list. */
export function optValue(value: string): string {
  return value.replaceAll(",", ",,");
}

function filePath(path: string, what: string): string {
  if (path === "" || path.includes("\0") || path.includes("\n")) {
    throw new SkiffError("ERR_SKIFF_BAD_PATH", `${what} path cannot be given to QEMU: ${JSON.stringify(path)}`, {
      hint: "paths must be non-empty and free of NUL and newline characters",
    });
  }
  if (!isAbsolute(path)) {
    throw new SkiffError("ERR_SKIFF_BAD_PATH", `${what} path must be absolute: ${path}`, {
      hint: "QEMU runs daemonized in / and would resolve a relative path there",
    });
  }
  return path;
}

function socketPath(path: string, what: string): string {
  filePath(path, what);
  const bytes = Buffer.byteLength(path);
  if (bytes > maxSocketPathBytes) {
    throw new SkiffError(
      "ERR_SKIFF_BAD_PATH",
      `${what} path is ${bytes} bytes, longer than the ${maxSocketPathBytes} a unix socket takes: ${path}`,
      { hint: "move the VM state directory to a shorter path" },
    );
  }
  return path;
}
