/**
 * The boot initramfs: skiff-init as /init, the guest tools, the kernel
 * modules the guest needs, and skiff's own /etc. Built once per (kernel,
 * tools) and cached; each VM's initrd is that base followed by a small
 * per-VM archive (config, keys), which the kernel unpacks on top.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile, appendFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { KernelInfo } from "../kernel/debian.js";
import { configForcesSignatures, guestModules, keepModuleSignatures, parseModulesDep, resolveModules, withoutSignature } from "../kernel/modules.js";
import type { GuestNetwork } from "../network/guest.js";
import { type CpioEntry, writeCpio } from "./cpio.js";
import { SkiffError } from "../errors.js";
import { collectGuestTools, toolsFingerprint } from "./tools.js";
import { cachedProbe } from "../util/probe-cache.js";
import { encodeExecRequest, type EncodableRequest } from "./exec-request.js";
import { checkEnvVar, checkGuestCounts } from "./limits.js";
import type { RestartPolicy } from "../spec/machine.js";

/** Bumped whenever the layout below changes, so cached archives are rebuilt. */
const layoutVersion = 5;

const agentEtc = {
  passwd: "root:x:0:0:root:/skiff/root:/skiff/bin/skiff-shell\n",
  group: "root:x:0:\ntty:x:5:\n",
  // dropbear refuses a login whose shell is not listed here.
  shells: "/skiff/bin/skiff-shell\n",
};

function dirsOf(paths: readonly string[]): string[] {
  const dirs = new Set<string>();
  for (const p of paths) {
    const parts = p.split("/").filter((x) => x !== "");
    for (let i = 1; i < parts.length; i++) dirs.add("/" + parts.slice(0, i).join("/"));
  }
  return [...dirs].sort();
}

/**
 * `kernel` is the Debian kernel whose modules the guest loads, or undefined
 * for a kernel with what skiff needs built in (one skiff built: kernel/
 * config.ts), whose initramfs carries no modules at all.
 */
export async function ensureBaseInitramfs(opts: {
  kernel: KernelInfo | undefined;
  cacheDir: string;
  network: boolean;
  shares?: boolean;
  /** The VM's own kernel command line words: enforcing module signatures keeps them in the archive. */
  kernelArgs?: readonly string[];
}): Promise<string> {
  const tools = await collectGuestTools(opts.cacheDir);
  const { kernel } = opts;
  const { bootPaths, latePaths, netfilterPaths } =
    kernel === undefined ? { bootPaths: [], latePaths: [], netfilterPaths: [] } : await guestModulePaths(kernel, opts.cacheDir, opts.network, opts.shares === true);
  const modulePaths = [...bootPaths, ...latePaths, ...netfilterPaths];
  const signed = kernel !== undefined && modulePaths.length > 0 && keepModuleSignatures(opts.kernelArgs ?? [], await kernelForcesSignatures(kernel, opts.cacheDir));
  const key = createHash("sha256")
    .update(`${layoutVersion}\0${kernel?.version ?? "built-in"}\0${modulePaths.join(",")}\0${signed ? "signed" : "unsigned"}\0${toolsFingerprint(tools)}`)
    .digest("hex")
    .slice(0, 16);
  const target = join(opts.cacheDir, "initramfs", `base-${key}.cpio`);
  if (existsSync(target)) {
    // Its mtime says when it was last used: the cache keeps the most recent (pruneInitramfsCache).
    const now = new Date();
    await utimes(target, now, now).catch(() => undefined);
    return target;
  }

  let build = building.get(target);
  if (build === undefined) {
    build = writeBaseArchive(target, { tools, modulesDir: kernel?.modulesDir ?? "", bootPaths, latePaths, netfilterPaths, signed }).finally(() => building.delete(target));
    building.set(target, build);
  }
  await build;
  return target;
}

/**
 * Whether the build config Debian installs beside the kernel
 * (`/boot/config-VERSION`, 250 KB: 3–5 ms to read and search, on every
 * create and boot) forces module signatures; kept in the cache per config
 * file, as the module lists are per modules.dep.
 */
