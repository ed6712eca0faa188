/**
 * What one skiff home holds on the host, read straight from /proc, the VM
 * directories, cgroupfs, nftables and the jail-id registry (never through
 * skiff), and the invariants the kill-point suite holds a home to after
 * each kill and the one command that follows it.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { detectCgroups, homeGroupName } from "../../src/jail/cgroup.js";
import { readClaims } from "../../src/jail/claims.js";
import { ProcTable, alive } from "../../src/process/procs.js";

export interface PsRow {
  id: string;
  name: string;
  state: string;
  pid?: number;
}

/** One QEMU on the host whose command line points into the home. */
interface Qemu {
  pid: number;
  startTime: number;
  vmId: string;
}

/** QEMUs of `home`, by the VM directory their command line names (as `-pidfile`). */
export function qemusOf(home: string): Qemu[] {
  const table = new ProcTable();
  const pattern = new RegExp(`${home.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/vms/(?:\\.tmp-)?([0-9a-f]{12})/`);
  const found: Qemu[] = [];
  for (const p of table.procs) {
    if (!alive(p)) continue;
    const argv = table.argv(p.pid);
    if (!(argv[0] ?? "").includes("qemu-system")) continue;
    const match = pattern.exec(argv.join(" "));
    if (match === null) {
      if (argv.join(" ").includes(`${home}/`)) found.push({ pid: p.pid, startTime: p.startTime, vmId: "?" });
      continue;
    }
    found.push({ pid: p.pid, startTime: p.startTime, vmId: match[1]! });
  }
  return found;
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}

interface DiskVm {
  id: string;
  name?: string;
  complete: boolean;
  jailUid?: number;
  /** The record says QEMU runs: a pid and no end recorded. */
  qemuPid?: number;
}

/** The VM directories of `home` as the files say, and the other entries of vms/. */
export function diskVms(home: string): { vms: DiskVm[]; debris: string[] } {
  const dir = join(home, "vms");
  const vms: DiskVm[] = [];
  const debris: string[] = [];
  for (const entry of existsSync(dir) ? readdirSync(dir) : []) {
    if (!/^[0-9a-f]{12}$/.test(entry)) {
      if (!entry.startsWith(".lock") && entry !== "locks") debris.push(entry);
      continue;
    }
    const config = readJson<{ spec?: { name?: string }; jail?: { uid: number } }>(join(dir, entry, "config.json"));
    const state = readJson<{ qemu?: { pid: number }; exit?: unknown }>(join(dir, entry, "state.json")) ?? {};
    vms.push({
      id: entry,
      ...(config?.spec?.name === undefined ? {} : { name: config.spec.name }),
      complete: !existsSync(join(dir, entry, "creating.json")),
      ...(config?.jail === undefined ? {} : { jailUid: config.jail.uid }),
      ...(state.qemu !== undefined && state.exit === undefined ? { qemuPid: state.qemu.pid } : {}),
    });
  }
  return { vms, debris };
}

/** vm-<id> groups under the home's cgroup, in any hierarchy. */
export function vmGroups(home: string): string[] {
  const layout = detectCgroups();
  const roots = layout.kind === "v2" ? [layout.root] : layout.kind === "v1" ? Object.values(layout.controllers) : [];
  const ids = new Set<string>();
  for (const root of roots) {
    const group = join(root, homeGroupName(home));
    if (!existsSync(group)) continue;
    for (const e of readdirSync(group)) if (e.startsWith("vm-")) ids.add(e.slice(3));
  }
  return [...ids];
}

export function jailTables(): Set<number> {
  const out = JSON.parse(execFileSync("nft", ["-j", "list", "tables"], { encoding: "utf8" })) as { nftables: { table?: { name: string } }[] };
  const uids = new Set<number>();
  for (const e of out.nftables) {
    const m = /^skiff_jail_(\d+)$/.exec(e.table?.name ?? "");
    if (m !== null) uids.add(Number(m[1]));
  }
  return uids;
}

