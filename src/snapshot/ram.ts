/**
 * A VM's RAM as a named file in shared memory (/dev/shm), mapped by its QEMU
 * with share=on. A snapshot copies this file while the guest is paused and
 * migrates only the device state (x-ignore-shared): measured here, 0.11 s
 * paused for a 256 MiB guest, against streaming every touched page through
 * QEMU's migration channel. tmpfs rather than the VM's directory: a shared
 * mapping of a file on disk is written back to the disk while the guest runs.
 *
 * The file outlives its QEMU, so it is removed with the rest of a run's host
 * resources (reconcile.ts: releaseHost), and a sweep removes those of VMs
 * that are gone. One directory per skiff home (0700), so homes never touch
 * each other's files and no other user can read a guest's memory.
 */
import { mkdir, open, readdir, rm, rmdir } from "node:fs/promises";
import { errnoOf } from "../errors.js";
import { join } from "node:path";
import { homeGroupName } from "../jail/cgroup.js";

/** Where RAM files live; SKIFF_RAM_DIR moves them (a host without /dev/shm). */
function shmRoot(): string {
  return process.env.SKIFF_RAM_DIR ?? "/dev/shm";
}

export function ramDir(home: string): string {
  return join(shmRoot(), homeGroupName(home));
}

export function ramPath(home: string, vmId: string): string {
  return join(ramDir(home), `${vmId}.ram`);
}

/** An empty RAM file for a VM's next start (QEMU sizes it); an old one, of a run that ended, starts over. */
export async function createRamFile(home: string, vmId: string): Promise<string> {
  const path = ramPath(home, vmId);
  await rm(path, { force: true });
  for (let attempt = 0; ; attempt++) {
    await mkdir(ramDir(home), { recursive: true, mode: 0o700 });
    try {
      const file = await open(path, "wx", 0o600);
      await file.close();
      return path;
    } catch (err) {
      // The last VM's removal took the empty directory away between the two calls: make it again.
      if (errnoOf(err) !== "ENOENT" || attempt > 0) throw err;
    }
  }
}

/** The VM's RAM file, and the home's directory when it was the last (tmpfs entries are the host's, not the home's). */
export async function removeRamFile(home: string, vmId: string): Promise<void> {
  await rm(ramPath(home, vmId), { force: true });
  await rmdir(ramDir(home)).catch(() => undefined);
}

/** RAM files of VMs that no longer exist (a crash between a VM's removal and its RAM file's). */
export async function sweepRamFiles(home: string, hasVm: (id: string) => boolean): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(ramDir(home));
  } catch {
    return;
  }
  for (const entry of entries) {
    const match = /^([0-9a-f]+)\.ram$/.exec(entry);
    if (match !== null && !hasVm(match[1]!)) await rm(join(ramDir(home), entry), { force: true });
  }
}
