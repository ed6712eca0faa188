/**
 * `skiff mcp` through the official SDK's Client over stdio, the way an
 * agent host starts it: the built CLI with a policy file, against real
 * VMs (as few as can show every tool: one VM under a strict per-VM rule,
 * one sandbox the server makes, one clone of it; a one-VM project for the
 * range tools). Checks that the listing honours hide_tools, that every
 * tool works on a VM, and that bypass attempts die in the real server.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliPath, Harness } from "./harness.js";

interface ToolResult {
  isError?: boolean;
  structuredContent?: Record<string, unknown>;
  content: { type: string; text?: string }[];
}

const policy = `
hide_tools: [network_tcpdump, helo]
vms:
  locked:
    allow_tools: [vm_exec, vm_exec_bg, vm_tail, vm_helo, vm_bulk_exec, sandbox_files_read]
    allow_binaries: [ls, id, cat]
    deny_root: true
`;

const project = `
name: mcprange
services:
  solo:
    image: base
    mcp:
      allow_tools: [vm_exec]
      deny_root: true
`;

/** `skiff mcp` as an agent host starts it; in the harness's network namespace when it has one. */
async function open(h: Harness, args: string[], cwd: string): Promise<Client> {
  const client = new Client({ name: "skiff-test", version: "1" });
  const argv = [process.execPath, cliPath, "mcp", ...args];
  const [command, ...rest] = h.netns === undefined ? argv : ["ip", "netns", "exec", h.netns, ...argv];
  await client.connect(new StdioClientTransport({ command: command!, args: rest, env: h.env, cwd, stderr: "inherit" }));
  return client;
}

