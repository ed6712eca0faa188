/**
 * Every tool `skiff mcp` serves, by Pontoon's names (its `pontoon mcp`)
 * plus skiff's sandbox tools. The policy checks names against this list, so
 * a typo in hide_tools or allow_tools is an error rather than a tool left
 * visible or a rule that never matches.
 */
export const vmTools = [
  "vm_helo",
  "vm_exec",
  "vm_exec_bg",
  "vm_tail",
  "vm_cp",
  "vm_bulk_exec",
  "vm_ps",
  "vm_pkill",
  "vm_logs",
  "vm_console_stream",
  "vm_restart",
  "vm_snapshot",
  "vm_fork",
  "sandbox_files_read",
  "sandbox_files_write",
  "sandbox_kill",
] as const;

/** Tools with no VM target: checked against the policy's defaults (top-level keys). */
export const globalTools = ["helo", "network_tcpdump", "topology_get", "range_up", "range_down", "range_status", "sandbox_create"] as const;

export const toolNames: readonly string[] = [...globalTools, ...vmTools];

export type ToolName = (typeof vmTools)[number] | (typeof globalTools)[number];

export function isToolName(name: string): name is ToolName {
  return toolNames.includes(name);
}
