/**
 * The schema of a stored MachineSpec (inside a VM's config.json), checked
 * when the record is read back (src/store/schema.ts). MachineSpec itself
 * stays the documented interface of machine.ts; `schemaFor` makes the build
 * fail if the two drift apart. Keys added to MachineSpec after the first
 * release default here, so a config written by an older skiff reads as the
 * fully defaulted spec the rest of the code expects. Built with zod/mini,
 * as every record `ps` reads (src/store/record.ts says why).
 */
import * as z from "zod/v4/mini";
import { ipv4Schema, networkAttachmentSchema } from "../network/schema.js";
import { portSchema, schemaFor } from "../store/record-schema.js";
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
  z.object({ mode: z.literal("user"), restrict: z.boolean(), forwards: z.array(portForwardSchema), guestForwards: z.optional(z.array(guestForward)) }),
]);

const boot = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("microvm") }),
  z.object({
    kind: z.literal("cloud"),
    imagePath: z.string(),
    format: z.enum(["qcow2", "raw"]),
    diskBytes: z.optional(z.number().check(z.int(), z.positive())),
    userDataPath: z.optional(z.string()),
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
    name: z.string().check(z.regex(namePattern, "expected a VM name")),
    image: z.string(),
    cpus: z.number().check(z.int(), z.positive()),
    memoryMiB: z.number().check(z.int(), z.positive()),
    hostname: z.string(),
    env: z._default(stringMap, {}),
    entrypoint: z._default(strings, []),
    command: z._default(strings, []),
    user: z.optional(z.string()),
    workingDir: z.optional(z.string()),
    exposedPorts: z._default(strings, []),
    network: networkSpecSchema,
    networks: z.optional(z.array(networkAttachmentSchema)),
    dns: z.optional(strings),
    autoRemove: z._default(z.boolean(), false),
    labels: z._default(stringMap, {}),
    boot: z.optional(boot),
    mounts: z.optional(z.array(mountSchema)),
    kernel: z.optional(z.object({ path: z.optional(z.string()), args: z.optional(strings) })),
    init: z.optional(z.object({ restart: restartPolicySchema })),
    egress: z.optional(
      z.object({
        policy: z.enum(["all", "deny", "allow"]),
        allow: z.array(z.object({ cidr: z.string(), port: z.optional(portSchema) })),
        hostLoopback: z.boolean(),
      }),
    ),
    restart: z.optional(restartPolicySchema),
  }),
);
