/** exec: run a command in a running VM. */
import type { Command } from "commander";
import { parseDuration, parseEnvList } from "../../pure.js";
import type { MachineSpec } from "../../index.js";
import type { CliContext } from "../context.js";
import { attachSession, checkTty } from "../session.js";
import { envFlags, envHelp } from "../spec-flags.js";

const collect = (value: string, previous: string[]): string[] => [...previous, value];

interface ExecFlags {
  interactive?: boolean;
  tty?: boolean;
  user?: string;
  env: string[];
  workdir?: string;
  timeout?: string;
}

export function registerExec(program: Command, ctx: CliContext): void {
  program
    .command("exec")
    .description("run a command in a running VM (stdout and stderr apart, exit code returned)")
    .argument("<name>")
    .argument("<command...>")
    .option("-i, --interactive", "forward stdin")
    .option("-t, --tty", "allocate a pseudo-terminal")
    .option("-u, --user <user>", "user name or uid[:gid] in the guest")
    .option(envFlags, envHelp("environment variable"), collect, [])
    .option("-w, --workdir <dir>", "working directory in the guest")
    .option("--timeout <duration>", "kill the command after this long (e.g. 30s)")
    .passThroughOptions()
    .action(async (name: string, command: string[], flags: ExecFlags) => {
      const session = { interactive: flags.interactive === true, tty: flags.tty === true };
      checkTty(session, "--tty");
      const given = parseEnvList(flags.env);
      const timeoutMs = flags.timeout === undefined ? undefined : parseDuration(flags.timeout, "--timeout");
      // The VM's defaults (the image's User and WorkingDir, or run's -u/-w) unless given here.
      // Here, read from the stored spec: exec is a hot path and needs no reconcile of every VM.
      const client = await ctx.client();
      const vm = ctx.remoteHost() === undefined ? specDefaults((await (await ctx.skiff()).store.get(name)).config.spec) : await client.inspect(name);
      const user = flags.user ?? vm.user;
      const cwd = flags.workdir ?? vm.workingDir;
      // skiff-init gives every command the VM's environment (`run -e`); a cloud image's sshd does not.
      const env = vm.sshUser !== undefined ? { ...vm.env, ...given } : given;
      const conn = await client.connect(name);
      try {
        ctx.exitCode = await attachSession(
          conn,
          {
            argv: command,
            env,
            ...(user === undefined ? {} : { user }),
            ...(cwd === undefined ? {} : { cwd }),
          },
          { ...session, ...(timeoutMs === undefined ? {} : { timeoutMs }) },
        );
      } finally {
        await conn.close();
      }
    });
}

/** What exec takes from a VM's stored spec: the same fields VmInfo carries. */
function specDefaults(spec: MachineSpec): { user?: string | undefined; workingDir?: string | undefined; env: Record<string, string>; sshUser: string | undefined } {
  return { user: spec.user, workingDir: spec.workingDir, env: spec.env, sshUser: spec.boot?.kind === "cloud" ? spec.boot.sshUser : undefined };
}
