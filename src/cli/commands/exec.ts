/** exec: run a command in a running VM. */
import type { Command } from "commander";
import { parseDuration, parseEnvList } from "../../pure.js";
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
      // Read from the stored spec: exec is a hot path and needs no reconcile of every VM.
      const skiff = await ctx.skiff();
      const spec = (await skiff.store.get(name)).config.spec;
      const user = flags.user ?? spec.user;
      const cwd = flags.workdir ?? spec.workingDir;
      // skiff-init gives every command the VM's environment (`run -e`); a cloud image's sshd does not.
      const env = spec.boot?.kind === "cloud" ? { ...spec.env, ...given } : given;
      const conn = await skiff.connect(name);
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
