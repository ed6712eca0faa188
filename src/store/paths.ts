/**
 * Where skiff keeps its state. One home per user (or /var/lib/skiff for
 * root), XDG for users, and an environment override so tests and odd hosts
 * can move everything at once.
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { SkiffError } from "../errors.js";
import { longestVmFileName } from "./vmdir.js";

export interface SkiffPaths {
  home: string;
  /** Kernels, images, initramfs pieces, probe verdicts: shared, rebuildable. */
  cache: string;
  /** One directory per VM, named by its id. */
  vms: string;
}

export interface PathEnv {
  env?: NodeJS.ProcessEnv;
  /** Effective uid; root gets the system-wide home. */
  uid?: number;
  /** The user's home directory, for the XDG fallback. */
  userHome?: string;
}

/** Length of a VM id: 12 hex chars (48 random bits) keeps socket paths short. */
export const vmIdLength = 12;

/**
 * Longest socket path we allow. sun_path is 108 bytes; the kernel (and
 * QEMU) would take all 108 without a terminating NUL, but clients that copy
 * the path as a C string (socat, OpenSSH's ProxyCommand users) need the NUL.
 */
export const maxSocketPathBytes = 107;

export function skiffHome(opts: PathEnv = {}): string {
  const env = opts.env ?? process.env;
  if (env.SKIFF_HOME) return resolve(env.SKIFF_HOME);
  const uid = opts.uid ?? process.getuid?.() ?? -1;
  if (uid === 0) return "/var/lib/skiff";
  // XDG says a relative XDG_DATA_HOME is invalid and must be ignored.
  const xdg = env.XDG_DATA_HOME;
  if (xdg && xdg.startsWith("/")) return join(xdg, "skiff");
  return join(opts.userHome ?? homedir(), ".local", "share", "skiff");
}

export function skiffPaths(opts: PathEnv = {}): SkiffPaths {
  const env = opts.env ?? process.env;
  const home = skiffHome(opts);
  return {
    home,
    cache: env.SKIFF_CACHE ? resolve(env.SKIFF_CACHE) : defaultCache(home, opts),
    vms: vmsDir(home),
  };
}

/**
 * Caches are rebuildable, so XDG puts them apart from data ($XDG_CACHE_HOME,
 * ~/.cache), where backups skip them. Root keeps /var/lib/skiff/cache, and an
 * explicit SKIFF_HOME keeps its cache inside it: moving the home moves
 * everything, as tests and odd hosts expect.
 */
function defaultCache(home: string, opts: PathEnv): string {
  const env = opts.env ?? process.env;
  const uid = opts.uid ?? process.getuid?.() ?? -1;
  if (env.SKIFF_HOME || uid === 0) return join(home, "cache");
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && xdg.startsWith("/")) return join(xdg, "skiff");
  return join(opts.userHome ?? homedir(), ".cache", "skiff");
}

export function vmsDir(home: string): string {
  return join(home, "vms");
}

/** Records this build has checked, by their bytes (store/checked.ts). */
export function checkedDir(home: string): string {
  return join(home, "checked");
}

/**
 * Whether VM `id` has its directory in `vms` now: made (`<id>`) or being
 * made (`.tmp-<id>`, which its create renames to `<id>`). The temporary name
 * is looked at first: whenever the rename falls, one of the two looks sees
 * the directory; the other order can miss it between the looks, and a VM
 * that lives then counted as gone (its jail uid handed out again, its QEMU
 * ended as a stray).
 */
export function vmDirPresent(vms: string, id: string, exists: (path: string) => boolean = existsSync): boolean {
  return exists(join(vms, `.tmp-${id}`)) || exists(join(vms, id));
}

/** Where network records are (network/store.ts); reconcile looks for it without loading that store. */
export function networksDir(home: string): string {
  return join(home, "networks");
}

/** The longest socket path any VM under `home` will bind. */
export function longestSocketPath(home: string): string {
  return join(vmsDir(home), "x".repeat(vmIdLength), longestVmFileName());
}

/**
 * Fail early, with a fix, when a VM's sockets would not fit in sun_path:
 * QEMU would otherwise fail later with an obscure bind error.
 */
export function checkSocketPathLength(home: string): void {
  const path = longestSocketPath(home);
  const bytes = Buffer.byteLength(path);
  if (bytes <= maxSocketPathBytes) return;
  throw new SkiffError(
    "ERR_SKIFF_PATH_TOO_LONG",
    `skiff home is too deep for unix sockets: ${path} is ${bytes} bytes, the limit is ${maxSocketPathBytes}`,
    {
      hint: `set SKIFF_HOME to a shorter directory (at most ${maxSocketPathBytes - (bytes - Buffer.byteLength(home))} bytes), e.g. SKIFF_HOME=$HOME/.skiff`,
      details: { home, socketPath: path, bytes, limit: maxSocketPathBytes },
    },
  );
}
