/**
 * The MCP tools' outputSchema (src/mcp/results.ts), through the official
 * SDK's Client in process on a skiff home without VMs: every tool lists
 * one, and real results (a success, a tool error) validate against the
 * schema as listed, with the SDK's own JSON Schema validator; a result
 * missing a field, or with one of the wrong type, does not.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Skiff } from "../../src/index.js";
import { createMcpServer } from "../../src/mcp/index.js";
import { toolNames } from "../../src/mcp/names.js";

const home = mkdtempSync(join(tmpdir(), "mcp-results-"));
const client = new Client({ name: "skiff-test", version: "1" });
const server = createMcpServer(new Skiff({ home, cacheDir: join(home, "cache") }), { root: home });
let tools: Tool[];

const validate = (tool: string, data: unknown) => {
  const schema = tools.find((t) => t.name === tool)?.outputSchema;
  expect(schema, `${tool} lists an outputSchema`).toBeDefined();
  return new AjvJsonSchemaValidator().getValidator(schema as never)(data);
};

beforeAll(async () => {
  const [a, b] = InMemoryTransport.createLinkedPair();
  await Promise.all([server.connect(b), client.connect(a)]);
  tools = (await client.listTools()).tools;
});
afterAll(async () => {
  await client.close();
  await server.close();
  rmSync(home, { recursive: true, force: true });
});

describe("MCP outputSchema", () => {
  it("is listed for every tool: an object admitting the result or a tool error", () => {
    expect(tools.map((t) => t.name).sort()).toEqual([...toolNames].sort());
    for (const t of tools) {
      expect(t.outputSchema?.type, t.name).toBe("object");
      expect(Object.keys(t.outputSchema?.properties ?? {}), t.name).toContain("error");
      expect((t.outputSchema as { anyOf?: unknown[] }).anyOf, t.name).toEqual([{ required: expect.any(Array) }, { required: ["error"] }]);
    }
    expect((tools.find((t) => t.name === "vm_exec")!.outputSchema as { anyOf: { required: string[] }[] }).anyOf[0]!.required.sort()).toEqual(["code", "stderr", "stdout", "truncated", "vm"]);
  });

  it("validates a real result, and refuses one missing a field or with a field of the wrong type", async () => {
    const r = await client.callTool({ name: "helo", arguments: {} });
    expect(r.isError).not.toBe(true);
    const data = r.structuredContent as Record<string, unknown>;
    expect(data.vms).toEqual([]);
    expect(validate("helo", data)).toMatchObject({ valid: true });
    const { tools: _tools, ...missing } = data;
    expect(validate("helo", missing).valid).toBe(false);
    expect(validate("helo", { ...data, version: 1 }).valid).toBe(false);
    expect(validate("helo", { ...data, extra: true }).valid).toBe(false);

    const topo = await client.callTool({ name: "topology_get", arguments: {} });
    expect(topo.isError).not.toBe(true);
    expect(validate("topology_get", topo.structuredContent)).toMatchObject({ valid: true });
  });

  it("validates a tool error too (clients check an error's structuredContent against the schema)", async () => {
    const r = await client.callTool({ name: "vm_exec", arguments: { vm: "nope", argv: ["true"] } });
    expect(r.isError).toBe(true);
    const err = (r.structuredContent as { error: { code: string } }).error;
    expect(err.code).toBe("ERR_SKIFF_VM_NOT_FOUND");
    expect(validate("vm_exec", r.structuredContent)).toMatchObject({ valid: true });
    expect(validate("vm_exec", { error: { message: "no code" } }).valid).toBe(false);
  });
});
