/**
 * Who a VM's QEMU runs as. With root, every VM gets a user and group of its
 * own (Firecracker's jailer takes --uid/--gid per microVM): a QEMU taken
 * over by its guest can then touch its own VM's files and nothing of another
 * VM's. All jail users share one supplementary group that may read the
 * shared, read-only inputs (image bases, kernels); nothing else has it.
 *
 * The ids come from a block that no account on the host uses (checked
 * against /etc/passwd and /etc/group when one is handed out), by default
 * 1,600,000,000 and up; SKIFF_JAIL_ID_BASE moves it. Without root there is
 * no other user to become: QEMU runs as the caller, in a user namespace.
 */
import { readFileSync } from "node:fs";
import { chmod, chown } from "node:fs/promises";
import { SkiffError } from "../errors.js";
export type { JailIds } from "../store/vmdir.js";

export const defaultJailIdBase = 1_600_000_000;
/** VMs the host can have jailed at once (slots 1…maxSlots; slot 0 is the shared group); claims.ts hands them out. */
export const maxJailSlots = 65_535;

/** How this process jails QEMU: as other users (root), in a user namespace (anyone else), or not at all. */
export type JailMode = "root" | "rootless" | "off";

export function jailMode(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? -1): JailMode {
  // Only for measuring what the jail costs (bench/) and for debugging QEMU itself.
  if (env.SKIFF_JAIL === "off") return "off";
  return uid === 0 ? "root" : "rootless";
}

export function jailIdBase(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.SKIFF_JAIL_ID_BASE;
  if (text === undefined || text === "") return defaultJailIdBase;
  const base = Number(text);
  if (!Number.isInteger(base) || base < 65_536 || base + maxJailSlots > 4_294_967_294) {
    throw new SkiffError("ERR_SKIFF_USAGE", `SKIFF_JAIL_ID_BASE is not a usable id: ${JSON.stringify(text)}`, {
      place: "SKIFF_JAIL_ID_BASE",
      hint: `give a whole number from 65536 to ${4_294_967_294 - maxJailSlots}, the first of ${maxJailSlots + 1} ids no account uses`,
    });
  }
  return base;
}

/** The group every jail user has, which may read image bases and kernels. */
export function sharedJailGid(base = jailIdBase()): number {
  return base;
}

/** Ids that accounts in /etc/passwd and /etc/group already have: never handed to a jail. */
export function hostAccountIds(passwd = readOr("/etc/passwd"), group = readOr("/etc/group")): Set<number> {
  const ids = new Set<number>();
  for (const line of passwd.split("\n")) addField(ids, line, 2);
  for (const line of group.split("\n")) addField(ids, line, 2);
  return ids;
}

function addField(ids: Set<number>, line: string, index: number): void {
  const field = line.split(":")[index];
  if (field !== undefined && /^\d+$/.test(field)) ids.add(Number(field));
}

function readOr(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/**
 * A finished read-only input (an image base, a cloud image): nobody may
 * write it, and only skiff's user and (as root) the jail group may read it.
 * Privately pulled images stay private on a shared host.
 */
export async function sealSharedInput(path: string): Promise<void> {
  if (process.getuid?.() === 0) {
    await chown(path, 0, sharedJailGid());
    await chmod(path, 0o440);
  } else {
    await chmod(path, 0o400);
  }
}
