/**
 * Pontoon's command tools: vm_exec, vm_exec_bg (a command in the
 * background, its output in /tmp/<log_tag>.log), vm_tail (that log),
 * vm_bulk_exec (one command on several VMs), vm_ps and vm_pkill (by a
 * plain string in the command line, as pkill -f; skiff's busybox has no
 * pkill, and a caller's regex never runs on the host).
 *
 * vm_bulk_exec is all or nothing: every VM is resolved and checked under
 * its own rule first, and if any refuses, nothing runs and the answer
 * lists each refusal — a fleet-wide command that ran on some VMs only
 * would hide the refusals in a partial success.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { SkiffError } from "../pure.js";
import { parseSignal } from "../pure.js";
import { skiffDetach } from "../pure.js";
import { addTool, ok, refused, targetVm, type McpContext } from "./context.js";
import { asCaller, askOf, checkedCommand, renderResult, runBusybox, runChecked, type Checked } from "./exec.js";
import { busybox } from "./guest.js";

const vm = z.string().min(1).describe("the VM: its name, one of its IP addresses, or its hostname");
const user = z.string().optional().describe("user (name or uid, optionally :group) to run as; default root, which deny_root refuses");
const command = {
  argv: z.array(z.string()).optional().describe("the program and its arguments, run directly (no shell)"),
  command: z.string().optional().describe("a shell command line, run as sh -c COMMAND"),
  user,
  env: z.record(z.string()).optional().describe("environment variables for the command"),
  cwd: z.string().optional().describe("working directory (default the user's home)"),
};
const logTag = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "letters, digits, _ . - (no slash)")
  .describe("names the log: /tmp/<log_tag>.log in the guest");
const timeout = z.number().int().min(1).max(3600).default(30).describe("seconds before the command is killed");

/**
 * Under skiff-detach (a session of its own, returning once it runs, so the
 * end of the SSH session cannot take it along): open the log ($0) as the
 * caller's user, then become the command.
 */
const backgroundScript = 'exec "$@" >"$0" 2>&1 </dev/null';

interface GuestProcess {
  pid: number;
  user: string;
  command: string;
}

/** skiff's own ps with fixed arguments: it reads /proc and nothing the caller chose, so it runs as skiff does. */
async function processesOf(ctx: McpContext, name: string): Promise<GuestProcess[]> {
  const r = await runBusybox(await ctx.skiff.connect(name), ["ps", "-o", "pid,user,args"], undefined);
  if (r.code !== 0) throw new SkiffError("ERR_SKIFF_GUEST_COMMAND", `ps failed in ${name}: ${r.stderr.trim()}`);
  return r.stdout
    .split("\n")
    .slice(1)
    .map((l) => l.trim().match(/^(\d+)\s+(\S+)\s+(.*)$/))
    .filter((m): m is RegExpMatchArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), user: m[2]!, command: m[3]! }));
}

