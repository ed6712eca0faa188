/**
 * Pontoon's tools about one VM that run no command of the caller's:
 * helo (the server), vm_helo (is this VM there and answering?), vm_logs
 * (the serial console's log, read on the host), vm_console_stream (what
 * the console prints during a few seconds: the log's growth, so the
 * console itself stays free for `skiff console`) and vm_restart.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Readable } from "node:stream";
import { z } from "zod";
import { toolNames } from "./names.js";
import { busybox } from "./guest.js";
import { addTool, checkGlobal, ok, targetVm, type McpContext } from "./context.js";
import { outputLimit } from "./exec.js";
import type { VmInfo } from "../index.js";

const vm = z.string().min(1).describe("the VM: its name, one of its IP addresses, or its hostname");

export function vmSummary(v: VmInfo): Record<string, unknown> {
  return { name: v.name, state: v.state, image: v.image, hostname: v.hostname, addresses: v.interfaces.map((i) => ({ nic: i.name, network: i.network, address: i.address })), memoryMiB: v.memoryMiB, cpus: v.cpus };
}

export function vmLine(v: VmInfo): string {
  return `${v.name}\t${v.state}\t${v.hostname}\t${v.interfaces.map((i) => i.address).join(",")}`;
}

/** A log stream read to its end: its first or last outputLimit bytes (guest output, as text), and how many it had. */
async function collect(stream: Readable, keep: "first" | "last"): Promise<{ text: string; bytes: number }> {
  let kept = Buffer.alloc(0);
  let bytes = 0;
  for await (const chunk of stream) {
    const b = chunk as Buffer;
    bytes += b.length;
    if (keep === "last") kept = Buffer.concat([kept, b]).subarray(-outputLimit);
    else if (kept.length < outputLimit) kept = Buffer.concat([kept, b.subarray(0, outputLimit - kept.length)]);
  }
  const text = kept.toString("utf8");
  return { text: keep === "last" ? text.replace(/\n$/, "") : text, bytes };
}

export function registerVmTools(server: McpServer, ctx: McpContext): void {
  addTool(server, ctx, "helo", { description: "Who this server is: skiff's version, the project, the tools it serves, the VMs it sees.", input: z.object({}).strict(), readOnly: true }, async () => {
    checkGlobal(ctx, "helo");
    const vms = await ctx.skiff.list({ all: true });
    const tools = toolNames.filter((t) => !ctx.policy.hideTools.has(t));
    const data = { server: "skiff", version: ctx.version, project: ctx.project?.spec.name ?? null, tools, vms: vms.map((v) => v.name) };
    return ok(data, `skiff ${ctx.version}${ctx.project === undefined ? "" : `, project ${ctx.project.spec.name}`}: ${vms.length} VMs, ${tools.length} tools`);
  });

  addTool(server, ctx, "vm_helo", { description: "Is this VM there and does its guest answer? Its state, addresses and the agent's round trip.", input: z.object({ vm }).strict(), readOnly: true }, async (a) => {
    const t = await targetVm(ctx, "vm_helo", a.vm);
    let answerMs: number | null = null;
    if (t.vm.state === "running") {
      const t0 = Date.now();
      const conn = await ctx.skiff.connect(t.vm.name);
      try {
        // skiff's own `true`: proves the guest answers, runs nothing of the caller's.
        if ((await conn.run([busybox, "true"], { timeoutMs: 20_000 })).code === 0) answerMs = Date.now() - t0;
      } finally {
        await conn.close();
      }
    }
    const data = { ...vmSummary(t.vm), answers: answerMs !== null, answerMs };
    return ok(data, `${vmLine(t.vm)}\t${answerMs === null ? "no answer" : `answers in ${answerMs} ms`}`);
  });

  addTool(server, ctx, "vm_logs", { description: "The last lines of a VM's serial console log.", input: z.object({ vm, lines: z.number().int().min(1).max(10_000).default(50) }).strict(), readOnly: true }, async (a) => {
    const t = await targetVm(ctx, "vm_logs", a.vm);
    // What `skiff logs -n` prints: the rotated file's end too when the current one holds fewer lines.
    const { text } = await collect(await ctx.skiff.logs(t.vm.name, { lines: a.lines }), "last");
    return ok({ vm: t.vm.name, text }, text);
  });

  addTool(server, ctx, "vm_console_stream", { description: "What a VM's serial console prints during the next few seconds.", input: z.object({ vm, duration_s: z.number().min(0.1).max(60).default(5) }).strict(), readOnly: true }, async (a) => {
    const t = await targetVm(ctx, "vm_console_stream", a.vm);
    // Following the log, as `skiff logs -f -n 0` does, so a rotation inside the window loses nothing; the console
    // itself stays free for `skiff console`.
    const signal = AbortSignal.timeout(a.duration_s * 1000);
    const { text, bytes } = await collect(await ctx.skiff.logs(t.vm.name, { lines: 0, follow: true, signal }), "first");
    return ok({ vm: t.vm.name, durationS: a.duration_s, bytes, text }, text === "" ? `(nothing on ${t.vm.name}'s console in ${a.duration_s} s)` : text);
  });

  addTool(server, ctx, "vm_restart", { description: "Restart a VM (stop, then start; it is up when this returns).", input: z.object({ vm }).strict() }, async (a) => {
    const t = await targetVm(ctx, "vm_restart", a.vm);
    const info = await ctx.skiff.restart(t.vm.name);
    return ok(vmSummary(info), `restarted ${info.name}: ${info.state}`);
  });
}
