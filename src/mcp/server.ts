/**
 * `createMcpServer(skiff, options)`: skiff's MCP server on the official
 * SDK, with every tool registered under the policy. The caller connects
 * a transport: `skiff mcp` stdio (src/cli/commands/mcp.ts), the HTTP server (`serve`) over
 * Streamable HTTP at /mcp. It never writes to stdout itself: on stdio,
 * stdout is the protocol's channel.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Skiff } from "../index.js";
import type { Project } from "../project/project.js";
import { skiffVersion } from "../pure.js";
import type { McpContext } from "./context.js";
import { emptyPolicy, type McpPolicy } from "./policy.js";
import { registerExecTools } from "./tools-exec.js";
import { registerRangeTools } from "./tools-range.js";
import { registerSandboxTools } from "./tools-sandbox.js";
import { registerVmTools } from "./tools-vm.js";

export interface McpServerOptions {
  /** The access policy (default: none, every tool on every VM). */
  policy?: McpPolicy;
  /** The range: range_* and topology_get work on it, and its services' `mcp` rules apply to its VMs. */
  project?: Project;
  /** vm_cp reads host files under this directory only (default: the project's directory, else the working directory). */
  root?: string;
}

export function createMcpServer(skiff: Skiff, options: McpServerOptions = {}): McpServer {
  const version = skiffVersion();
  const ctx: McpContext = {
    skiff,
    policy: options.policy ?? emptyPolicy,
    project: options.project,
    root: options.root ?? options.project?.spec.dir ?? process.cwd(),
    version,
  };
  const server = new McpServer({ name: "skiff", version }, { capabilities: { tools: {} } });
  registerVmTools(server, ctx);
  registerExecTools(server, ctx);
  registerSandboxTools(server, ctx);
  registerRangeTools(server, ctx);
  return server;
}
