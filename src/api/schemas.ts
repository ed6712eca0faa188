/**
 * The API's bodies, one zod schema each: the server validates with them,
 * the OpenAPI document is generated from them, and the client's types come
 * from them. Requests are strict (an unknown field is an error naming it,
 * as the library's own door does); responses describe what the library
 * returns and let newer fields through.
 *
 * zod here is @hono/zod-openapi's (zod 3 with `.openapi()`); the library's
 * own schemas are zod/v4 and stay behind its door, which checks again.
 */
import { z } from "@hono/zod-openapi";
import { errorCodes, type ErrorCode } from "../pure.js";

const codes = Object.keys(errorCodes) as [ErrorCode, ...ErrorCode[]];

export const errorBodySchema = z
  .object({
    code: z.enum(codes),
    message: z.string(),
    hint: z.string().optional(),
    field: z.string().optional().openapi({ description: "the input the error is about: a body field, a parameter, a VM name" }),
    details: z.record(z.unknown()).optional(),
  })
  .openapi("Error");

const stringMap = z.record(z.string());
const strings = z.array(z.string());

export const portForwardSchema = z
  .object({
    protocol: z.enum(["tcp", "udp"]),
    hostAddress: z.string(),
    hostPort: z.number().int().min(1).max(65535),
    guestPort: z.number().int().min(1).max(65535),
  })
  .strict()
  .openapi("PortForward");

export const createVmSchema = z
  .object({
    image: z.string().min(1).openapi({ example: "base" }),
    name: z.string().optional(),
    hostname: z.string().optional(),
    cpus: z.number().int().min(1).optional(),
    memory: z.union([z.number().positive(), z.string().min(1)]).optional().openapi({ description: "MiB, or a size such as 512m or 1g", example: "256m" }),
    env: stringMap.optional(),
    command: strings.optional(),
    entrypoint: strings.optional(),
    user: z.string().optional(),
    workingDir: z.string().optional(),
    platform: z.string().optional(),
    pull: z.enum(["missing", "always", "never"]).optional(),
    network: z
      .discriminatedUnion("mode", [
        z.object({ mode: z.literal("none") }).strict(),
        z.object({ mode: z.literal("user"), restrict: z.boolean().optional(), forwards: z.array(portForwardSchema).optional(), guestForwards: z.array(z.any().openapi({ type: "object" })).optional() }).strict(),
      ])
      .optional(),
    networks: z.array(z.object({ network: z.string().min(1), ip: z.string().optional(), gateway: z.string().optional() }).strict()).optional(),
    dns: strings.optional(),
    autoRemove: z.boolean().optional(),
    labels: stringMap.optional(),
    restart: z.enum(["no", "on-failure", "always", "unless-stopped"]).optional(),
    // The rest of the library's CreateOptions, so a remote `skiff run`/`create` sends what it would pass in process.
    // Nested shapes are checked by the library (create-options.ts), whose errors name the field. Paths are the server's.
    memoryMiB: z.number().int().positive().optional(),
    imageUrl: z.string().optional().openapi({ description: "a cloud image (qcow2/raw) by URL or path on the server's host" }),
    disk: z.union([z.number().positive(), z.string().min(1)]).optional(),
    diskBytes: z.number().int().positive().optional(),
    sshUser: z.string().optional(),
    userDataPath: z.string().optional(),
    mounts: z.array(z.any().openapi({ type: "object" })).optional().openapi({ description: "bind mounts (paths on the server's host) and named volumes, as CreateOptions.mounts" }),
    kernel: z.object({ path: z.string().optional(), args: strings.optional() }).strict().optional(),
    init: z.any().optional().openapi({ type: "object" }),
    egress: z.any().optional().openapi({ type: "object" }),
  })
  .strict()
  .openapi("CreateVm");
export type CreateVmBody = z.infer<typeof createVmSchema>;

/**
 * POST /vms/run: create (or restore `from`) + start + the main command, as
 * Skiff.run. `argv` is the command (in place of the image's, or the
 * snapshot VM's); `rm` is autoRemove as `skiff run --rm` spells it.
 */
export const runVmSchema = createVmSchema
  .extend({
    image: z.string().min(1).optional().openapi({ description: "the image to boot; not with from", example: "base" }),
    argv: strings.optional().openapi({ description: "the command to run (default: the image's entrypoint and command)", example: ["uname", "-r"] }),
    detach: z.boolean().optional().openapi({ description: "leave the VM running, its command started in the background; the reply is the VM" }),
    rm: z.boolean().optional().openapi({ description: "remove the VM when its command ends (as autoRemove)" }),
    from: z.string().min(1).optional().openapi({ description: "start from this snapshot (name or id) instead of booting an image" }),
    cold: z.boolean().optional(),
  })
  .strict()
  .openapi("RunVm");
export type RunVmBody = z.infer<typeof runVmSchema>;

export const startVmSchema = z
  .object({
    waitReady: z.boolean().optional(),
    timeoutMs: z.number().int().positive().optional(),
    cold: z.boolean().optional(),
  })
  .strict()
  .openapi("StartVm");
export type StartVmBody = z.infer<typeof startVmSchema>;

export const stopVmSchema = z
  .object({ timeoutMs: z.number().int().min(0).optional(), hibernate: z.boolean().optional() })
  .strict()
  .openapi("StopVm");
export type StopVmBody = z.infer<typeof stopVmSchema>;

