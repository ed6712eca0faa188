/**
 * What each tool's structuredContent looks like: its MCP `outputSchema`
 * (spec 2025-06-18), so that clients can validate results. Written with
 * zod 4 (zod/v4), whose JSON Schema output carries `.meta()` keys: a
 * tool's schema admits its result or a tool error (`{ error: { code,
 * message, hint?, field?, details? } }`, context.ts), as an `anyOf` over
 * the required keys, because clients (the official SDK's Client among
 * them) validate an error's structuredContent against the schema too.
 */
import { z } from "zod/v4";
import type { ToolName } from "./names.js";

const nic = z.object({ nic: z.string(), network: z.string(), address: z.string() });

/** vmSummary (tools-vm.ts). */
const vmSummaryShape = {
  name: z.string(),
  state: z.string(),
  image: z.string(),
  hostname: z.string(),
  addresses: z.array(nic),
  memoryMiB: z.number(),
  cpus: z.number(),
};
const vmSummary = z.object(vmSummaryShape);

/** CommandResult (exec.ts). */
const commandResult = z.object({
  vm: z.string(),
  code: z.number().int(),
  signal: z.string().optional(),
  stdout: z.string(),
  stderr: z.string(),
  truncated: z.boolean(),
});

/** SnapshotInfo (the REST API's schema has all of it): what an agent needs to restore it; the rest may change. */
const snapshotInfo = z.looseObject({ id: z.string(), name: z.string().optional(), kind: z.string(), source: z.string(), pausedMs: z.number().optional() });

export type ResultSchema = z.ZodObject<Record<string, z.ZodType>>;

const vmText = z.object({ vm: z.string(), text: z.string() });
const strings = z.array(z.string());

/** Each tool's result, by name: addTool (context.ts) lists it, with the error, as the outputSchema. */
export const results = {
  helo: z.object({ server: z.string(), version: z.string(), project: z.string().nullable(), tools: strings, vms: strings }),
  vm_helo: z.object({ ...vmSummaryShape, answers: z.boolean(), answerMs: z.number().nullable() }),
  vm_logs: vmText,
  vm_console_stream: z.object({ vm: z.string(), durationS: z.number(), bytes: z.number().int(), text: z.string() }),
  vm_restart: vmSummary,
  vm_exec: commandResult,
  vm_exec_bg: z.object({ vm: z.string(), pid: z.number().int(), log: z.string() }),
  vm_tail: z.object({ vm: z.string(), log: z.string(), text: z.string() }),
  vm_bulk_exec: z.object({ results: z.array(commandResult) }),
  vm_ps: z.object({ vm: z.string(), processes: z.array(z.object({ pid: z.number().int(), user: z.string(), command: z.string() })) }),
  vm_pkill: z.object({ vm: z.string(), signal: z.string(), pids: z.array(z.number().int()), signalled: z.boolean(), stderr: z.string().optional() }),
  topology_get: z.object({
    project: z.string().nullable(),
    services: z.array(z.object({ name: z.string(), replicas: z.number().int(), networks: strings, dependsOn: strings })).optional(),
    networks: z.array(z.object({ name: z.string(), driver: z.string(), subnet: z.string(), members: z.array(z.object({ vm: z.string(), ip: z.string() })) })),
    vms: z.array(vmSummary),
  }),
  range_status: z.object({ project: z.string(), vms: z.array(z.object({ service: z.string(), ...vmSummaryShape, health: z.enum(["healthy", "unhealthy"]).optional() })) }),
  range_up: z.object({ vms: z.array(z.object({ name: z.string(), service: z.string(), action: z.string() })) }),
  range_down: z.object({ vms: strings, networks: strings, volumes: strings, images: strings }),
  network_tcpdump: z.object({
    network: z.string(),
    driver: z.enum(["private", "link", "bridge"]),
    packets: strings,
    /** Frames taken from the network before the filter, and those let go because tcpdump did not keep up. */
    frames: z.number().int(),
    dropped: z.number().int(),
    ended: z.enum(["count", "stopped", "source"]),
  }),
  sandbox_create: vmSummary,
  sandbox_files_read: z.object({ vm: z.string(), path: z.string(), encoding: z.enum(["utf8", "base64"]), content: z.string(), truncated: z.boolean() }),
  sandbox_files_write: z.object({ vm: z.string(), path: z.string(), bytes: z.number().int() }),
  vm_cp: z.object({ vm: z.string(), src: z.string(), dst: z.string(), bytes: z.number().int() }),
  sandbox_kill: z.object({ vm: z.string(), removed: z.boolean() }),
  vm_snapshot: z.object({ vm: z.string(), snapshot: snapshotInfo }),
  vm_fork: z.object({ vm: z.string(), clones: z.array(vmSummary) }),
} satisfies Record<ToolName, ResultSchema>;

const toolError = z.object({
  code: z.string(),
  message: z.string(),
  hint: z.string().optional(),
  field: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});

/**
 * `result`'s fields (each optional, so zod on the server checks their
 * types) plus `error`, and in the JSON Schema an `anyOf`: every field
 * `result` requires, or `error`.
 */
export function orToolError(result: ResultSchema): z.ZodObject {
  const required = Object.entries(result.shape)
    .filter(([, s]) => !s.safeParse(undefined).success)
    .map(([k]) => k);
  const optional = Object.fromEntries(Object.entries(result.shape).map(([k, s]) => [k, s.optional()]));
  return z.object({ ...optional, error: toolError.optional() }).meta({ anyOf: [{ required }, { required: ["error"] }] });
}
