/**
 * A /proc file read whole into one scratch buffer. Node's readFileSync
 * cannot size a /proc file (stat says 0 bytes), so it allocates a fresh
 * 64 KiB buffer for every one it reads: reading the host's process table
 * (stat and status of each of ~100 processes, several times per `run`)
 * made ~30 MB of garbage a command, and a profile of `skiff run --rm`
 * showed 20 ms allocating it and 48 ms of garbage collection. The files
 * are small (a stat line, a status page, a command line), so one buffer,
 * grown when a file fills it, serves them all.
 */
import { closeSync, openSync, readSync } from "node:fs";

let scratch = Buffer.allocUnsafe(8 * 1024);

/** The text of `path` (throws as openSync and readSync do: a process gone meanwhile is ENOENT or ESRCH). */
export function readProcFile(path: string, encoding: "latin1" | "utf8" = "latin1"): string {
  const fd = openSync(path, "r");
  try {
    let length = 0;
    for (;;) {
      if (length === scratch.length) {
        const bigger = Buffer.allocUnsafe(scratch.length * 2);
        scratch.copy(bigger, 0, 0, length);
        scratch = bigger;
      }
      const n = readSync(fd, scratch, length, scratch.length - length, null);
      if (n === 0) break;
      length += n;
    }
    return scratch.toString(encoding, 0, length);
  } finally {
    closeSync(fd);
  }
}
