/**
 * The records of a VM's directory as zod schemas, checked whenever they are
 * read back (record.ts says why unknown keys are accepted): config.json
 * (what the VM is), state.json (what cannot be observed later) and the
 * creating.json marker. VmConfig and VmState are derived from them; the
 * MachineSpec inside config.json has its own schema (src/spec/schema.ts).
 * Built with zod/mini, as every record `ps` reads (src/store/record.ts says why).
 */
import * as z from "zod/v4/mini";
import type { ProcessIdentity } from "../process/pid.js";
import type { MachineSpec } from "../spec/machine.js";
import { machineSpecSchema, portForwardSchema } from "../spec/schema.js";
import { isoTimeSchema, schemaFor } from "./record-schema.js";

export const processIdentitySchema = schemaFor<ProcessIdentity>()(
  z.object({ pid: z.number().check(z.int(), z.positive()), startTime: z.number().check(z.int(), z.nonnegative()) }),
);

/** Resolved at create time, so re-tagging an image never changes an existing VM's disk. */
const imageRecordSchema = z.object({
  /** Content digest of the read-only base the overlay is backed by. */
  digest: z.string(),
  basePath: z.optional(z.string()),
});
export type ImageRecord = z.infer<typeof imageRecordSchema>;

const kernelRecordSchema = z.object({ version: z.string(), path: z.string() });
export type KernelRecord = z.infer<typeof kernelRecordSchema>;

/**
 * A VM restored from a snapshot: its overlay is backed by the snapshot's
 * disk, which is backed by the image base; each of its volume clones (spec
 * mounts of kind "clone") by the snapshot's layer of that volume, by target.
 */
const snapshotRefSchema = z.object({
  id: z.string(),
  disk: z.string(),
  volumes: z.optional(z.array(z.object({ target: z.string(), layer: z.string(), format: z.enum(["raw", "qcow2"]) }))),
});
export type SnapshotRef = z.infer<typeof snapshotRefSchema>;

/** config.json: what the VM is. */
export const vmConfigSchema = z.object({
  schemaVersion: z.literal(1),
  id: z.string(),
  createdAt: isoTimeSchema,
  spec: machineSpecSchema,
  image: z.optional(imageRecordSchema),
  kernel: z.optional(kernelRecordSchema),
  snapshot: z.optional(snapshotRefSchema),
  /** Facts other modules want kept with the VM, not interpreted by the store. */
  meta: z.optional(z.record(z.string(), z.unknown())),
  /** The unprivileged user and group its QEMU runs as (src/jail/claims.ts); absent when skiff runs without root. */
  jail: z.optional(z.object({ uid: z.number().check(z.int(), z.positive()), gid: z.number().check(z.int(), z.positive()) })),
});
export type JailIds = NonNullable<z.infer<typeof vmConfigSchema>["jail"]>;
/** The spec keeps its documented type (the schema yields exactly a MachineSpec). */
export type VmConfig = Omit<z.infer<typeof vmConfigSchema>, "spec"> & { spec: MachineSpec };

/** How the last run ended, as observed by whoever saw it end. */
const exitRecordSchema = z.object({
  at: isoTimeSchema,
  code: z.optional(z.nullable(z.number().check(z.int()))),
  signal: z.optional(z.nullable(z.string())),
  /** e.g. "stopped", "crashed", "guest-poweroff", "killed". */
  reason: z.optional(z.string()),
});
export type ExitRecord = z.infer<typeof exitRecordSchema>;

/**
 * state.json: last known facts. Never the truth about whether the VM runs;
 * that comes from the pidfile and QMP. These guard against pid reuse and
 * remember what cannot be observed later (exit info, who is attached).
 */
export const vmStateSchema = z.object({
  /** ISO 8601 of the last start. */
  startedAt: z.optional(isoTimeSchema),
  /** QEMU's pid and /proc starttime, so a reused pid is not mistaken for it. */
  qemu: z.optional(processIdentitySchema),
  accel: z.optional(z.enum(["kvm", "tcg"])),
  exit: z.optional(exitRecordSchema),
  /** The foreground `skiff run` attached to this VM, if any. */
  owner: z.optional(processIdentitySchema),
  /** Forwards added to the running VM (`skiff port-forward`); dropped at the next start. */
  forwards: z.optional(z.array(portForwardSchema)),
  /** Projects: when the service's provisioners last ran to the end on this VM (ISO 8601); absent: never. */
  provisionedAt: z.optional(isoTimeSchema),
  /**
   * Projects: the last `up` did not bring this VM up to the end (its start,
   * routing, provisioning or healthcheck failed, or `up` was killed): the
   * next `up` starts it again instead of calling it up to date.
   */
  upFailed: z.optional(z.object({ at: isoTimeSchema, reason: z.string() })),
  /** `skiff pause`: when the guest's CPUs (and clock) stopped; unpause corrects the clock after a long pause (src/snapshot/clock.ts). */
  pausedAt: z.optional(isoTimeSchema),
  /**
   * `stop --hibernate`: the guest's memory and device state were saved in
   * the VM's hibernate/ directory when its QEMU ended; the next start
   * resumes from them (src/snapshot/hibernate.ts) unless told --cold.
   */
  hibernated: z.optional(z.object({ at: isoTimeSchema, qemu: z.string(), kernel: z.string(), skiff: z.string(), format: z.number().check(z.int()) })),
});
export type VmState = z.infer<typeof vmStateSchema>;

/** creating.json: who is creating the VM, so a crash half-way is told from a creation in progress. */
export const creatingMarkerSchema = z.object({ creator: processIdentitySchema, at: isoTimeSchema });
export type CreatingMarker = z.infer<typeof creatingMarkerSchema>;
