/**
 * skiff mcp: the MCP server on stdio, for AI agents (Claude Code, any MCP
 * client). stdout is the protocol's channel: nothing else may write there,
 * so warnings and progress go to stderr. The server ends when its client
 * closes stdin.
 */
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { openProject, type ProjectFlags } from "../project-open.js";

interface McpFlags {
  policy?: string;
  file: string[];
  projectName?: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function registerMcp(program: Command, ctx: CliContext): void {
  program
    .command("mcp")
    .description("serve the MCP tools (Pontoon's vm_exec, range_up, …, and sandboxes) on stdio, under an access policy")
    .option("--policy <file>", "access policy (YAML shaped like skiff.yml's mcp: key, per-VM rules under vms:); replaces the project's")
    .option("-f, --file <path>", "the range's project file (default: found upward from here, if any)", collect, [])
    .option("-p, --project-name <name>", "project name (default: the project directory's name)")
    .action(async (flags: McpFlags) => {
      const { createMcpServer, loadPolicyFile, policyOfProject, serveStdio } = await import("../../mcp/index.js");
      const project = await openRange(ctx, { file: flags.file, ...(flags.projectName === undefined ? {} : { projectName: flags.projectName }) });
      const policy = flags.policy === undefined ? policyOfProject(project?.spec) : await loadPolicyFile(flags.policy);
      for (const w of policy.warnings) process.stderr.write(`skiff: warning: mcp policy: ${w}\n`);
      const server = createMcpServer(await ctx.skiff(), { policy, ...(project === undefined ? {} : { project }) });
      await serveStdio(server);
    });
}

/** The project given with -f, or found upward; none is fine (range_* then say how to give one). */
async function openRange(ctx: CliContext, flags: ProjectFlags) {
  try {
    return (await openProject(ctx, flags)).project;
  } catch (err) {
    if (flags.file.length === 0 && (err as { code?: string }).code === "ERR_SKIFF_PROJECT_NOT_FOUND") return undefined;
    throw err;
  }
}