/** Jail uids claimed for VMs of `home`, by VM id; and every uid claimed by anyone. */
export async function claimsOf(home: string): Promise<{ mine: Map<string, number>; all: Set<number> }> {
  const mine = new Map<string, number>();
  const all = new Set<number>();
  for (const c of await readClaims()) {
    all.add(c.uid);
    if (c.home === home) mine.set(c.vmId, c.uid);
  }
  return { mine, all };
}

/**
 * The home is consistent: every QEMU of it belongs to a committed VM whose
 * record says it runs with that very pid, and every record that says
 * running has that QEMU; nothing of a run (cgroup, egress table) outlives
 * its QEMU; every jail claim of the home has its VM directory; no half-made
 * or half-removed directory is left. `uidsSeen` collects the jail uids the
 * home ever had, so that a table of a VM since removed is still caught.
 * Returns the problems found (empty: consistent).
 */
export async function homeProblems(home: string, uidsSeen: Set<number>, opts: { debris?: boolean } = {}): Promise<string[]> {
  const problems: string[] = [];
  const qemus = qemusOf(home);
  const { vms, debris } = diskVms(home);
  const byId = new Map(vms.map((v) => [v.id, v]));
  for (const q of qemus) {
    const vm = byId.get(q.vmId);
    if (vm === undefined) problems.push(`QEMU ${q.pid} runs for ${q.vmId}, which has no VM directory`);
    else if (!vm.complete) problems.push(`QEMU ${q.pid} runs for ${q.vmId}, which was never committed`);
    else if (vm.qemuPid !== q.pid) problems.push(`QEMU ${q.pid} runs for ${q.vmId}, whose record says ${vm.qemuPid === undefined ? "not running" : `pid ${vm.qemuPid}`}`);
  }
  const running = new Set(qemus.map((q) => q.vmId));
  for (const vm of vms) {
    if (vm.qemuPid !== undefined && !running.has(vm.id)) problems.push(`${vm.id}'s record says QEMU ${vm.qemuPid} runs; none does`);
    if (vm.jailUid !== undefined) uidsSeen.add(vm.jailUid);
  }
  for (const id of vmGroups(home)) if (!running.has(id)) problems.push(`cgroup vm-${id} is left though its QEMU does not run`);
  const claims = await claimsOf(home);
  for (const [vmId, uid] of claims.mine) {
    uidsSeen.add(uid);
    if (!byId.has(vmId)) problems.push(`jail uid ${uid} is still claimed for ${vmId}, which has no VM directory`);
  }
  const tables = jailTables();
  const runningUids = new Set(vms.filter((v) => running.has(v.id)).map((v) => v.jailUid));
  for (const uid of uidsSeen) {
    // A uid since handed to a VM of another home may have a table of its own.
    const elsewhere = claims.all.has(uid) && ![...claims.mine.values()].includes(uid);
    if (tables.has(uid) && !runningUids.has(uid) && !elsewhere) problems.push(`nft table skiff_jail_${uid} is left though no QEMU of it runs`);
  }
  if (opts.debris !== false && debris.length > 0) problems.push(`left in vms/: ${debris.join(", ")}`);
  return problems;
}

/** `ps -a --format json` agrees with /proc: a row is running exactly when its QEMU runs, with that pid. */
export function psProblems(home: string, rows: PsRow[]): string[] {
  const problems: string[] = [];
  const qemus = new Map(qemusOf(home).map((q) => [q.vmId, q.pid]));
  for (const row of rows) {
    const pid = qemus.get(row.id);
    const runs = row.state === "running" || row.state === "paused";
    if (runs && pid !== row.pid) problems.push(`ps says ${row.name} runs as ${row.pid}; /proc says ${pid ?? "no QEMU"}`);
    if (!runs && pid !== undefined) problems.push(`ps says ${row.name} is ${row.state}; its QEMU ${pid} runs`);
  }
  for (const id of qemus.keys()) if (!rows.some((r) => r.id === id)) problems.push(`QEMU of ${id} runs; ps does not list it`);
  return problems;
}