async function kernelForcesSignatures(kernel: KernelInfo, cacheDir: string): Promise<boolean> {
  const config = join(dirname(kernel.vmlinuzPath), `config-${kernel.version}`);
  const ask = async () => configForcesSignatures(await readFile(config, "utf8").catch(() => undefined));
  return cachedProbe(cacheDir, "module-sig-force", [config], ask, (v): v is boolean => typeof v === "boolean");
}

interface ModulePaths {
  bootPaths: string[];
  latePaths: string[];
  netfilterPaths: string[];
}

/**
 * The module files the guest loads, each after its dependencies: at boot,
 * late (with the network's and the shares' when the VM has them), and the
 * netfilter ones (loaded by skiff-init only when the image has iptables or
 * nft, so only with a NIC). Reading modules.dep (~4,000 modules) and
 * walking it took ~30 ms of every create; the answer is kept in the cache
 * per modules.dep (util/probe-cache.ts) and per list asked for.
 */
async function guestModulePaths(kernel: KernelInfo, cacheDir: string, network: boolean, shares: boolean): Promise<ModulePaths> {
  const late = [...guestModules.late, ...(network ? guestModules.network : []), ...(shares ? guestModules.shares : [])];
  const netfilter = network ? guestModules.netfilter : [];
  const depFile = join(kernel.modulesDir, "modules.dep");
  const ask = async (): Promise<ModulePaths> => {
    const index = parseModulesDep(await readFile(depFile, "utf8"));
    const bootPaths = resolveModules(index, guestModules.boot).paths;
    const latePaths = resolveModules(index, late, bootPaths).paths;
    const netfilterPaths = resolveModules(index, netfilter, [...bootPaths, ...latePaths]).paths;
    return { bootPaths, latePaths, netfilterPaths };
  };
  const wanted = createHash("sha256").update(JSON.stringify([guestModules.boot, late, netfilter])).digest("hex").slice(0, 16);
  return cachedProbe(cacheDir, `modules-${wanted}`, [depFile], ask, isModulePaths);
}

function isModulePaths(v: unknown): v is ModulePaths {
  const list = (x: unknown) => Array.isArray(x) && x.every((p) => typeof p === "string" && p !== "" && !p.startsWith("/") && !p.split("/").includes(".."));
  const o = v as Partial<ModulePaths> | null;
  return typeof o === "object" && o !== null && list(o.bootPaths) && list(o.latePaths) && list(o.netfilterPaths);
}

/** Archives being made by this process, by path: VMs created at once (a project's services) wait for the one build. */
const building = new Map<string, Promise<void>>();

