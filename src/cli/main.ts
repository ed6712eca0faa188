#!/usr/bin/env node
/**
 * The `skiff` command: a thin shell over the library. Parses flags, calls
 * the engine, renders results; exit codes are documented in docs/cli.md.
 */
import { Command, CommanderError } from "commander";
import { SkiffError, ExitCode } from "../errors.js";
import { killAll } from "../process/runner.js";
import { makeContext } from "./context.js";
import { registerDoctor, skiffVersion } from "./commands/doctor.js";
import { registerLifecycle } from "./commands/lifecycle.js";
import { registerLogs } from "./commands/logs.js";
import { registerPs } from "./commands/ps.js";
import { registerExec } from "./commands/exec.js";
import { registerRun } from "./commands/run.js";
import { registerCp } from "./commands/cp.js";
import { registerSsh } from "./commands/ssh.js";
import { registerImage } from "./commands/image.js";
import { registerLayer } from "./commands/layer.js";
import { registerNetwork } from "./commands/network.js";
import { registerVolume } from "./commands/volume.js";
import { registerProject } from "./commands/project.js";
import { printError } from "./output.js";

async function main(argv: string[]): Promise<number> {
  // Known before parsing so that errors during parsing already honour them.
  const ctx = makeContext({ debug: argv.includes("--debug"), json: false });
  const program = new Command("skiff")
    .description("hardware-isolated Linux microVMs that feel like containers")
    .version(skiffVersion(), "-v, --version")
    .option("--debug", "print stack traces of errors")
    .option("--json", "print results and errors as JSON")
    .enablePositionalOptions()
    .showHelpAfterError("(run `skiff --help` for usage)")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });

  program.hook("preAction", (_root, action) => {
    const root = program.opts<{ debug?: boolean; json?: boolean }>();
    const own = action.opts<{ json?: boolean }>();
    ctx.flags.debug = root.debug === true || ctx.flags.debug;
    ctx.flags.json = root.json === true || own.json === true;
  });

  registerRun(program, ctx);
  registerExec(program, ctx);
  registerLifecycle(program, ctx);
  registerPs(program, ctx);
  registerCp(program, ctx);
  registerSsh(program, ctx);
  registerLogs(program, ctx);
  registerImage(program, ctx);
  registerLayer(program, ctx);
  registerNetwork(program, ctx);
  registerVolume(program, ctx);
  registerProject(program, ctx);
  registerDoctor(program, ctx);

  try {
    await program.parseAsync(argv, { from: "user" });
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed its message already (help, version, usage errors).
      return err.exitCode === 0 ? 0 : ExitCode.usage;
    }
    if (err instanceof SkiffError && err.details?.silent === true) return err.exitCode;
    return printError(err, ctx.flags);
  }
}

for (const sig of ["SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    void killAll(500).finally(() => process.exit(128 + (sig === "SIGTERM" ? 15 : 1)));
  });
}

const code = await main(process.argv.slice(2));
await killAll(500);
process.exitCode = code;
