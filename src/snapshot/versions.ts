/**
 * What a memory snapshot depends on besides itself: the QEMU that wrote its
 * device state, the kernel running in its RAM and the skiff whose guest
 * side is in it. A restore on a host where any differs is refused, naming
 * which, rather than a guest that crashes after loading.
 */
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { skiffInitPath } from "../guest/tools.js";
import { SkiffError } from "../errors.js";
import { qemuVersion } from "../qemu/accel.js";
import { skiffVersion } from "../util/package-root.js";
import { cachedProbe } from "../util/probe-cache.js";
import { snapshotFormat, type SnapshotVersions } from "./store.js";

/** The versions on this host for a guest that boots `kernelPath`; `cacheDir` keeps what hashing skiff-init found. */
export async function hostVersions(qemuBinary: string, kernelPath: string, cacheDir: string): Promise<SnapshotVersions> {
  // Asked once per process (qemu/accel.ts): the host's facts asked it first, through the cache.
  return { format: snapshotFormat, qemu: (await qemuVersion(qemuBinary)).version, kernel: kernelStamp(kernelPath), skiff: await guestSide(cacheDir) };
}

let guest: Promise<string> | undefined;

/**
 * skiff's version and its guest init's build: the guest side in a snapshot's RAM must speak this skiff's protocol.
 * The hash of skiff-init (~7 ms, on the way of every run from a boot snapshot) is kept in the cache while the file
 * is unchanged (util/probe-cache.ts), as the host's other facts are.
 */
function guestSide(cacheDir: string): Promise<string> {
  const path = skiffInitPath();
  const hash = async (): Promise<string> => createHash("sha256").update(await readFile(path)).digest("hex").slice(0, 12);
  guest ??= cachedProbe(cacheDir, "skiff-init", [path], hash, (c): c is string => typeof c === "string" && /^[0-9a-f]{12}$/.test(c)).then(
    (build) => `${skiffVersion()}+${build}`,
    (err: unknown) => {
      guest = undefined;
      throw err;
    },
  );
  return guest;
}

function kernelStamp(path: string): string {
  try {
    const st = statSync(path);
    return `${path}@${st.size}:${Math.round(st.mtimeMs)}`;
  } catch {
    return `${path}@missing`;
  }
}

/** The first of the versions that differs between a snapshot and this host, or undefined: it can be restored here. */
export function versionMismatch(saved: SnapshotVersions, here: SnapshotVersions): keyof SnapshotVersions | undefined {
  return (["format", "qemu", "kernel", "skiff"] as const).find((key) => saved[key] !== here[key]);
}

/** Refuse a restore whose snapshot was made by another QEMU, kernel, skiff or snapshot format. */
export function checkVersions(what: string, saved: SnapshotVersions, here: SnapshotVersions, hint: string): void {
  const names: Record<keyof SnapshotVersions, string> = { format: "snapshot format", qemu: "QEMU", kernel: "guest kernel", skiff: "skiff" };
  const key = versionMismatch(saved, here);
  if (key === undefined) return;
  throw new SkiffError("ERR_SKIFF_SNAPSHOT_MISMATCH", `${what} was made with another ${names[key]} (${saved[key]}; this host has ${here[key]})`, {
    hint,
    details: { mismatch: key, saved: saved[key], host: here[key] },
  });
}
