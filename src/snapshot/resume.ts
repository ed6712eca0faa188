/**
 * The start of a VM from saved state (a snapshot, a hibernated VM's own):
 * its RAM file is a copy of the saved one (sparse: only what the guest had
 * touched), QEMU starts with -incoming and is fed the device state, and the
 * guest runs on from where it was. Every VM gets its own copy of the RAM
 * rather than a private mapping of the snapshot's: it can then be
 * snapshotted again the fast way (ram.ts), at ~50 ms of copying per restore.
 */
import { existsSync } from "node:fs";
import { chown, copyFile, mkdir, rm } from "node:fs/promises";
import { jailMode } from "../jail/ids.js";
import { SkiffError } from "../errors.js";
import { QmpClient } from "../qemu/qmp.js";
import type { ProcessIdentity } from "../process/pid.js";
import type { Runner } from "../process/runner.js";
import type { VmRecord } from "../store/store.js";
import { waitForExit } from "../engine/stop.js";
import { createRamFile } from "./ram.js";
import { loadState } from "./migrate.js";

export interface ResumeSource {
  /** QEMU's device state (migration stream). */
  state: string;
  /** The guest's RAM, sparse. */
  mem: string;
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
  const ramPath = await createRamFile(ctx.home, record.id);
  const ram = ctx.runner.run("cp", ["--sparse=always", "--reflink=auto", source.mem, ramPath], { check: true }).then(() => undefined);
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

async function copySmallFiles(record: VmRecord, source: ResumeSource): Promise<void> {
  if (source.initrd !== undefined) {
    await rm(record.paths.initrd, { force: true });
    await copyFile(source.initrd, record.paths.initrd);
  }
  if (source.consoleLog !== undefined && existsSync(source.consoleLog)) {
    // QEMU appends to it (logappend=on) as the jail user, in the run directory that user owns.
    await mkdir(record.paths.runDir, { recursive: true, mode: 0o700 });
    await copyFile(source.consoleLog, record.paths.consoleLog);
    const jail = record.config.jail;
    if (jail !== undefined && jailMode() === "root") await chown(record.paths.consoleLog, jail.uid, jail.gid);
  }
}

/** Feed the saved state to the QEMU just started with -incoming; on failure it is ended and the error says why. */
export async function loadResumed(record: VmRecord, qemu: ProcessIdentity, source: ResumeSource): Promise<void> {
  try {
    const qmp = await QmpClient.connect(record.paths.qmpSocket, { timeoutMs: 10_000, label: record.name });
    try {
      await loadState(qmp, { socketPath: record.paths.migrateSocket, file: source.state });
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
