/**
 * The start of a VM from saved state (a snapshot, a hibernated VM's own):
 * its RAM file is a copy of the saved one (sparse: only what the guest had
 * touched), QEMU starts with -incoming and is fed the device state, and the
 * guest runs on from where it was. Every VM gets its own copy of the RAM
 * rather than a private mapping of the snapshot's: it can then be
 * snapshotted again the fast way (ram.ts), at ~50 ms of copying per restore.
 * Forks are the exception (shared-ram.ts): N of them map one sealed copy.
 *
 * Saved state without a RAM file (a VM whose RAM was private when it was
 * captured) carries the RAM in the migration stream: the new VM's RAM file
 * starts empty and QEMU fills it while it loads the stream.
 */
import { existsSync } from "node:fs";
import { copyFile, rm, stat } from "node:fs/promises";
import { SkiffError } from "../errors.js";
import { QmpClient } from "../qemu/qmp.js";
import { guestText } from "../guest/guest-text.js";
import { identityAlive, type ProcessIdentity } from "../process/pid.js";
import type { Runner } from "../process/runner.js";
import type { VmRecord } from "../store/store.js";
import { readRange } from "../engine/logs.js";
import { waitForExit } from "../engine/stop.js";
import { createRamFile } from "./ram.js";
import { loadState } from "./migrate.js";
import type { SharedRam } from "./shared-ram.js";

export interface ResumeSource {
  /** QEMU's device state (migration stream). */
  state: string;
  /** The guest's RAM, sparse; absent: it is in `state` (captured from a VM whose RAM was private). */
  mem?: string;
  /** Map this sealed copy of `mem` privately instead of copying it (fork: shared-ram.ts). */
  sharedRam?: SharedRam;
  /** The initramfs the guest booted (absent: the VM's own, as it is). */
  initrd?: string;
  /** The console log up to the capture, which the new VM's log starts with (absent: the VM's own goes on). */
  consoleLog?: string;
  /** For messages: "snapshot NAME", "the hibernated state". */
  what: string;
}

/**
 * The VM's RAM file as a copy of the saved RAM, and its initrd as the saved
 * one. The RAM file is made at once and filled in the background: the
 * copy (~50 ms) runs while the start readies the jail and the egress rules,
 * and `ram` settles when it is whole, which QEMU must wait for. It never
 * rejects unawaited: a caller that fails first waits for it all the same
 * (`settled`), so no copy goes on writing after a start gave up.
 */
export async function prepareResume(
  ctx: { home: string; runner: Runner },
  record: VmRecord,
  source: ResumeSource,
): Promise<{ ram: Promise<void>; settled: () => Promise<void> }> {
  const ram = source.sharedRam !== undefined ? Promise.resolve() : (await ramFileFor(ctx, record, source.mem)).copied;
  const settled = () => ram.catch(() => undefined);
  void settled();
  try {
    await copySmallFiles(record, source);
  } catch (err) {
    await settled();
    throw err;
  }
  return { ram, settled };
}

/** The VM's own RAM file, made now; the copy of the saved RAM into it settles later (none: QEMU fills it from the stream). */
async function ramFileFor(ctx: { home: string; runner: Runner }, record: VmRecord, mem: string | undefined): Promise<{ copied: Promise<void> }> {
  const ramPath = await createRamFile(ctx.home, record.id);
  if (mem === undefined) return { copied: Promise.resolve() };
  return { copied: ctx.runner.run("cp", ["--sparse=always", "--reflink=auto", mem, ramPath], { check: true }).then(() => undefined) };
}

async function copySmallFiles(record: VmRecord, source: ResumeSource): Promise<void> {
  if (source.initrd !== undefined) {
    await rm(record.paths.initrd, { force: true });
    await copyFile(source.initrd, record.paths.initrd);
  }
  // The jailer's relay appends to it (skiff-jail.c), as skiff's owner: the console so far, then the resumed guest's.
  if (source.consoleLog !== undefined && existsSync(source.consoleLog)) await copyFile(source.consoleLog, record.paths.consoleLog);
}

/** Feed the saved state to the QEMU just started with -incoming; on failure it is ended and the error says why. */
export async function loadResumed(record: VmRecord, qemu: ProcessIdentity, source: ResumeSource): Promise<void> {
  try {
    const qmp = await QmpClient.connect(record.paths.qmpSocket, { timeoutMs: 10_000, label: record.name });
    try {
      await loadState(qmp, { socketPath: record.paths.migrateSocket, file: source.state, ramInStream: source.mem === undefined });
    } finally {
      qmp.close();
    }
  } catch (err) {
    try {
      process.kill(qemu.pid, "SIGKILL");
    } catch {
      // it ended by itself: a stream it could not load ends QEMU
    }
    await waitForExit(qemu, 5_000);
    throw new SkiffError("ERR_SKIFF_RESTORE_FAILED", `${record.name}: QEMU could not load ${source.what}: ${err instanceof Error ? err.message : String(err)}`, {
      hint: `see ${record.paths.qemuStderr}; a VM that cannot resume boots from its disk with \`skiff start --cold ${record.name}\``,
      place: record.name,
      cause: err,
    });
  }
}

/** Console lines that say a guest kernel died or is dying. */
export const guestKernelCrash = /general protection fault|Oops: |Kernel panic|BUG: unable to handle|BUG: kernel NULL pointer|invalid opcode: /;

/** How much of the end of a log is read for a reason: a crash's first line is within its last screens. */
const tailBytes = 64 * 1024;

/** What `path` holds past `from`, its last tailBytes at most; all of it when it is shorter than `from` (rotated since). */
async function readTail(path: string, from: number): Promise<string> {
  try {
    const { size } = await stat(path);
    const start = Math.max(from > size ? 0 : from, size - tailBytes);
    return (await readRange(path, start, size)).toString("utf8");
  } catch {
    return "";
  }
}

/**
 * What a resumed VM that did not take its identity left behind: QEMU gone
 * (and the last line of its log), or a kernel crash on the console since
 * the resume (`consoleFrom`: the log's size when QEMU started; before it,
 * the console is the captured guest's; a log rotated since is new whole). Said in the error, since the VM
 * is stopped and a restored one removed with its logs. The console is the
 * guest's: one line, printable ASCII only and cut (guestText).
 */
export async function resumeFailureFacts(
  paths: Pick<VmRecord["paths"], "qemuStderr" | "consoleLog">,
  qemu: ProcessIdentity,
  consoleFrom: number,
): Promise<string | undefined> {
  const facts: string[] = [];
  if (!identityAlive(qemu)) {
    const last = (await readTail(paths.qemuStderr, 0)).split("\n").map((l) => l.trim()).filter((l) => l !== "").at(-1);
    facts.push(`QEMU had ended${last === undefined ? "" : ` (its log ends: ${guestText(last)})`}`);
  }
  const lines = (await readTail(paths.consoleLog, consoleFrom)).split("\n");
  const crash = lines.find((l) => guestKernelCrash.test(l));
  if (crash !== undefined) facts.push(`the guest's kernel crashed: ${guestText(crash.replace(/^\[\s*[\d.]+\]\s*/, ""))}`);
  return facts.length === 0 ? undefined : facts.join("; ");
}
