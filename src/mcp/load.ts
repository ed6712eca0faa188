/**
 * Where the policy comes from: `skiff mcp --policy FILE` (YAML shaped like
 * the `mcp:` key, per-VM rules under `vms:`), or else the project's own
 * `mcp:` keys (skiff.yml: top-level `mcp`, `defaults.mcp`, a service's
 * `mcp`; pontoon.yml the same). A policy file replaces the project's: one
 * file says what the server allows.
 */
import { readFile } from "node:fs/promises";
import { parse } from "yaml";
import { SkiffError, errnoOf } from "../pure.js";
import type { ProjectSpec } from "../project/types.js";
import { emptyPolicy, parsePolicy, projectPolicy, type McpPolicy } from "./policy.js";

export async function loadPolicyFile(path: string): Promise<McpPolicy> {
  const text = await readFile(path, "utf8").catch((err: unknown) => {
    throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `cannot read the policy file ${path} (${errnoOf(err) ?? String(err)})`, { place: "policy", cause: err });
  });
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_CONFIG", `${path}: not YAML: ${err instanceof Error ? err.message : String(err)}`, { place: path, hint: "a policy file is YAML shaped like the mcp: key (docs/cli.md, \"MCP server\")" });
  }
  return parsePolicy(raw, path);
}

export function policyOfProject(spec: ProjectSpec | undefined): McpPolicy {
  if (spec === undefined) return emptyPolicy;
  const services = new Map(spec.services.map((s) => [s.name, s.mcp] as const));
  return projectPolicy(spec.mcp, services, spec.files[0] ?? spec.name);
}
