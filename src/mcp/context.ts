/**
 * What every tool handler shares: the library, the policy, the project
 * (when the server was started with one), and the three steps each call
 * takes in order — resolve the VM (name, address or hostname), look up
 * its rule, check the tool against it — so that no handler can skip one.
 * Results carry structured content (its shape each tool's outputSchema,
 * results.ts) and a text rendering; every failure, a refusal included, is
 * a tool error (isError) with its code and hint.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { ZodTypeAny } from "zod";
import { isSkiffError, SkiffError } from "../pure.js";
import type { Skiff } from "../index.js";
import type { VmInfo } from "../index.js";
import type { Project } from "../project/project.js";
import { labels as projectLabels } from "../project/names.js";
import { checkTool, ruleFor, type McpPolicy, type Refusal, type VmRule } from "./policy.js";
import { orToolError, results } from "./results.js";
import { resolveTarget } from "./target.js";
import type { ToolName } from "./names.js";

export interface McpContext {
  skiff: Skiff;
  policy: McpPolicy;
  project: Project | undefined;
  /** vm_cp reads host files under this directory only. */
  root: string;
  version: string;
}

export interface TargetVm {
  vm: VmInfo;
  rule: VmRule;
}

export function refused(r: Refusal, details?: Record<string, unknown>): SkiffError {
  return new SkiffError("ERR_SKIFF_POLICY", r.reason, { hint: r.hint, ...(details === undefined ? {} : { details }) });
}

/** One VM by name, address or hostname, its rule, and the tool checked against it. */
export async function targetVm(ctx: McpContext, tool: ToolName, target: string): Promise<TargetVm> {
  const vm = resolveTarget(target, await ctx.skiff.list({ all: true }));
  const record = await ctx.skiff.store.get(vm.name);
  const labels = record.config.spec.labels;
  // A service's rule holds for the VMs of the server's own project only.
  const service = ctx.project !== undefined && labels[projectLabels.project] === ctx.project.spec.name ? labels[projectLabels.service] : undefined;
  const rule = ruleFor(ctx.policy, { name: vm.name, service });
  const refusal = checkTool(ctx.policy, tool, rule);
  if (refusal !== undefined) throw refused(refusal, { vm: vm.name });
  return { vm, rule };
}

/** A tool without a VM: the policy's defaults decide. */
export function checkGlobal(ctx: McpContext, tool: ToolName): void {
  const refusal = checkTool(ctx.policy, tool);
  if (refusal !== undefined) throw refused(refusal);
}

export function ok(data: Record<string, unknown>, text: string): CallToolResult {
  return { content: [{ type: "text", text }], structuredContent: data };
}

export function toolError(err: unknown): CallToolResult {
  const e = isSkiffError(err) ? err : new SkiffError("ERR_SKIFF_INTERNAL", err instanceof Error ? err.message : String(err));
  const error = { code: e.code, message: e.message, ...(e.hint === undefined ? {} : { hint: e.hint }), ...(e.place === undefined ? {} : { field: e.place }), ...(e.details === undefined ? {} : { details: e.details }) };
  return { content: [{ type: "text", text: `${e.code}: ${e.message}${e.hint === undefined ? "" : `\nhint: ${e.hint}`}` }], structuredContent: { error }, isError: true };
}

/**
 * Register `name` unless hide_tools hides it (then it is neither listed
 * nor callable: the SDK answers that no such tool exists). The handler
 * runs inside a catch that turns every failure into a tool error, and
 * checks hide_tools again itself, so hiding never rests on the listing.
 */
export function addTool<S extends ZodTypeAny>(
  server: McpServer,
  ctx: McpContext,
  name: ToolName,
  meta: { description: string; input: S; readOnly?: boolean },
  handler: (args: ReturnType<S["parse"]>) => Promise<CallToolResult>,
): void {
  if (ctx.policy.hideTools.has(name)) return;
  server.registerTool(
    name,
    { description: meta.description, inputSchema: meta.input, outputSchema: orToolError(results[name]), annotations: { readOnlyHint: meta.readOnly === true } },
    (async (args: unknown) => {
      try {
        if (ctx.policy.hideTools.has(name)) throw refused({ reason: `${name} is hidden by the policy (hide_tools)`, hint: "it cannot be called" });
        return await handler(args as ReturnType<S["parse"]>);
      } catch (err) {
        return toolError(err);
      }
    }) as never,
  );
}
