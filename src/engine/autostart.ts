/**
 * Starting VMs and projects when the host boots: one systemd unit each
 * (as baremetalvmm does), which runs `skiff start NAME` (or `skiff up -d` in
 * the project's directory) once the network is up and stops it at shutdown.
 * skiff itself keeps no daemon: systemd is the one that is always there.
 *
 * Units go to /etc/systemd/system (root) or ~/.config/systemd/user (a user's
 * skiff, started when the user's manager starts: `loginctl enable-linger`),
 * or to SKIFF_SYSTEMD_UNIT_DIR. Where systemd is the init, skiff reloads it
 * and enables the unit; elsewhere (a container) the unit is written and
 * takes effect on a host that boots with systemd.
 */
import { existsSync, realpathSync } from "node:fs";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { createHash } from "node:crypto";
import { SkiffError } from "../errors.js";
import type { Runner } from "../process/runner.js";

export interface AutostartTarget {
  kind: "vm" | "project";
  /** The VM's name, or the project's. */
  name: string;
  /** Projects: the directory `skiff up` runs in, and the files it was given (-f). */
  dir?: string;
  files?: string[];
}

export interface AutostartUnit extends AutostartTarget {
  unit: string;
  path: string;
}

const marker = "# Written by skiff autostart";

export function unitDir(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? -1): string {
  if (env.SKIFF_SYSTEMD_UNIT_DIR) return resolve(env.SKIFF_SYSTEMD_UNIT_DIR);
  return uid === 0 ? "/etc/systemd/system" : join(env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "systemd", "user");
}

/** The unit's name: the target and a hash of the skiff home, so two homes never share one. */
export function unitName(home: string, target: Pick<AutostartTarget, "kind" | "name">): string {
  const tag = createHash("sha256").update(resolve(home)).digest("hex").slice(0, 8);
  const safe = target.name.replace(/[^A-Za-z0-9_.-]/g, "_");
  return `skiff-${target.kind}-${safe}-${tag}.service`;
}

/** systemd's quoting for one word of ExecStart (C-style, in double quotes). */
function word(text: string): string {
  if (/[\n\0]/.test(text)) throw new SkiffError("ERR_SKIFF_BAD_PATH", `cannot put ${JSON.stringify(text)} in a systemd unit`);
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%").replace(/\$/g, "$$$$")}"`;
}

/** A path setting takes no quotes: the path as it is, with systemd's specifier character doubled. */
function pathSetting(path: string): string {
  if (/[\n\0]/.test(path)) throw new SkiffError("ERR_SKIFF_BAD_PATH", `cannot put ${JSON.stringify(path)} in a systemd unit`);
  return path.replace(/%/g, "%%");
}

/** The unit's text; pure. `node` and `cli` are the absolute paths the unit runs skiff with. */
export function unitText(opts: { home: string; node: string; cli: string; target: AutostartTarget; user: boolean }): string {
  const { target } = opts;
  const skiff = (...args: string[]) => [opts.node, opts.cli, ...args].map(word).join(" ");
  const files = (target.files ?? []).flatMap((f) => ["-f", f]);
  const start = target.kind === "vm" ? skiff("start", target.name) : skiff("up", "-d", ...files, "-p", target.name);
  const stop = target.kind === "vm" ? skiff("stop", target.name) : skiff("down", ...files, "-p", target.name);
  return [
    `${marker}; remove with \`skiff autostart disable ${target.kind === "project" ? "--project " : ""}${target.name}\`.`,
    "[Unit]",
    `Description=skiff ${target.kind === "vm" ? "VM" : "project"} ${target.name}`,
    ...(opts.user ? [] : ["After=network-online.target nftables.service", "Wants=network-online.target"]),
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `Environment=${word(`SKIFF_HOME=${resolve(opts.home)}`)}`,
    ...(target.dir === undefined ? [] : [`WorkingDirectory=${pathSetting(target.dir)}`]),
    `ExecStart=${start}`,
    `ExecStop=${stop}`,
    // A cold boot of a layered image under TCG, or a project's builds, take minutes.
    "TimeoutStartSec=900",
    "",
    "[Install]",
    `WantedBy=${opts.user ? "default.target" : "multi-user.target"}`,
    "",
  ].join("\n");
}