export const killVmSchema = z
  .object({ signal: z.number().int().min(1).max(64).optional().openapi({ description: "signal number for QEMU (default 9)" }) })
  .strict()
  .openapi("KillVm");

export const timeoutVmSchema = z
  .object({ timeoutMs: z.number().int().min(0).openapi({ description: "remove the VM this long from now (0: never)" }) })
  .strict()
  .openapi("TimeoutVm");

export const ptySchema = z
  .object({ cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000), term: z.string().optional() })
  .strict()
  .openapi("Pty");

const execRequestFields = {
  argv: z.array(z.string()).min(1).openapi({ example: ["uname", "-a"] }),
  env: stringMap.optional(),
  user: z.string().optional(),
  cwd: z.string().optional(),
};

export const execSchema = z
  .object({
    ...execRequestFields,
    input: z.string().optional().openapi({ description: "written to the command's stdin, which is then closed" }),
    timeoutMs: z.number().int().positive().optional(),
  })
  .strict()
  .openapi("Exec");
export type ExecBody = z.infer<typeof execSchema>;

export const execResultSchema = z
  .object({ code: z.number().int(), signal: z.string().optional(), stdout: z.string(), stderr: z.string() })
  .openapi("ExecResult");

/** The first frame of an exec WebSocket (exec-protocol.ts). */
export const execStartSchema = z
  .object({
    type: z.literal("start"),
    ...execRequestFields,
    argv: z.array(z.string()).openapi({ description: "the command; empty: a login shell" }),
    tty: z.union([z.boolean(), ptySchema]).optional(),
    timeoutMs: z.number().int().positive().optional(),
  })
  .strict();

export const snapshotCreateSchema = z.object({ name: z.string().min(1).optional() }).strict().openapi("SnapshotCreate");

export const restoreSchema = z
  .object({
    name: z.string().optional(),
    hostname: z.string().optional(),
    forwards: z.array(portForwardSchema).optional(),
    autoRemove: z.boolean().optional(),
    labels: stringMap.optional(),
  })
  .strict()
  .openapi("Restore");
export type RestoreBody = z.infer<typeof restoreSchema>;

export const forkSchema = z
  .object({ count: z.number().int().min(1).max(64).optional(), prefix: z.string().optional(), labels: stringMap.optional() })
  .strict()
  .openapi("Fork");

export const volumeCreateSchema = z
  .object({ name: z.string().min(1), sizeBytes: z.number().int().positive().optional(), labels: stringMap.optional() })
  .strict()
  .openapi("VolumeCreate");

export const networkCreateSchema = z
  .object({
    name: z.string().min(1),
    driver: z.enum(["private", "bridge", "link"]).optional(),
    subnet: z.string().optional(),
    gateway: z.string().optional(),
    masquerade: z.boolean().optional(),
    internal: z.boolean().optional(),
    bridgeName: z.string().optional(),
    labels: stringMap.optional(),
  })
  .strict()
  .openapi("NetworkCreate");

export const imagePullSchema = z
  .object({ ref: z.string().min(1).openapi({ example: "alpine:3.20" }), platform: z.string().optional() })
  .strict()
  .openapi("ImagePull");

// Responses: what the library returns, described for the document and the client's types; new fields pass.

export const vmInfoSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    image: z.string(),
    imageDigest: z.string().optional(),
    state: z.string().openapi({ example: "running" }),
    pauseReason: z.string().optional(),
    pid: z.number().int().optional(),
    cpus: z.number().int(),
    memoryMiB: z.number().int(),
    kernel: z.object({ version: z.string(), path: z.string() }).optional(),
    hostname: z.string(),
    createdAt: z.string(),
    startedAt: z.string().optional(),
    ports: strings,
    interfaces: z.array(z.record(z.unknown())),
    env: stringMap,
    command: strings,
    autoRemove: z.boolean(),
    snapshot: z.string().optional(),
    consoleLog: z.string(),
  })
  .passthrough()
  .openapi("VmInfo");

export const snapshotInfoSchema = z
  .object({
    id: z.string(),
    name: z.string().optional(),
    kind: z.string(),
    source: z.string(),
    image: z.string(),
    createdAt: z.string(),
    memoryMiB: z.number(),
    cpus: z.number(),
    usedBy: strings,
    pausedMs: z.number().optional(),
  })
  .passthrough()
  .openapi("SnapshotInfo");

export const volumeInfoSchema = z
  .object({ name: z.string(), sizeBytes: z.number(), diskPath: z.string(), usedBy: z.array(z.record(z.unknown())) })
  .passthrough()
  .openapi("VolumeInfo");

export const networkInfoSchema = z
  .object({ name: z.string(), driver: z.string(), subnet: z.string(), members: z.array(z.record(z.unknown())) })
  .passthrough()
  .openapi("NetworkInfo");

export const imageInfoSchema = z
  .object({ digest: z.string(), name: z.string().optional(), kind: z.string(), refs: strings, usedBy: strings })
  .passthrough()
  .openapi("ImageInfo");

export const runResultSchema = z
  .object({
    vm: vmInfoSchema,
    code: z.number().int().optional().openapi({ description: "foreground: the command's exit code" }),
    signal: z.string().optional(),
    stdout: z.string().optional(),
    stderr: z.string().optional(),
  })
  .openapi("RunResult");

export const okSchema = z.object({ ok: z.literal(true) }).openapi("Ok");
