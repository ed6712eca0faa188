/**
 * A command run for a tool, checked on the way: the policy's pure checks
 * (form, program name, arguments, user), then the guest's (the program's
 * real file, the user's real uid), then the run with the resolved argv —
 * so the file that runs is the file that was checked. One connection per
 * VM does both, and a refusal runs nothing.
 */
import { SkiffError } from "../pure.js";
import type { AgentConnection } from "../index.js";
import { checkExec, checkUser, type ExecAsk } from "./policy.js";
import { busybox, checkUserInGuest, guestChecks, isRefusal } from "./guest.js";
import { refused, type McpContext, type TargetVm } from "./context.js";

/** What a tool returns of a command's output, per stream: enough to read, bounded for the model's context. */
export const outputLimit = 256 * 1024;

export interface CommandInput {
  argv?: string[] | undefined;
  command?: string | undefined;
  user?: string | undefined;
  env?: Record<string, string> | undefined;
  cwd?: string | undefined;
}

/**
 * Pontoon's `command` is a shell command line: it runs as `sh -c COMMAND`,
 * so the policy sees the program it really starts (sh). `argv` runs a
 * program directly, with no shell.
 */
export function askOf(input: CommandInput): ExecAsk {
  if ((input.argv === undefined) === (input.command === undefined)) {
    throw new SkiffError("ERR_SKIFF_USAGE", "give exactly one of argv and command", { place: "argv", hint: 'argv: ["ls", "-l"] runs a program; command: "ls | wc -l" runs sh -c' });
  }
  const argv = input.argv ?? ["sh", "-c", input.command!];
  return { argv, user: input.user, env: input.env, cwd: input.cwd };
}

export interface Checked {
  conn: AgentConnection;
  argv: string[];
}

/** Every check of `ask` on `t`'s VM; a connection to run on, or the refusal thrown. */
export async function checkedCommand(ctx: McpContext, t: TargetVm, ask: ExecAsk): Promise<Checked> {
  const pure = checkExec(t.rule, ask);
  if (pure !== undefined) throw refused(pure, { vm: t.vm.name });
  const conn = await ctx.skiff.connect(t.vm.name);
  try {
    const argv = await guestChecks(conn, t.rule, ask.argv, ask.user);
    if (isRefusal(argv)) throw refused(argv, { vm: t.vm.name });
    return { conn, argv };
  } catch (err) {
    await conn.close();
    throw err;
  }
}

export interface CommandResult {
  vm: string;
  code: number;
  signal?: string;
  stdout: string;
  stderr: string;
  truncated: boolean;
}

export async function runChecked(c: Checked, vm: string, ask: ExecAsk, opts: { input?: string; timeoutMs: number }): Promise<CommandResult> {
  try {
    const r = await c.conn.run(c.argv, {
      ...(ask.user === undefined ? {} : { user: ask.user }),
      ...(ask.env === undefined ? {} : { env: { ...ask.env } }),
      ...(ask.cwd === undefined ? {} : { cwd: ask.cwd }),
      ...(opts.input === undefined ? {} : { input: opts.input }),
      timeoutMs: opts.timeoutMs,
    });
    const truncated = r.stdout.length > outputLimit || r.stderr.length > outputLimit;
    return { vm, code: r.code, ...(r.signal === undefined ? {} : { signal: r.signal }), stdout: r.stdout.slice(0, outputLimit), stderr: r.stderr.slice(0, outputLimit), truncated };
  } finally {
    await c.conn.close();
  }
}

export function renderResult(r: CommandResult): string {
  const end = r.signal === undefined ? `exit ${r.code}` : `killed by ${r.signal}`;
  return `${r.stdout}${r.stderr === "" ? "" : `\n[stderr]\n${r.stderr}`}\n[${r.vm}: ${end}${r.truncated ? ", output truncated" : ""}]`;
}

/** skiff's own tool (busybox) as the caller's user: deny_root decides the user, allow_binaries does not apply. */
export async function asCaller(ctx: McpContext, t: TargetVm, who: string | undefined): Promise<AgentConnection> {
  if (t.rule.denyRoot === true) {
    const pure = checkUser(who);
    if (pure !== undefined) throw refused(pure, { vm: t.vm.name });
  }
  const conn = await ctx.skiff.connect(t.vm.name);
  if (t.rule.denyRoot === true) {
    const inGuest = await checkUserInGuest(conn, who!).catch(async (err: unknown) => {
      await conn.close();
      throw err;
    });
    if (inGuest !== undefined) {
      await conn.close();
      throw refused(inGuest, { vm: t.vm.name });
    }
  }
  return conn;
}

export async function runBusybox(conn: AgentConnection, argv: string[], who: string | undefined, opts: { timeoutMs?: number; input?: string | Uint8Array } = {}) {
  try {
    return await conn.run([busybox, ...argv], { ...(who === undefined ? {} : { user: who }), timeoutMs: opts.timeoutMs ?? 30_000, ...(opts.input === undefined ? {} : { input: opts.input }) });
  } finally {
    await conn.close();
  }
}