function systemdRunning(): boolean {
  return existsSync("/run/systemd/system");
}

function systemctl(user: boolean, ...args: string[]): string[] {
  return user ? ["--user", ...args] : args;
}

/** Write (or rewrite) the target's unit and enable it where systemd runs; what was done. */
/** A user's own systemd instance (no root, and no unit directory given). */
function userManager(): boolean {
  return process.getuid?.() !== 0 && process.env.SKIFF_SYSTEMD_UNIT_DIR === undefined;
}

/** Whether skiff talks to systemd at all: it runs here, and units go where it reads them. */
function manageSystemd(): boolean {
  return systemdRunning() && process.env.SKIFF_SYSTEMD_UNIT_DIR === undefined;
}

export async function enableAutostart(opts: {
  home: string;
  runner: Runner;
  target: AutostartTarget;
  node?: string;
  cli?: string;
}): Promise<{ unit: AutostartUnit; enabled: boolean }> {
  const dir = unitDir();
  const user = userManager();
  const unit = unitName(opts.home, opts.target);
  const path = join(dir, unit);
  const text = unitText({ home: opts.home, node: opts.node ?? process.execPath, cli: opts.cli ?? realpathSync(process.argv[1] ?? ""), target: opts.target, user });
  await mkdir(dir, { recursive: true });
  await writeFile(path, text, { mode: 0o644 });
  if (!manageSystemd()) return { unit: { ...opts.target, unit, path }, enabled: false };
  await opts.runner.run("systemctl", systemctl(user, "daemon-reload"), { check: true, debianPackage: "systemd" });
  await opts.runner.run("systemctl", systemctl(user, "enable", unit), { check: true, debianPackage: "systemd" });
  return { unit: { ...opts.target, unit, path }, enabled: true };
}

/** Units of this home that skiff wrote. */
export async function listAutostart(home: string): Promise<AutostartUnit[]> {
  const dir = unitDir();
  const units: AutostartUnit[] = [];
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return [];
  }
  const tag = unitName(home, { kind: "vm", name: "x" }).split("-").at(-1)!;
  for (const entry of entries) {
    const match = /^skiff-(vm|project)-(.+)-[0-9a-f]{8}\.service$/.exec(entry);
    if (match === null || !entry.endsWith(`-${tag}`)) continue;
    const text = await readFile(join(dir, entry), "utf8").catch(() => "");
    if (!text.startsWith(marker)) continue;
    units.push({ kind: match[1] as "vm" | "project", name: match[2]!, unit: entry, path: join(dir, entry) });
  }
  return units;
}

/** Disable and remove the target's unit; false when there was none. */
export async function disableAutostart(opts: { home: string; runner: Runner; target: Pick<AutostartTarget, "kind" | "name"> }): Promise<boolean> {
  const unit = unitName(opts.home, opts.target);
  const path = join(unitDir(), unit);
  const text = await readFile(path, "utf8").catch(() => undefined);
  if (text === undefined) return false;
  if (!text.startsWith(marker)) {
    throw new SkiffError("ERR_SKIFF_HOST", `${path} was not written by skiff; it is left alone`, { hint: "remove it yourself if it is not needed" });
  }
  const user = userManager();
  if (manageSystemd()) await opts.runner.run("systemctl", systemctl(user, "disable", unit), { debianPackage: "systemd" });
  await rm(path, { force: true });
  if (manageSystemd()) await opts.runner.run("systemctl", systemctl(user, "daemon-reload"), { debianPackage: "systemd" });
  return true;
}
