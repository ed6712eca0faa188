/**
 * The library's door: `skiff.create(opts)` checks its options with a strict
 * schema, since JavaScript callers (and TypeScript ones with `as any`) can
 * pass anything. An unknown key is an error naming the closest known one
 * (`memroy` → memory) instead of being ignored, and memory and disk take the
 * CLI's units: a number of MiB or a string such as "512m" or "1g".
 */
import { z } from "zod/v4";
import { SkiffError } from "../errors.js";
import { mountRequestSchema, networkSpecSchema, restartPolicySchema } from "../spec/schema.js";
import { schemaFor } from "../store/record-schema.js";
import { closest } from "../util/closest.js";
import { checkMemoryMiB, parseDiskSize, parseMemory } from "../util/units.js";
import type { CreateOptions } from "./create.js";

const strings = z.array(z.string());
const stringMap = z.record(z.string(), z.string());
/** A number of MiB, or a size with a unit as the CLI takes it. */
const size = z.union([z.number().positive(), z.string().min(1)]);

// schemaFor: the build fails if CreateOptions gains a key this schema lacks.
const createOptionsSchema = schemaFor<CreateOptions>()(
  z.strictObject({
    image: z.string().min(1),
    name: z.string().optional(),
    hostname: z.string().optional(),
    cpus: z.number().int().min(1).optional(),
    memory: size.optional(),
    memoryMiB: z.number().int().positive().optional(),
    env: stringMap.optional(),
    command: strings.optional(),
    entrypoint: strings.optional(),
    user: z.string().optional(),
    workingDir: z.string().optional(),
    platform: z.string().optional(),
    pull: z.enum(["missing", "always", "never"]).optional(),
    network: z.optional(networkSpecSchema),
    networks: z.array(z.strictObject({ network: z.string().min(1), ip: z.string().optional(), gateway: z.string().optional(), place: z.string().optional() })).optional(),
    dns: strings.optional(),
    autoRemove: z.boolean().optional(),
    labels: stringMap.optional(),
    imageUrl: z.string().optional(),
    disk: size.optional(),
    diskBytes: z.number().int().positive().optional(),
    sshUser: z.string().optional(),
    userDataPath: z.string().optional(),
    mounts: z.array(z.intersection(mountRequestSchema, z.object({ place: z.string().optional(), create: z.boolean().optional() }))).optional(),
    kernel: z.strictObject({ path: z.string().optional(), args: strings.optional() }).optional(),
    init: z.strictObject({ restart: restartPolicySchema }).optional(),
    egress: z
      .strictObject({
        policy: z.enum(["all", "deny", "allow"]).optional(),
        allow: strings.optional(),
        hostLoopback: z.boolean().optional(),
        place: z.string().optional(),
      })
      .optional(),
    restart: z.optional(restartPolicySchema),
    attach: z.boolean().optional(),
  }),
);

const knownKeys = Object.keys(createOptionsSchema.shape);

function pathOf(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").replace(/^\./, "");
}

/** The first problem zod found, as the usage error a user can act on. */
function usageError(error: z.ZodError): SkiffError {
  const issue = error.issues[0]!;
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    const place = pathOf([...issue.path, key]);
    const near = issue.path.length === 0 ? closest(key, knownKeys) : undefined;
    return new SkiffError("ERR_SKIFF_USAGE", `create: unknown option ${place}`, {
      place,
      hint: near === undefined ? `known options: ${knownKeys.join(", ")}` : `did you mean ${near}?`,
      details: { unknown: issue.keys },
    });
  }
  const place = pathOf(issue.path) || "options";
  return new SkiffError("ERR_SKIFF_USAGE", `create: invalid ${place}: ${issue.message}`, { place, details: { issues: error.issues } });
}

/**
 * Checked options with memory and disk in the engine's units (memoryMiB,
 * diskBytes). Giving both spellings of one size is refused.
 */
export function checkCreateOptions(input: unknown): CreateOptions {
  const parsed = createOptionsSchema.safeParse(input);
  if (!parsed.success) throw usageError(parsed.error);
  const { memory, disk, ...rest } = parsed.data;
  const opts: CreateOptions = rest;
  if (memory !== undefined) {
    if (rest.memoryMiB !== undefined) throw new SkiffError("ERR_SKIFF_USAGE", "create: give memory or memoryMiB, not both", { place: "memory" });
    opts.memoryMiB = typeof memory === "number" ? checkMemoryMiB(memory, "memory") : parseMemory(memory, "memory");
  }
  if (disk !== undefined) {
    if (rest.diskBytes !== undefined) throw new SkiffError("ERR_SKIFF_USAGE", "create: give disk or diskBytes, not both", { place: "disk" });
    opts.diskBytes = typeof disk === "number" ? Math.round(disk * 2 ** 20) : parseDiskSize(disk, "disk");
  }
  return opts;
}
