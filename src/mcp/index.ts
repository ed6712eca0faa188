/** skiff's MCP server: what `skiff mcp` serves on stdio and the HTTP server (`serve`) mounts at /mcp. */
export { createMcpServer, type McpServerOptions } from "./server.js";
export { loadPolicyFile, policyOfProject } from "./load.js";
export { parsePolicy, projectPolicy, emptyPolicy, type McpPolicy, type VmRule } from "./policy.js";
export { toolNames } from "./names.js";
export { serveStdio } from "./stdio.js";
