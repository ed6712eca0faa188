/**
 * The schema of a stored MachineSpec (inside a VM's config.json), checked
 * when the record is read back (src/store/schema.ts). MachineSpec itself
 * stays the documented interface of machine.ts; `schemaFor` makes the build
 * fail if the two drift apart. Keys added to MachineSpec after the first
 * release default here, so a config written by an older skiff reads as the
 * fully defaulted spec the rest of the code expects.
 */
import { z } from "zod/v4";
import { ipv4Schema, networkAttachmentSchema } from "../network/schema.js";
import { portSchema, schemaFor } from "../store/record.js";
import { namePattern } from "../util/names.js";
import type { MachineSpec } from "./machine.js";

const strings = z.array(z.string());
export const restartPolicySchema = z.enum(["no", "on-failure", "always", "unless-stopped"]);
const stringMap = z.record(z.string(), z.string());

export const portForwardSchema = z.object({
  protocol: z.enum(["tcp", "udp"]),
  hostAddress: z.string(),
  hostPort: portSchema,
  guestPort: portSchema,
});

const guestForward = z.object({
  guestAddress: ipv4Schema,
  guestPort: portSchema,
  hostAddress: z.string(),
  hostPort: portSchema,
});

export const networkSpecSchema = z.discriminatedUnion("mode", [
  z.object({ mode: z.literal("none") }),
  z.object({ mode: z.literal("user"), restrict: z.boolean(), forwards: z.array(portForwardSchema), guestForwards: z.array(guestForward).optional() }),
]);

const boot = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("microvm") }),
  z.object({
    kind: z.literal("cloud"),
    imagePath: z.string(),
    format: z.enum(["qcow2", "raw"]),
    diskBytes: z.number().int().positive().optional(),
    userDataPath: z.string().optional(),
    sshPort: portSchema,
    sshUser: z.string(),
  }),
]);

const bindMountSchema = z.object({ kind: z.literal("bind"), source: z.string(), target: z.string(), readOnly: z.boolean() });
const volumeMountSchema = z.object({ kind: z.literal("volume"), volume: z.string(), target: z.string(), readOnly: z.boolean() });

/** What a user may ask to mount (a clone is made by restore only). */
export const mountRequestSchema = z.discriminatedUnion("kind", [bindMountSchema, volumeMountSchema]);

export const mountSchema = z.discriminatedUnion("kind", [
  bindMountSchema,
  volumeMountSchema,
  z.object({ kind: z.literal("clone"), volume: z.string(), target: z.string(), readOnly: z.boolean() }),
]);

export const machineSpecSchema = schemaFor<MachineSpec>()(
  z.object({
    name: z.string().regex(namePattern, "expected a VM name"),
    image: z.string(),
    cpus: z.number().int().positive(),
    memoryMiB: z.number().int().positive(),
    hostname: z.string(),
    env: stringMap.default({}),
    entrypoint: strings.default([]),
    command: strings.default([]),
    user: z.string().optional(),
    workingDir: z.string().optional(),
    exposedPorts: strings.default([]),
    network: networkSpecSchema,
    networks: z.array(networkAttachmentSchema).optional(),
    dns: strings.optional(),
    autoRemove: z.boolean().default(false),
    labels: stringMap.default({}),
    boot: boot.optional(),
    mounts: z.array(mountSchema).optional(),
    kernel: z.object({ path: z.string().optional(), args: strings.optional() }).optional(),
    init: z.object({ restart: restartPolicySchema }).optional(),
    egress: z
      .object({
        policy: z.enum(["all", "deny", "allow"]),
        allow: z.array(z.object({ cidr: z.string(), port: portSchema.optional() })),
        hostLoopback: z.boolean(),
      })
      .optional(),
    restart: restartPolicySchema.optional(),
  }),
);
