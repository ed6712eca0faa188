/**
 * JailPlan: how one VM's QEMU is jailed, as data; `toJailArgs` turns it into
 * the jailer's argv (src/jail/skiff-jail.c) in front of QEMU's own. Pure,
 * like `toQemuArgs`: what QEMU may see is decided from the LaunchPlan alone
 * (`jailView`), so every file QEMU's argv names is in its jail, read-only
 * unless QEMU writes it.
 */
import { dirname } from "node:path";
import { SkiffError } from "../errors.js";
import { consoleLogFd, ramFileOf, type LaunchPlan } from "../qemu/plan.js";
import type { JailIds, JailMode } from "./ids.js";

export interface JailView {
  readOnly: string[];
  readWrite: string[];
  /** Bind mounts' host directories: idmapped with root, so the jail user acts as their owner. */
  shares: { path: string; readOnly: boolean }[];
  devices: string[];
  taps: { ifname: string; bridge: string; fd: number }[];
  /** A sealed memfd of guest RAM QEMU inherits at this descriptor (the jailer checks the seals). */
  ramFd?: number;
  /** The console log, which the jailer's relay writes from the pipe QEMU gets at consoleLogFd: not in the jail. */
  consoleLog: string;
}

export interface JailPlan extends JailView {
  jailerPath: string;
  mode: JailMode;
  /** With root: the VM's jail user, its supplementary groups, and each share's owner on disk. */
  ids?: JailIds;
  groups: number[];
  shareOwners?: Map<string, { uid: number; gid: number }>;
  cgroups: string[];
  /** Empty directory the jail's root is mounted on. */
  rootDir: string;
  /** QEMU's stdout and stderr. */
  log: string;
  /** Returns once QEMU accepts connections here. */
  waitSocket: string;
  /** Restart policies: a supervisor stays as QEMU's parent. */
  supervise?: { policy: "on-failure" | "always"; status: string; firstOnly?: number };
  /** A published host port below the host's unprivileged start (1024): QEMU keeps CAP_NET_BIND_SERVICE, and only that. */
  bindLowPorts?: boolean;
}

/** What QEMU's argv names, sorted into how the jail exposes it. */
export function jailView(plan: LaunchPlan, opts: { runDir: string; backingFiles: readonly string[]; kvm: boolean }): JailView {
  // A cloud image boots its own kernel from its disk (firmware under /usr): no kernel or initrd to show.
  const boot = plan.cloud === undefined ? [plan.kernel.path, plan.initrdPath] : [plan.cloud.seedPath];
  const readOnly = [...boot, ...opts.backingFiles];
  const ramFile = ramFileOf(plan);
  const readWrite = [opts.runDir, plan.rootDisk.overlayPath, ...(ramFile === undefined ? [] : [ramFile])];
  const shares: JailView["shares"] = [];
  for (const m of plan.mounts ?? []) {
    if (m.kind === "9p") shares.push({ path: m.hostPath, readOnly: m.readOnly });
    else (m.readOnly ? readOnly : readWrite).push(m.diskPath);
  }
  const taps: JailView["taps"] = [];
  for (const nic of plan.nics) {
    const b = nic.backend;
    // Both ends of a link live in the network's run directory: this VM binds one, sends to the other.
    if (b.kind === "unix-dgram") readWrite.push(dirname(b.localPath));
    if (b.kind === "tap") taps.push({ ifname: b.ifname, bridge: b.bridge, fd: b.fd });
  }
  const devices = ["null", "zero", "full", "random", "urandom", ...(opts.kvm ? ["kvm"] : [])];
  const ramFd = plan.ram !== undefined && "fd" in plan.ram ? { ramFd: plan.ram.fd } : {};
  return { readOnly: unique(readOnly), readWrite: unique(readWrite), shares, devices, taps, ...ramFd, consoleLog: plan.console.logPath };
}

