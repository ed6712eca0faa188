/**
 * One copy of a snapshot's RAM that several VMs map privately
 * (copy-on-write): `fork -n N` restores N VMs from one snapshot, and each
 * used to get an 80 MiB copy of its RAM on /dev/shm. With this, the N
 * share the pages none of them has written; what each writes is its own
 * (anonymous memory in its QEMU). Measured in docs/benchmarks.md
 * ("Snapshots", goal 4).
 *
 * The copy is a memfd sealed against every change (memfd.c says why QEMU
 * 7.2 needs the seals: it opens the file read-write even to map it
 * privately). Each QEMU gets the descriptor through its jail (--ram-fd)
 * and maps /proc/self/fd/N with share=off; the memfd lives as long as one
 * of them does, and nothing of it is left on disk or in /dev/shm.
 *
 * The price: a VM whose RAM is private has no RAM file to copy, so a
 * snapshot or hibernation of it streams its RAM through QEMU's migration
 * (capture.ts: ramInStream), slower and with the guest paused longer.
 * That is why only `fork` of two clones or more maps RAM this way;
 * `restore`, `run --from`, a single fork and boot snapshots copy it.
 */
import { closeSync } from "node:fs";
import { getSystemErrorName } from "node:util";
import { SkiffError } from "../errors.js";
import { loadAddon } from "../util/addon.js";

interface MemfdAddon {
  /** A sealed memfd holding `path`'s content (close-on-exec), or -errno. */
  sealedCopy(path: string, name: string): number;
}

function addon(): MemfdAddon {
  return loadAddon<MemfdAddon>("snapshot/memfd.node", "memfd");
}

/** A sealed copy of a RAM file, held open until `close` (the QEMUs that map it keep their own). */
export interface SharedRam {
  readonly fd: number;
  close(): void;
}

/** Copy `memFile` (sparse: holes stay holes) into a sealed memfd. */
export function sharedRamFrom(memFile: string, what: string): SharedRam {
  const fd = addon().sealedCopy(memFile, "skiff-ram");
  if (fd < 0) {
    const code = getSystemErrorName(fd);
    throw new SkiffError("ERR_SKIFF_RESTORE_FAILED", `cannot load the RAM of ${what} into memory: ${code}`, {
      hint: code === "ENOMEM" || code === "ENOSPC" ? "the host is short of memory; remove VMs or fork fewer" : `check ${memFile}`,
      cause: Object.assign(new Error(`memfd: ${code}`), { code, errno: fd }),
    });
  }
  let open = true;
  return {
    fd,
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

/** The descriptor number QEMU finds the shared RAM at: above the TAPs' 3–10 (network/nics.ts), below the jailer's 100+. */
export const ramFdInQemu = 11;
