/**
 * What skiff-init takes (guest/skiff-init.h), and the checks that refuse
 * more on the host, with the field and the limit named, before anything is
 * made. The guest refuses more too rather than cut it, but by then a VM
 * exists or a boot has failed; the golden tests
 * (test/unit/guest-golden*.test.ts) keep these numbers equal to the C's.
 */
import { SkiffError } from "../errors.js";
import type { NetworkSpec } from "../spec/machine.js";

export const guestLimits = {
  /** Arguments of one exec request (MAX_REQUEST_ARGS). */
  args: 1023,
  /** Environment variables of one exec request (MAX_REQUEST_ENV); the VM's own environment has no such limit. */
  env: 255,
  /** Bytes of a request's user[:group] (MAX_REQUEST_USER). */
  user: 127,
  /** NICs: user networking's eth0 and the named networks (MAX_NICS). */
  nics: 16,
  /** Shares and volumes mounted in the guest (MAX_MOUNTS; create allows maxMounts of engine/volumes.ts, fewer). */
  mounts: 16,
  /** virtio-serial agent ports init serves (MAX_PORTS). */
  agentPorts: 16,
  /** Bytes of a new identity's payload (MAX_IDENTITY_HEX / 2): its /etc/hosts is most of it. */
  identityBytes: 16384,
} as const;

/** What a VM is created with that reaches the guest (CreateOptions' fields of the same names). */
export interface GuestInput {
  env?: Record<string, string>;
  network?: Pick<NetworkSpec, "mode">;
  networks?: readonly { place?: string }[];
}

/** Refuse, before anything is made, what skiff-init could not take of a VM's options. */
export function checkGuestInput(input: GuestInput): void {
  for (const [key, value] of Object.entries(input.env ?? {})) checkEnvVar(key, value, "env");
  const networks = input.networks ?? [];
  const nics = networks.length + (input.network === undefined || input.network.mode === "user" ? 1 : 0);
  const why = `too many networks: ${nics} NICs (user networking counts as one)`;
  refuseOver("nics", nics, why, networks[0]?.place ?? "networks", "join fewer networks, or use no user networking (network mode none)");
  // Mounts: checkMountRequests (engine/volumes.ts) allows fewer than the guest takes.
}

/**
 * The counts of a VM's guest config, checked again as its initrd is
 * written: a VM recorded before these limits were checked at create fails
 * to start with this error rather than booting with less than it asked for.
 */
export function checkGuestCounts(counts: { nics: number; mounts: number; agentPorts: number }): void {
  for (const what of ["nics", "mounts", "agentPorts"] as const) {
    refuseOver(what, counts[what], `the VM has ${counts[what]} ${what}, more than skiff-init takes`, what, "make the VM again with fewer");
  }
}

function refuseOver(what: "nics" | "mounts" | "agentPorts", count: number, message: string, place: string, remedy: string): void {
  if (count <= guestLimits[what]) return;
  throw new SkiffError("ERR_SKIFF_USAGE", message, { place, hint: `a VM has at most ${guestLimits[what]} ${what} (skiff-init's limit): ${remedy}` });
}

/** A variable the guest's environment can hold: a name without '=' or NUL, a value without NUL (newlines are fine). */
export function checkEnvVar(key: string, value: string, place: string): void {
  if (!/^[^=\0]+$/.test(key)) {
    throw new SkiffError("ERR_SKIFF_BAD_ENV", `invalid environment variable name: ${JSON.stringify(key)}`, {
      place,
      hint: "a name is non-empty and has no '=' or NUL",
    });
  }
  if (value.includes("\0")) {
    throw new SkiffError("ERR_SKIFF_BAD_ENV", `environment variable ${key} contains a NUL byte: ${JSON.stringify(value)}`, {
      place,
      hint: "a value cannot hold NUL bytes (C strings end there); encode binary data, e.g. as base64",
    });
  }
}