export function registerExecTools(server: McpServer, ctx: McpContext): void {
  addTool(server, ctx, "vm_exec", { description: "Run a command in a VM and wait for it: exit code, stdout, stderr.", input: z.object({ vm, ...command, stdin: z.string().optional(), timeout_s: timeout }).strict() }, async (a) => {
    const t = await targetVm(ctx, "vm_exec", a.vm);
    const ask = askOf(a);
    const r = await runChecked(await checkedCommand(ctx, t, ask), t.vm.name, ask, { timeoutMs: a.timeout_s * 1000, ...(a.stdin === undefined ? {} : { input: a.stdin }) });
    return ok({ ...r }, renderResult(r));
  });

  addTool(server, ctx, "vm_exec_bg", { description: "Start a command in the background of a VM, its output going to /tmp/<log_tag>.log (read it with vm_tail).", input: z.object({ vm, ...command, log_tag: logTag }).strict() }, async (a) => {
    const t = await targetVm(ctx, "vm_exec_bg", a.vm);
    const ask = askOf(a);
    const c = await checkedCommand(ctx, t, ask);
    const log = `/tmp/${a.log_tag}.log`;
    const r = await runChecked({ conn: c.conn, argv: [skiffDetach, busybox, "sh", "-c", backgroundScript, log, ...c.argv] }, t.vm.name, ask, { timeoutMs: 30_000 });
    if (r.code !== 0) throw new SkiffError("ERR_SKIFF_GUEST_COMMAND", `could not start the command in ${t.vm.name}: ${r.stderr.trim()}`);
    const pid = Number(r.stdout.trim().split("\n").at(-1));
    return ok({ vm: t.vm.name, pid, log }, `started in ${t.vm.name} (pid ${pid}), output in ${log}`);
  });

  addTool(server, ctx, "vm_tail", { description: "The last lines of a background command's log (/tmp/<log_tag>.log).", input: z.object({ vm, log_tag: logTag, lines: z.number().int().min(1).max(10_000).default(50), user }).strict(), readOnly: true }, async (a) => {
    const t = await targetVm(ctx, "vm_tail", a.vm);
    const r = await runBusybox(await asCaller(ctx, t, a.user), ["tail", "-n", String(a.lines), `/tmp/${a.log_tag}.log`], a.user);
    if (r.code !== 0) throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `cannot read /tmp/${a.log_tag}.log in ${t.vm.name}: ${r.stderr.trim()}`, { place: "log_tag", hint: "vm_exec_bg with this log_tag writes it" });
    return ok({ vm: t.vm.name, log: `/tmp/${a.log_tag}.log`, text: r.stdout }, r.stdout);
  });

  addTool(server, ctx, "vm_bulk_exec", { description: "Run one command on several VMs at once; each VM's own policy decides, and if any refuses nothing runs.", input: z.object({ vms: z.array(vm).min(1).max(64), ...command, timeout_s: timeout }).strict() }, async (a) => {
    const ask = askOf(a);
    const targets = await Promise.all(a.vms.map((v) => targetVm(ctx, "vm_bulk_exec", v).then((t) => ({ t }), (err: unknown) => ({ err, v }))));
    const checked = await Promise.all(
      targets.map(async (x) => ("err" in x ? { vm: x.v, err: x.err } : checkedCommand(ctx, x.t, ask).then((c): { vm: string; c: Checked } => ({ vm: x.t.vm.name, c }), (err: unknown) => ({ vm: x.t.vm.name, err })))),
    );
    const failures = checked.filter((x): x is { vm: string; err: unknown } => "err" in x);
    if (failures.length > 0) {
      await Promise.all(checked.map((x) => ("c" in x ? x.c.conn.close() : undefined)));
      const list = failures.map((f) => ({ vm: f.vm, reason: f.err instanceof Error ? f.err.message : String(f.err), ...(f.err instanceof SkiffError ? { code: f.err.code } : {}) }));
      const code = failures.every((f) => f.err instanceof SkiffError && f.err.code === "ERR_SKIFF_POLICY") ? "ERR_SKIFF_POLICY" : failures[0]!.err instanceof SkiffError ? (failures[0]!.err as SkiffError).code : "ERR_SKIFF_INTERNAL";
      throw new SkiffError(code, `nothing ran: ${list.map((l) => `${l.vm}: ${l.reason}`).join("; ")}`, { hint: "each VM is checked under its own rule; run on the VMs that allow it", details: { refusals: list } });
    }
    const results = await Promise.all(checked.map((x) => runChecked((x as { c: Checked }).c, x.vm, ask, { timeoutMs: a.timeout_s * 1000 })));
    return ok({ results }, results.map(renderResult).join("\n\n"));
  });

  addTool(server, ctx, "vm_ps", { description: "The processes running in a VM (pid, user, command line).", input: z.object({ vm }).strict(), readOnly: true }, async (a) => {
    const t = await targetVm(ctx, "vm_ps", a.vm);
    const processes = await processesOf(ctx, t.vm.name);
    return ok({ vm: t.vm.name, processes }, processes.map((p) => `${p.pid}\t${p.user}\t${p.command}`).join("\n"));
  });

  addTool(server, ctx, "vm_pkill", { description: "Send a signal to the processes of a VM whose command line contains a pattern (pkill -f, a plain string).", input: z.object({ vm, pattern: z.string().min(1), signal: z.string().default("TERM"), user }).strict() }, async (a) => {
    const t = await targetVm(ctx, "vm_pkill", a.vm);
    const signal = parseSignal(a.signal, "signal");
    const conn = await asCaller(ctx, t, a.user);
    // Matched on the host as a plain string (no regex of the caller's runs here); skiff's busybox has no pkill.
    const pids = (await processesOf(ctx, t.vm.name)).filter((p) => p.command.includes(a.pattern) && !p.command.startsWith(busybox)).map((p) => String(p.pid));
    if (pids.length === 0) {
      await conn.close();
      return ok({ vm: t.vm.name, signal: signal.name, pids: [], signalled: false }, `no process matches ${a.pattern}`);
    }
    // As the caller's user: under deny_root it signals only what that user may.
    const r = await runBusybox(conn, ["kill", `-${signal.number}`, ...pids], a.user);
    return ok({ vm: t.vm.name, signal: signal.name, pids: pids.map(Number), signalled: r.code === 0, ...(r.code === 0 ? {} : { stderr: r.stderr }) }, `sent ${signal.name} to ${pids.join(" ")}${r.code === 0 ? "" : `: ${r.stderr.trim()}`}`);
  });
}
