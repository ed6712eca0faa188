/**
 * The one truth about a VM's processes, read from /proc, used by every verb
 * (status, stop, kill, rm, reconcile): never a pid remembered in state.json
 * or written by QEMU into its pidfile, both of which can be stale, missing
 * (a skiff killed between starting QEMU and writing its state) or forged (a
 * QEMU taken over by its guest writes its own pidfile and argv).
 *
 * - Jailed as root, a VM's QEMU is the process running as the VM's jail uid
 *   whose parent does not: jail uids are unique on the host (claims.ts), and
 *   nothing without root can take one on. Its children (socat for a guest
 *   forward) share the uid but not the place at the top.
 * - Otherwise (without root, or with SKIFF_JAIL=off) it is the process whose
 *   command line names the VM's pidfile (`-pidfile <vm>/run/qemu.pid`) and
 *   is not a restart supervisor, whose command line carries QEMU's.
 * - A restart supervisor is the root process whose command line is the
 *   jailer's with the VM's status file.
 */
import type { ProcessIdentity } from "../process/pid.js";
import { alive, ProcTable } from "../process/procs.js";
import { vmDirPresent } from "../store/paths.js";
import type { VmConfig, VmPaths } from "../store/vmdir.js";

/** The VM's running QEMU, or undefined. */
export function qemuOf(vm: { paths: VmPaths; config: Pick<VmConfig, "jail"> }, table = new ProcTable()): ProcessIdentity | undefined {
  const jail = vm.config.jail;
  let found: ReturnType<ProcTable["get"]>;
  if (jail !== undefined && process.getuid?.() === 0) {
    found = table.procs.find((p) => alive(p) && p.uid === jail.uid && table.get(p.ppid)?.uid !== jail.uid);
  }
  // A supervisor's command line holds QEMU's, pidfile and all: it is never the QEMU.
  found ??= table.procs.find((p) => alive(p) && !isJailer(table.argv(p.pid)) && namesArg(table.argv(p.pid), "-pidfile", vm.paths.pidfile));
  return found === undefined ? undefined : { pid: found.pid, startTime: found.startTime };
}

/** The VM's restart supervisor (a jailer that stays as QEMU's parent), or undefined. */
export function supervisorOf(vm: { paths: VmPaths }, table = new ProcTable()): ProcessIdentity | undefined {
  const own = process.getuid?.() ?? -1;
  const found = table.procs.find(
    (p) => alive(p) && p.uid === own && isJailer(table.argv(p.pid)) && namesArg(table.argv(p.pid), "--status", vm.paths.supervisorStatus),
  );
  return found === undefined ? undefined : { pid: found.pid, startTime: found.startTime };
}

/**
 * QEMUs and supervisors of `vmsDir` whose VM is not among `known` ids: what
 * a crash left behind (a VM directory removed while its QEMU ran, or never
 * committed). Each with the VM id its command line names.
 *
 * `known` is a scan made before `table` was read, so a VM committed and
 * started by another command between the two (16 `run -d` at once) is not
 * in it, yet its QEMU is in the table: such a VM's directory exists now,
 * and its QEMU is no stray (it was ended as one, and its start failed). A
 * QEMU is only ever started for a committed directory, so looking after the
 * table was read is enough (vmDirPresent).
 */
export function strays(
  vmsDir: string,
  known: ReadonlySet<string>,
  table = new ProcTable(),
  exists?: (path: string) => boolean,
): { pid: number; startTime: number; vmId: string }[] {
  const own = process.getuid?.() ?? -1;
  const pattern = new RegExp(`^${escapeRegExp(vmsDir)}/(?:\\.tmp-)?([0-9a-f]{12})/`);
  const found: { pid: number; startTime: number; vmId: string }[] = [];
  for (const p of table.procs) {
    if (!alive(p)) continue;
    const argv = table.argv(p.pid);
    const flag = isJailer(argv) ? "--status" : "-pidfile";
    const at = argv.indexOf(flag);
    const match = at < 0 ? null : pattern.exec(argv[at + 1] ?? "");
    if (match === null || known.has(match[1]!)) continue;
    if (vmDirPresent(vmsDir, match[1]!, exists)) continue;
    // A jailer must be ours (root's, or the user's own); a QEMU is whatever runs it.
    if (isJailer(argv) && p.uid !== own) continue;
    found.push({ pid: p.pid, startTime: p.startTime, vmId: match[1]! });
  }
  return found;
}

function isJailer(argv: readonly string[]): boolean {
  return (argv[0] ?? "").endsWith("/skiff-jail");
}

function namesArg(argv: readonly string[], flag: string, value: string): boolean {
  for (let i = 0; i < argv.length - 1; i++) if (argv[i] === flag && argv[i + 1] === value) return true;
  return false;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