/**
 * What a VM's qemu.stderr may hold from one start (the jailer's log relay, skiff-jail.c, drops QEMU's output past it
 * but for its last 16 KiB, since a guest can make QEMU print a line per event it causes; QEMU says a few lines a
 * start), and the size at which its console log is rotated to console.log.1 (a guest prints what it likes there).
 */
export const qemuLogLimitBytes = 8 * 1024 * 1024;

function consoleArgs(plan: JailPlan): string[] {
  return ["--console-log", path(plan.consoleLog), "--console-fd", String(consoleLogFd)];
}

/** The jailer's argv (without its own path), ending in `--` and QEMU's command line. */
export function toJailArgs(plan: JailPlan, qemu: readonly string[]): string[] {
  const args: string[] = plan.ramFd === undefined ? [] : ["--ram-fd", String(plan.ramFd)];
  if (plan.mode === "root") {
    if (plan.ids === undefined) throw new SkiffError("ERR_SKIFF_INTERNAL", "a root jail needs a jail user");
    args.push("--uid", String(plan.ids.uid), "--gid", String(plan.ids.gid));
    if (plan.groups.length > 0) args.push("--groups", plan.groups.join(","));
    for (const dir of plan.cgroups) args.push("--cgroup", path(dir));
    for (const t of plan.taps) args.push("--tap", `${ifname(t.ifname)}:${ifname(t.bridge)}:${t.fd}`);
    if (plan.bindLowPorts === true) args.push("--bind-low-ports");
  } else if (plan.mode === "rootless") {
    args.push("--rootless");
  } else {
    // No jail at all: only the TAPs and the detaching (what QEMU's -daemonize did before jails).
    args.push("--unjailed");
    for (const t of plan.taps) args.push("--tap", `${ifname(t.ifname)}:${ifname(t.bridge)}:${t.fd}`);
    args.push("--log", path(plan.log), "--log-limit", String(qemuLogLimitBytes), ...consoleArgs(plan), "--wait", path(plan.waitSocket));
    args.push(...superviseArgs(plan));
    return [...args, "--", ...qemu];
  }
  args.push("--root", path(plan.rootDir), "--log", path(plan.log), "--log-limit", String(qemuLogLimitBytes), ...consoleArgs(plan), "--wait", path(plan.waitSocket));
  for (const p of plan.readOnly) args.push("--ro", path(p));
  for (const p of plan.readWrite) args.push("--rw", path(p));
  for (const share of plan.shares) {
    if (plan.mode === "rootless") {
      args.push(share.readOnly ? "--ro" : "--rw", path(share.path));
      continue;
    }
    const owner = plan.shareOwners?.get(share.path);
    if (owner === undefined) throw new SkiffError("ERR_SKIFF_INTERNAL", `no owner known for share ${share.path}`);
    args.push(share.readOnly ? "--idmap-ro" : "--idmap", `${path(share.path)}:${owner.uid}:${owner.gid}`);
  }
  for (const dev of plan.devices) args.push("--dev", dev);
  args.push(...superviseArgs(plan), "--", ...qemu);
  return args;
}

function superviseArgs(plan: JailPlan): string[] {
  const s = plan.supervise;
  if (s === undefined) return [];
  return ["--supervise", s.policy, "--status", path(s.status), ...(s.firstOnly === undefined ? [] : ["--first-only", String(s.firstOnly)])];
}

function unique(paths: string[]): string[] {
  return [...new Set(paths)];
}

function path(p: string): string {
  if (!p.startsWith("/") || p.includes("\0") || p.includes("\n") || p.split("/").includes("..")) {
    throw new SkiffError("ERR_SKIFF_BAD_PATH", `path cannot be given to the jail: ${JSON.stringify(p)}`, {
      hint: "paths QEMU uses must be absolute, without '..' and free of NUL and newline characters",
    });
  }
  return p;
}

function ifname(name: string): string {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new SkiffError("ERR_SKIFF_INTERNAL", `bad interface name: ${JSON.stringify(name)}`);
  return name;
}