async function writeBaseArchive(
  target: string,
  opts: {
    tools: Awaited<ReturnType<typeof collectGuestTools>>;
    modulesDir: string;
    bootPaths: string[];
    latePaths: string[];
    netfilterPaths: string[];
    signed: boolean;
  },
): Promise<void> {
  const { tools, modulesDir, bootPaths, latePaths, netfilterPaths } = opts;
  const moduleData = async (rel: string) => {
    const data = await readFile(join(modulesDir, rel));
    return opts.signed ? data : withoutSignature(data);
  };
  const modulePaths = [...bootPaths, ...latePaths, ...netfilterPaths];
  const files: CpioEntry[] = [];
  for (const t of tools) files.push({ type: "file", path: t.guestPath, data: await readFile(t.hostPath), mode: t.mode });
  const guestModulePath = (rel: string) => `/skiff/modules/${rel.slice(rel.lastIndexOf("/") + 1)}`;
  for (const rel of modulePaths) files.push({ type: "file", path: guestModulePath(rel), data: await moduleData(rel), mode: 0o644 });
  const enc = (s: string): Buffer => Buffer.from(s, "utf8");
  files.push(
    { type: "file", path: "/skiff/modules.boot", data: enc(bootPaths.map(guestModulePath).join("\n") + "\n") },
    { type: "file", path: "/skiff/modules.late", data: enc(latePaths.map(guestModulePath).join("\n") + "\n") },
    { type: "file", path: "/skiff/modules.netfilter", data: enc(netfilterPaths.map(guestModulePath).join("\n") + "\n") },
    { type: "file", path: "/etc/passwd", data: enc(agentEtc.passwd) },
    { type: "file", path: "/etc/group", data: enc(agentEtc.group) },
    { type: "file", path: "/etc/shells", data: enc(agentEtc.shells) },
  );
  const links: CpioEntry[] = [
    { type: "symlink", path: "/init", target: "/skiff/bin/skiff-init" },
    { type: "symlink", path: "/skiff/bin/skiff-shell", target: "skiff-init" },
    { type: "symlink", path: "/skiff/bin/skiff-kill", target: "skiff-init" },
    { type: "symlink", path: "/skiff/bin/skiff-detach", target: "skiff-init" },
    { type: "symlink", path: "/skiff/bin/sh", target: "busybox" },
    // dropbear is an ordinary dynamic program in the agent world: standard loader and library paths.
    { type: "symlink", path: "/lib64", target: "/skiff/lib" },
    { type: "symlink", path: "/lib/x86_64-linux-gnu", target: "/skiff/lib" },
  ];
  const emptyDirs = ["/dev", "/proc", "/sys", "/image", "/tmp", "/var", "/var/log", "/skiff/etc", "/skiff/root"];
  const allPaths = [...files, ...links].map((e) => e.path);
  const dirs = new Set([...dirsOf([...allPaths, ...emptyDirs.map((d) => d + "/x")])]);
  dirs.delete("/lib64");
  dirs.delete("/lib/x86_64-linux-gnu");
  const entries: CpioEntry[] = [
    ...[...dirs].sort().map((path): CpioEntry => ({ type: "dir", path, mode: path === "/skiff/root" ? 0o700 : 0o755 })),
    { type: "dir", path: "/skiff/root/.ssh", mode: 0o700 },
    { type: "chardev", path: "/dev/console", major: 5, minor: 1, mode: 0o600 },
    ...files,
    ...links,
  ];
  const dir = dirname(target);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Its own name: another process may be writing the same archive (the first rename wins; both are the same).
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await writeFile(tmp, writeCpio(entries));
    await rename(tmp, target);
  } finally {
    await rm(tmp, { force: true });
  }
  await pruneInitramfsCache(dir);
}

/**
 * Enough for every variant a host uses at once (two kernels, with and
 * without a NIC, with and without bind mounts), with room: a new archive
 * is made for each change of kernel or of skiff's guest tools, so without
 * a bound the cache grew by 7-12 MB with every skiff upgrade (19 archives,
 * 213 MB, in a developer's test cache).
 */
const keptArchives = 12;

/**
 * Keep the `keep` most recently used base archives (by mtime, which a use
 * refreshes) and drop the others, with any temporary file an interrupted
 * build left an hour ago or more. A VM never points at one: its initrd is a
 * copy (writeVmInitrd), and a snapshot keeps its own.
 */
export async function pruneInitramfsCache(dir: string, keep = keptArchives, now = Date.now()): Promise<string[]> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  const archives: { name: string; used: number }[] = [];
  const removed: string[] = [];
  for (const name of entries) {
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st === undefined) continue;
    if (/^base-[0-9a-f]{16}\.cpio$/.test(name)) archives.push({ name, used: st.mtimeMs });
    else if (/^base-[0-9a-f]{16}\.cpio\.tmp-\d+(-[0-9a-f]+)?$/.test(name) && now - st.mtimeMs > 3_600_000) removed.push(name);
  }
  archives.sort((a, b) => b.used - a.used);
  removed.push(...archives.slice(keep).map((a) => a.name));
  for (const name of removed) await rm(join(dir, name), { force: true });
  return removed.sort();
}

