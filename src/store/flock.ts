/**
 * flock(2) from the small addon in flock.c: Node has no flock API. The
 * build compiles it into dist/store/flock.node (util/addon.ts loads it).
 */
import { getSystemErrorName } from "node:util";
import { loadAddon } from "../util/addon.js";

interface FlockAddon {
  /** 0, or -errno. */
  flock(fd: number, operation: number): number;
  LOCK_EX: number;
  LOCK_NB: number;
  LOCK_UN: number;
  EWOULDBLOCK: number;
}

function addon(): FlockAddon {
  return loadAddon<FlockAddon>("store/flock.node", "flock");
}

/** Take the exclusive lock of `fd`'s open file description without waiting: false if another holds it. */
export function lockExclusive(fd: number): boolean {
  const { flock, LOCK_EX, LOCK_NB, EWOULDBLOCK } = addon();
  const rc = flock(fd, LOCK_EX | LOCK_NB);
  if (rc === -EWOULDBLOCK) return false;
  check(rc);
  return true;
}

/** Drop the lock of `fd` (closing it would too). */
export function unlock(fd: number): void {
  const { flock, LOCK_UN } = addon();
  check(flock(fd, LOCK_UN));
}

function check(rc: number): void {
  if (rc === 0) return;
  const code = getSystemErrorName(rc);
  throw Object.assign(new Error(`flock: ${code}`), { code, errno: rc, syscall: "flock" });
}
