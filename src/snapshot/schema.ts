/**
 * The zod schema of snapshot.json (src/snapshot/store.ts reads it), apart
 * from the store so that listing snapshots loads zod only for a record that
 * has to be checked (src/store/record.ts says when).
 */
import * as z from "zod/v4/mini";
import { machineSpecSchema } from "../spec/schema.js";
import type { MachineSpec } from "../spec/machine.js";
import { isoTimeSchema } from "../store/record-schema.js";

/** What must be the same on the host that restores as on the one that captured. */
// zod/mini, as every record `ps` reads (src/store/record.ts says why).
export const versionsSchema = z.object({
  format: z.number().check(z.int()),
  /** QEMU's `--version` first line: device state is only loadable by the QEMU that wrote it. */
  qemu: z.string(),
  /** The kernel file's path, size and mtime: the RAM holds a running kernel. */
  kernel: z.string(),
  /** skiff's version: the guest side in RAM speaks its protocol. */
  skiff: z.string(),
});
export type SnapshotVersions = z.infer<typeof versionsSchema>;

/** A named volume as captured (src/snapshot/volumes.ts): a read-only layer each restored VM clones. */
export const volumeLayerSchema = z.object({
  /** The named volume it was captured from (for a clone, the volume its snapshot captured). */
  volume: z.string(),
  target: z.string(),
  readOnly: z.boolean(),
  /** The layer's file in the snapshot's directory. */
  file: z.string().check(z.regex(/^volume-\d+\.(raw|qcow2)$/)),
  format: z.enum(["raw", "qcow2"]),
  /** Bytes on disk (the copy is sparse). */
  bytes: z.number(),
});
export type VolumeLayer = z.infer<typeof volumeLayerSchema>;

export const snapshotRecordSchema = z.object({
  id: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
  name: z.optional(z.string()),
  /** user: `snapshot create`; fork: made by `fork`; boot: an image's boot snapshot. */
  kind: z.enum(["user", "fork", "boot"]),
  createdAt: isoTimeSchema,
  source: z.object({ id: z.string(), name: z.string() }),
  /** The source VM's spec at capture: a restore is the same machine with a new name, addresses and ports. */
  spec: machineSpecSchema,
  image: z.object({ digest: z.string(), basePath: z.string() }),
  kernelPath: z.string(),
  /** The kernel's release (`uname -r`) as the source VM's record had it; absent in snapshots made before it was kept. */
  kernelVersion: z.optional(z.string()),
  versions: versionsSchema,
  /** Bytes on disk (sparse files count what they hold); `volumes`: all the volume layers together. */
  sizes: z.object({ mem: z.number(), state: z.number(), disk: z.number(), volumes: z.optional(z.number()) }),
  /** The named volumes the VM had attached, in mount order; each restored VM gets a private clone of each. */
  volumes: z.optional(z.array(volumeLayerSchema)),
  /** Boot snapshots: the key of the inputs they were made from. */
  bootKey: z.optional(z.string()),
});
export type SnapshotRecord = Omit<z.infer<typeof snapshotRecordSchema>, "spec"> & { spec: MachineSpec };