export interface GuestConfig {
  hostname: string;
  /** Environment every command gets (`-e` at run/create). */
  env: Record<string, string>;
  /** NICs by MAC with their names and addresses, the default route, nameservers, /etc/hosts. */
  network: GuestNetwork;
  authorizedKey: string;
  /** skiff-init logs each boot step with the guest's uptime (SKIFF_GUEST_DEBUG=1). */
  debug?: boolean;
  /** virtio-serial agent ports QEMU offers; skiff-init waits for them all. */
  agentPorts: number;
  /** dropbear-format ed25519 host key. */
  hostKey: Buffer;
  /** What skiff-init mounts inside the image before anything starts: a 9p share by tag, an ext4 disk by serial. */
  mounts?: GuestMount[];
  /** The main command, when skiff-init starts and supervises it (MachineSpec.init). */
  main?: { restart: RestartPolicy; request: EncodableRequest };
}

export interface GuestMount {
  fs: "9p" | "ext4";
  /** The 9p mount tag, or the disk's virtio-blk serial. */
  source: string;
  target: string;
  readOnly: boolean;
}

/** The key=value file skiff-init reads. Values are single lines by construction. */
export function renderGuestConfig(config: GuestConfig): string {
  checkGuestCounts({ nics: config.network.nics.length, mounts: (config.mounts ?? []).length, agentPorts: config.agentPorts });
  const lines = [`hostname=${config.hostname}`, `agent.ports=${config.agentPorts}`];
  if (config.debug === true) lines.push("debug=1");
  const net = config.network;
  net.nics.forEach((nic, i) => lines.push(`nic.${i}=${nic.mac} ${nic.name} ${nic.address}`));
  if (net.gateway !== undefined) lines.push(`gateway=${net.gateway}`);
  if (net.dns.length > 0) lines.push(`dns=${net.dns.join(" ")}`);
  (config.mounts ?? []).forEach((m, i) => {
    // The target comes last and runs to the end of the line: it may hold spaces.
    if (/[\s]/.test(m.source) || /[\n\r\0]/.test(m.target)) throw new SkiffError("ERR_SKIFF_INTERNAL", `mount cannot be told to the guest: ${m.source} ${m.target}`);
    lines.push(`mount.${i}=${m.fs} ${m.source} ${m.readOnly ? "ro" : "rw"} ${m.target}`);
  });
  if (config.main !== undefined) {
    // Base64 of NUL-separated records (skiff-shell's own format): argv arrives exactly as given.
    lines.push(`main.restart=${config.main.restart}`, `main.exec=${encodeExecRequest(config.main.request)}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * /skiff/env: the VM's environment as NUL-terminated `KEY=VALUE` records
 * (guest/config.c, env_entries), so a value may hold newlines. A variable
 * the guest could not hold is refused, never left out.
 */
export function renderEnvFile(env: Record<string, string>): Buffer {
  const records = Object.entries(env).map(([key, value]) => {
    checkEnvVar(key, value, "env");
    return `${key}=${value}\0`;
  });
  return Buffer.from(records.join(""), "utf8");
}

export function guestConfigArchive(config: GuestConfig): Buffer {
  return writeCpio([
    { type: "file", path: "/skiff/config", data: Buffer.from(renderGuestConfig(config)) },
    { type: "file", path: "/skiff/env", data: renderEnvFile(config.env) },
    { type: "file", path: "/skiff/hosts", data: Buffer.from(config.network.hosts) },
    { type: "file", path: "/skiff/root/.ssh/authorized_keys", data: Buffer.from(config.authorizedKey.trim() + "\n"), mode: 0o600 },
    { type: "file", path: "/skiff/etc/ssh_host_ed25519_key", data: config.hostKey, mode: 0o600 },
  ]);
}

/** Write a VM's initrd: the shared base, then its own config archive on top. */
export async function writeVmInitrd(basePath: string, config: GuestConfig, targetPath: string): Promise<void> {
  const tmp = `${targetPath}.tmp`;
  await copyFile(basePath, tmp);
  await appendFile(tmp, guestConfigArchive(config));
  await rename(tmp, targetPath);
}