describe("skiff mcp over stdio", () => {
  const h = new Harness();
  const dir = mkdtempSync(join(tmpdir(), "skiff-mcp-"));
  let client: Client;
  const call = async (name: string, args: Record<string, unknown> = {}) => (await client.callTool({ name, arguments: args })) as ToolResult;
  const okCall = async (name: string, args: Record<string, unknown> = {}) => {
    const r = await call(name, args);
    expect(r.isError, `${name}: ${r.content[0]?.text}`).not.toBe(true);
    return r.structuredContent as Record<string, any>;
  };
  const refusedCall = async (name: string, args: Record<string, unknown>, reason: RegExp, code = "ERR_SKIFF_POLICY") => {
    const r = await call(name, args);
    expect(r.isError, `${name} ${JSON.stringify(args)} ran: ${r.content[0]?.text}`).toBe(true);
    const err = (r.structuredContent as { error?: { code: string; message: string; hint?: string } } | undefined)?.error;
    expect(err?.code).toBe(code);
    expect(err?.message).toMatch(reason);
    return err;
  };

  beforeAll(async () => {
    writeFileSync(join(dir, "policy.yml"), policy);
    writeFileSync(join(dir, "hello.txt"), "from the host\n");
    await h.ok(["run", "-d", "--name", "locked", "base"]);
    // A symlink named like an allowed program, pointing at one that is not (planted as root, outside the server).
    await h.ok(["exec", "locked", "ln", "-s", "/dev/.skiff/bin/skiff-kill", "/tmp/ls"]);
    client = await open(h, ["--policy", join(dir, "policy.yml")], dir);
  }, 180_000);
  afterAll(async () => {
    await client?.close();
    await h.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lists every tool but the hidden ones, and refuses a hidden one called anyway", async () => {
    const tools = (await client.listTools()).tools;
    // Listed, each outputSchema is checked by the SDK's Client against every later result here (it throws on a mismatch).
    expect(tools.filter((t) => t.outputSchema?.type !== "object").map((t) => t.name)).toEqual([]);
    const names = tools.map((t) => t.name);
    expect(names).toContain("vm_exec");
    expect(names).toContain("sandbox_create");
    expect(names).not.toContain("network_tcpdump");
    expect(names).not.toContain("helo");
    const r = await call("helo");
    expect(r.isError).toBe(true);
    expect(r.content[0]?.text).toMatch(/not found/);
  });

  it("runs the locked VM's allowed program as a non-root user, addressed by name", async () => {
    const r = await okCall("vm_exec", { vm: "locked", argv: ["id", "-u"], user: "user" });
    expect(r.stdout.trim()).toBe("1000");
    expect(r.code).toBe(0);
  });

  it("refuses bypass attempts end to end, with the reason", async () => {
    const vm = "locked";
    await refusedCall("vm_exec", { vm, command: "id" }, /sh is not in this VM's allow_binaries/);
    await refusedCall("vm_exec", { vm, argv: ["sh", "-c", "id"], user: "user" }, /sh is not in/);
    await refusedCall("vm_exec", { vm, argv: ["busybox", "sh"], user: "user" }, /busybox is not in/);
    await refusedCall("vm_exec", { vm, argv: ["/bin/../bin/sh"], user: "user" }, /unnormalised path/);
    await refusedCall("vm_exec", { vm, argv: ["ls"], user: "root" }, /root/);
    await refusedCall("vm_exec", { vm, argv: ["ls"], user: "0:0" }, /root/);
    await refusedCall("vm_exec", { vm, argv: ["id"], user: "4294967296" }, /32-bit id/);
    await refusedCall("vm_exec", { vm, argv: ["ls"] }, /no user given/);
    await refusedCall("vm_exec", { vm, argv: ["/tmp/ls"], user: "user" }, /\/tmp\/ls resolves to \/dev\/.skiff\/bin\/skiff-\S+ in the guest, not a program named ls/);
    await refusedCall("vm_exec_bg", { vm, argv: ["sh"], user: "user", log_tag: "x" }, /sh is not in/);
    await refusedCall("vm_ps", { vm }, /vm_ps is not in this VM's allow_tools/);
    await refusedCall("sandbox_create", { name: "locked" }, /governed by another rule/);
  });

  it("makes a sandbox and drives it with every per-VM tool", async () => {
    const sb = await okCall("sandbox_create", { name: "sb" });
    expect(sb.state).toBe("running");
    const helo = await okCall("vm_helo", { vm: "sb" });
    expect(helo.answers).toBe(true);
    // The same VM by its hostname.
    expect((await okCall("vm_exec", { vm: helo.hostname, command: "echo hi; echo err >&2; exit 3" })).stdout).toBe("hi\n");
    // Both VMs are 10.0.2.15 on user networking: an address two VMs share never picks one (nor dodges locked's rule).
    await refusedCall("vm_exec", { vm: "10.0.2.15", command: "id" }, /address or hostname of 2 VMs/, "ERR_SKIFF_VM_AMBIGUOUS");
    await okCall("sandbox_files_write", { vm: "sb", path: "/tmp/note", content: "written\n" });
    expect((await okCall("sandbox_files_read", { vm: "sb", path: "/tmp/note" })).content).toBe("written\n");
    await okCall("vm_cp", { vm: "sb", src: "hello.txt", dst: "/tmp/hello.txt" });
    expect((await okCall("vm_exec", { vm: "sb", argv: ["cat", "/tmp/hello.txt"] })).stdout).toBe("from the host\n");
    await refusedCall("vm_cp", { vm: "sb", src: "/etc/passwd", dst: "/tmp/p" }, /outside the server's directory/);
    const bg = await okCall("vm_exec_bg", { vm: "sb", command: "echo started; sleep 300", log_tag: "job" });
    expect(bg.pid).toBeGreaterThan(0);
    // It runs in the background: its first line may come a moment after vm_exec_bg answers.
    const tail = async () => (await call("vm_tail", { vm: "sb", log_tag: "job" })).structuredContent?.text as string | undefined;
    for (let i = 0; i < 50 && !(await tail())?.includes("started"); i++) await new Promise((r) => setTimeout(r, 100));
    expect(await tail()).toContain("started");
    expect((await okCall("vm_ps", { vm: "sb" })).processes.some((p: { command: string }) => p.command.includes("sleep 300"))).toBe(true);
    expect((await okCall("vm_pkill", { vm: "sb", pattern: "sleep 300", signal: "KILL" })).signalled).toBe(true);
    const sleeping = async () => (await okCall("vm_ps", { vm: "sb" })).processes.some((p: { command: string }) => p.command.includes("sleep 300"));
    for (let i = 0; i < 20 && (await sleeping()); i++) await new Promise((r) => setTimeout(r, 100));
    expect(await sleeping()).toBe(false);
    // The console's stream catches a line written inside its window; the log's tail then ends with it.
    const streaming = okCall("vm_console_stream", { vm: "sb", duration_s: 4 });
    await new Promise((r) => setTimeout(r, 1000));
    expect((await okCall("vm_exec", { vm: "sb", command: "echo mcp-console-marker > /dev/console" })).code).toBe(0);
    const streamed = await streaming;
    expect(streamed.text).toContain("mcp-console-marker");
    expect(streamed.bytes).toBeGreaterThanOrEqual("mcp-console-marker\n".length);
    const logged = await okCall("vm_logs", { vm: "sb", lines: 3 });
    expect(logged.text).toContain("mcp-console-marker");
    expect(logged.text.split("\n").length).toBeLessThanOrEqual(3);
    const snap = await okCall("vm_snapshot", { vm: "sb", name: "sb-snap" });
    expect(snap.snapshot.name).toBe("sb-snap");
    const fork = await okCall("vm_fork", { vm: "sb" });
    expect(fork.clones[0].name).toBe("sb-fork-1");
    expect((await okCall("vm_exec", { vm: "sb-fork-1", argv: ["cat", "/tmp/note"] })).stdout).toBe("written\n");
    const restarted = await okCall("vm_restart", { vm: "sb-fork-1" });
    expect(restarted.state).toBe("running");
    await okCall("sandbox_kill", { vm: "sb-fork-1" });
  }, 300_000);

  it("vm_bulk_exec checks each VM under its own rule: all or nothing", async () => {
    const none = await refusedCall("vm_bulk_exec", { vms: ["sb", "locked"], argv: ["touch", "/tmp/bulk"], user: "user" }, /nothing ran: locked: touch is not in/);
    expect((none?.details as { refusals: { vm: string }[] }).refusals.map((r) => r.vm)).toEqual(["locked"]);
    expect((await okCall("vm_exec", { vm: "sb", argv: ["ls", "/tmp/bulk"] })).code).not.toBe(0);
    const both = await okCall("vm_bulk_exec", { vms: ["sb", "locked"], argv: ["id", "-un"], user: "user" });
    expect(both.results.map((r: { stdout: string }) => r.stdout.trim())).toEqual(["user", "user"]);
    await okCall("sandbox_kill", { vm: "sb" });
  });

  it("drives a one-VM range from its project file, under the service's mcp rule", async () => {
    writeFileSync(join(dir, "skiff.yml"), project);
    const range = await open(h, ["-f", join(dir, "skiff.yml")], dir);
    const rcall = async (name: string, args: Record<string, unknown> = {}) => (await range.callTool({ name, arguments: args })) as ToolResult;
    try {
      // The Client validates results against the outputSchemas it has listed.
      await range.listTools();
      expect(((await rcall("helo")).structuredContent as any).project).toBe("mcprange");
      const up = await rcall("range_up");
      expect(up.isError, up.content[0]?.text).not.toBe(true);
      expect((up.structuredContent as any).vms[0].name).toBe("mcprange-solo-1");
      const status = (await rcall("range_status")).structuredContent as any;
      expect(status.vms[0].state).toBe("running");
      const topo = (await rcall("topology_get")).structuredContent as any;
      expect(topo.services[0].name).toBe("solo");
      expect((await rcall("vm_exec", { vm: "mcprange-solo-1", argv: ["id", "-u"], user: "nobody" })).structuredContent?.stdout).toBe("65534\n");
      const root = await rcall("vm_exec", { vm: "mcprange-solo-1", argv: ["id"] });
      expect((root.structuredContent as any).error.code).toBe("ERR_SKIFF_POLICY");
      expect(((await rcall("vm_ps", { vm: "mcprange-solo-1" })).structuredContent as any).error.message).toMatch(/not in this VM's allow_tools/);
      // A network that does not exist is a coded tool error.
      expect(((await rcall("network_tcpdump", { network: "nope" })).structuredContent as any).error.code).toBe("ERR_SKIFF_NETWORK_NOT_FOUND");
      const down = await rcall("range_down");
      expect((down.structuredContent as any).vms).toEqual(["mcprange-solo-1"]);
    } finally {
      await range.close();
    }
  }, 240_000);
});

describe("network_tcpdump through skiff mcp", () => {
  // A private network is a multicast segment: it and the server that joins it live in a namespace made here.
  const h = Harness.inNewNetns("skt-mcpcap");
  const dir = mkdtempSync(join(tmpdir(), "skiff-mcpcap-"));
  let client: Client | undefined;
  afterAll(async () => {
    await client?.close();
    await h.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("captures the pings between two VMs on a private network, and the result validates against the tool's outputSchema", async () => {
    await h.ok(["network", "create", "lan"]);
    await Promise.all(
      [
        ["a", "10.90.0.2"],
        ["b", "10.90.0.3"],
      ].map(([name, ip]) => h.ok(["run", "-d", "--name", name!, "--memory", "192m", "--network", "lan", "--ip", ip!, "base"])),
    );
    client = await open(h, [], dir);
    const listed = (await client.listTools()).tools.find((t) => t.name === "network_tcpdump");
    expect(listed?.outputSchema?.properties).toHaveProperty("packets");
    // The capture starts while the tool call is under way: ping for longer than it could take to start.
    const captured = client.callTool({ name: "network_tcpdump", arguments: { network: "lan", filter: "icmp", count: 4, duration_s: 60 } }) as Promise<ToolResult>;
    await h.ok(["exec", "a", "ping", "-c", "12", "-W", "5", "10.90.0.3"]);
    const r = await captured;
    expect(r.isError, r.content[0]?.text).not.toBe(true);
    const data = r.structuredContent as { network: string; driver: string; packets: string[]; ended: string };
    expect(data).toMatchObject({ network: "lan", driver: "private", ended: "count" });
    expect(data.packets).toHaveLength(4);
    expect(data.packets.join("\n")).toMatch(/IP 10\.90\.0\.2 > 10\.90\.0\.3: ICMP echo request/);
    expect(data.packets.join("\n")).toMatch(/IP 10\.90\.0\.3 > 10\.90\.0\.2: ICMP echo reply/);
    expect(new AjvJsonSchemaValidator().getValidator(listed!.outputSchema as never)(data)).toMatchObject({ valid: true });
    // A bad filter is a tool error with its code, which validates against the schema as well.
    const bad = (await client.callTool({ name: "network_tcpdump", arguments: { network: "lan", filter: "icmp and (" } })) as ToolResult;
    expect(bad.isError).toBe(true);
    expect((bad.structuredContent as { error: { code: string } }).error.code).toBe("ERR_SKIFF_USAGE");
    await h.ok(["rm", "-f", "a", "b"]);
    await h.ok(["network", "rm", "lan"]);
  }, 300_000);
});
