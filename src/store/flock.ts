/**
 * flock(2) from the small addon in flock.c: Node has no flock API. The
 * build compiles it into dist/store/flock.node; it is loaded on first use,
 * so importing the lock module costs nothing and an unbuilt checkout fails
 * with the fix rather than at import.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { getSystemErrorName } from "node:util";
import { SkiffError } from "../errors.js";
import { packageRoot } from "../util/package-root.js";

interface FlockAddon {
  /** 0, or -errno. */
  flock(fd: number, operation: number): number;
  LOCK_EX: number;
  LOCK_NB: number;
  LOCK_UN: number;
  EWOULDBLOCK: number;
}

let loaded: FlockAddon | undefined;

function addon(): FlockAddon {
  if (loaded !== undefined) return loaded;
  // Under the package root whether this runs from src/store (tests), dist/store or the bundled CLI.
  const addonPath = join(packageRoot(), "dist", "store", "flock.node");
  const hint = "run `./setup.sh` (or `npm run build`; it needs gcc and Node's headers)";
  if (!existsSync(addonPath)) {
    throw new SkiffError("ERR_SKIFF_TOOL_MISSING", `skiff's flock addon is not built: ${addonPath} (ENOENT)`, { hint });
  }
  try {
    loaded = createRequire(import.meta.url)(addonPath) as FlockAddon;
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_TOOL_MISSING", `cannot load skiff's flock addon ${addonPath}: ${(err as Error).message}`, { hint, cause: err });
  }
  return loaded;
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
