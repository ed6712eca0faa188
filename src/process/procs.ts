/**
 * The host's processes as /proc shows them, in one snapshot: who runs as
 * whom (the real uid), who is whose parent, and each one's start time, so a
 * pid reused by a later process is never mistaken for the one meant.
 */
import { readdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { ProcessIdentity } from "./pid.js";
import { readProcFile } from "./proc-file.js";

export interface ProcInfo {
  pid: number;
  ppid: number;
  /** Real uid. */
  uid: number;
  startTime: number;
  state: string;
  /** A kernel thread: no uid of its own to read (root's), no command line. */
  kernel?: true;
}

/** A snapshot of the host's processes; command lines are read on demand. */
export class ProcTable {
  readonly procs: ProcInfo[];
  readonly #byPid = new Map<number, ProcInfo>();
  readonly #argv = new Map<number, string[]>();

  /** `procs` and `argvs` given: a table of those (tests); otherwise the host's. */
  constructor(procs?: ProcInfo[], argvs?: ReadonlyMap<number, string[]>) {
    this.procs = procs ?? readProcs();
    for (const p of this.procs) this.#byPid.set(p.pid, p);
    for (const [pid, argv] of argvs ?? []) this.#argv.set(pid, argv);
  }

  get(pid: number): ProcInfo | undefined {
    return this.#byPid.get(pid);
  }

  argv(pid: number): string[] {
    let argv = this.#argv.get(pid);
    if (argv === undefined) {
      argv = this.#byPid.get(pid)?.kernel === true ? [] : readArgv(pid);
      this.#argv.set(pid, argv);
    }
    return argv;
  }
}

export function alive(p: ProcInfo): boolean {
  return p.state !== "Z" && p.state !== "X";
}

/** Every live process running as `uid`. */
export function processesOf(uid: number, table = new ProcTable()): ProcessIdentity[] {
  return table.procs.filter((p) => alive(p) && p.uid === uid).map((p) => ({ pid: p.pid, startTime: p.startTime }));
}

/**
 * SIGKILL every process running as `uid` (a jail user whose VM is gone) and
 * wait until none is left; processes started as it meanwhile are caught by
 * the next round. False when some still ran at the deadline (a QEMU with
 * much memory can take seconds to exit on a loaded host).
 */
export async function killUid(uid: number, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = processesOf(uid);
    if (left.length === 0) return true;
    if (Date.now() > deadline) return false;
    for (const p of left) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    await sleep(20);
  }
}

function readProcs(): ProcInfo[] {
  const procs: ProcInfo[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const info = readProc(Number(entry));
    if (info !== undefined) procs.push(info);
  }
  return procs;
}

/** The kernel's PF_KTHREAD, in stat's flags (field 9). */
const kernelThread = 0x00200000;

/**
 * stat, and status for the uid. Kernel threads (two thirds of a small
 * host's processes) are told by their flags and skip the second read, and
 * their command line is never read: `skiff ps` reads /proc for every
 * process, so each file it skips is a little off every command.
 */
function readProc(pid: number): ProcInfo | undefined {
  try {
    const dir = `/proc/${pid}`;
    const stat = readProcFile(`${dir}/stat`);
    // comm (field 2) is in parentheses and may itself contain spaces and ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const info = { pid, state: rest[0] ?? "?", ppid: Number(rest[1]), startTime: Number(rest[19]) };
    if ((Number(rest[6]) & kernelThread) !== 0) return { ...info, uid: 0, kernel: true };
    const status = readProcFile(`${dir}/status`);
    const uid = /^Uid:\s+(\d+)/m.exec(status);
    if (uid === null) return undefined;
    return { ...info, uid: Number(uid[1]) };
  } catch {
    return undefined; // gone meanwhile
  }
}

function readArgv(pid: number): string[] {
  try {
    const text = readProcFile(`/proc/${pid}/cmdline`, "utf8");
    return text.split("\0").slice(0, -1);
  } catch {
    return [];
  }
}
