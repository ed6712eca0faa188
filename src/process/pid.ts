/**
 * Is a process still the one we think it is? A bare pid can be reused by an
 * unrelated process after ours dies, so we pair it with its start time from
 * /proc/<pid>/stat (field 22, clock ticks since boot), which is unique per
 * pid for the life of the system.
 */
import { readFile } from "node:fs/promises";
import { errnoOf, SkiffError } from "../errors.js";
import { readProcFile } from "./proc-file.js";

/** A process, precisely: pid plus the start time that tells it from a later holder of the pid. */
export interface ProcessIdentity {
  pid: number;
  startTime: number;
}

interface ProcStat {
  state: string;
  startTime: number;
}

function readStat(pid: number): ProcStat | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let text: string;
  try {
    text = readProcFile(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // comm (field 2) is in parentheses and may itself contain spaces and ')'.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = rest[0];
  const startTime = Number(rest[19]); // field 22; rest[0] is field 3
  if (state === undefined || !Number.isFinite(startTime)) return undefined;
  return { state, startTime };
}

/** Start time of `pid` in clock ticks since boot, or undefined if it does not exist. */
export function processStartTime(pid: number): number | undefined {
  return readStat(pid)?.startTime;
}

/**
 * True if `pid` runs and, when `startTime` is given, is the same process
 * that had that start time. Zombies count as dead: they will never do
 * anything again, they only wait for their parent to reap them.
 */
export function processAlive(pid: number, startTime?: number): boolean {
  const stat = readStat(pid);
  if (stat === undefined) return false;
  if (stat.state === "Z" || stat.state === "X") return false;
  return startTime === undefined || stat.startTime === startTime;
}

export function identityAlive(id: ProcessIdentity): boolean {
  return processAlive(id.pid, id.startTime);
}

/** This process, for recording as the creator or owner of something. */
export function currentProcess(): ProcessIdentity {
  const startTime = processStartTime(process.pid);
  if (startTime === undefined) {
    throw new SkiffError("ERR_SKIFF_HOST", `cannot read /proc/${process.pid}/stat`, {
      hint: "skiff needs Linux with /proc mounted",
    });
  }
  return { pid: process.pid, startTime };
}

/**
 * The pid in a pidfile, or undefined if there is none yet. An empty file
 * counts as none: QEMU creates its pidfile before writing it.
 */
export async function readPidfile(path: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return undefined;
    throw err;
  }
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const pid = Number(trimmed);
  if (!/^\d+$/.test(trimmed) || pid <= 0) {
    throw new SkiffError("ERR_SKIFF_STATE_CORRUPT", `pidfile does not hold a pid: ${path} (${JSON.stringify(trimmed.slice(0, 40))})`, {
      hint: `remove ${path} if no process of this VM runs`,
      details: { path },
    });
  }
  return pid;
}
