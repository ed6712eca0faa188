/**
 * The library's door: `skiff.create(opts)` checks its options with a strict
 * schema, since JavaScript callers (and TypeScript ones with `as any`) can
 * pass anything. An unknown key is an error naming the closest known one
 * (`memroy` → memory) instead of being ignored, and memory and disk take the
 * CLI's units: a number of MiB or a string such as "512m" or "1g".
 */
// zod/mini, as the records (src/store/record-schema.ts): `run` builds these schemas on every create, and classic zod's
// schema objects cost more to build and load (docs/benchmarks.md, "CLI start").
import * as z from "zod/v4/mini";
import { SkiffError } from "../errors.js";
import { mountRequestSchema, networkSpecSchema, restartPolicySchema } from "../spec/schema.js";
import { schemaFor } from "../store/record-schema.js";
import { closest } from "../util/closest.js";
import { checkMemoryMiB, parseDiskSize, parseMemory } from "../util/units.js";
import type { CreateOptions } from "./create.js";

const strings = z.array(z.string());
const stringMap = z.record(z.string(), z.string());
/** A number of MiB, or a size with a unit as the CLI takes it. */
const size = z.union([z.number().check(z.positive()), z.string().check(z.minLength(1))]);

// schemaFor: the build fails if CreateOptions gains a key this schema lacks.
const createOptionsSchema = schemaFor<CreateOptions>()(
  z.strictObject({
    image: z.string().check(z.minLength(1)),
    name: z.optional(z.string()),
    hostname: z.optional(z.string()),
    cpus: z.optional(z.number().check(z.int(), z.gte(1))),
    memory: z.optional(size),
    memoryMiB: z.optional(z.number().check(z.int(), z.positive())),
    env: z.optional(stringMap),
    command: z.optional(strings),
    entrypoint: z.optional(strings),
    user: z.optional(z.string()),
    workingDir: z.optional(z.string()),
    platform: z.optional(z.string()),
    pull: z.optional(z.enum(["missing", "always", "never"])),
    network: z.optional(networkSpecSchema),
    networks: z.optional(z.array(z.strictObject({ network: z.string().check(z.minLength(1)), ip: z.optional(z.string()), gateway: z.optional(z.string()), place: z.optional(z.string()) }))),
    dns: z.optional(strings),
    autoRemove: z.optional(z.boolean()),
    labels: z.optional(stringMap),
    imageUrl: z.optional(z.string()),
    disk: z.optional(size),
    diskBytes: z.optional(z.number().check(z.int(), z.positive())),
    sshUser: z.optional(z.string()),
    userDataPath: z.optional(z.string()),
    mounts: z.optional(z.array(z.intersection(mountRequestSchema, z.object({ place: z.optional(z.string()), create: z.optional(z.boolean()) })))),
    kernel: z.optional(z.strictObject({ path: z.optional(z.string()), args: z.optional(strings) })),
    init: z.optional(z.strictObject({ restart: restartPolicySchema })),
    egress: z.optional(
      z.strictObject({
        policy: z.optional(z.enum(["all", "deny", "allow"])),
        allow: z.optional(strings),
        hostLoopback: z.optional(z.boolean()),
        place: z.optional(z.string()),
      }),
    ),
    restart: z.optional(restartPolicySchema),
    attach: z.optional(z.boolean()),
  }),
);

const knownKeys = Object.keys(createOptionsSchema._zod.def.shape);

function pathOf(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").replace(/^\./, "");
}

/** The first problem zod found, as the usage error a user can act on. */
function usageError(error: z.core.$ZodError): SkiffError {
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
  const parsed = z.safeParse(createOptionsSchema, input);
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
