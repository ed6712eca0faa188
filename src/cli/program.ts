/**
 * The `skiff` command tree: every verb registered on one commander program
 * (main.ts runs it). Every verb, flag and example is declared at start, for
 * --help, completion and usage errors; what a verb does is loaded when it
 * runs: command modules import the engine and anything heavy (ssh2, zod,
 * yaml, the registry client, node:child_process, node:net) inside their
 * actions, so `skiff --version` starts like a small program
 * (docs/benchmarks.md, "CLI start"; test/unit/cli-start.test.ts holds it).
 */
import type { Command } from "commander";
import { SkiffCommand } from "./usage.js";
import type { CliContext } from "./context.js";
import { registerDoctor, skiffVersion } from "./commands/doctor.js";
import { registerKernel } from "./commands/kernel.js";
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
import { registerSnapshot } from "./commands/snapshot.js";
import { registerProject } from "./commands/project.js";
import { registerAutostart } from "./commands/autostart.js";
import { registerCompletion } from "./commands/completion.js";
import { registerSettings } from "./commands/settings.js";
import { registerServe } from "./commands/serve.js";
import { registerMcp } from "./commands/mcp.js";
import { addExamples } from "./examples.js";

export function buildProgram(ctx: CliContext): Command {
  const program = new SkiffCommand("skiff")
    .description("hardware-isolated Linux microVMs that feel like containers")
    .version(skiffVersion(), "-v, --version")
    .option("--debug", "print stack traces of errors")
    .option("--json", "print results and errors as JSON")
    .option("-H, --host <url>", "run the command against a `skiff serve` (http(s)://HOST:PORT, HOST:PORT or unix:PATH; token in SKIFF_TOKEN) instead of this host; default SKIFF_HOST")
    .enablePositionalOptions()
    // Parse errors become SkiffErrors (usage.ts) with their own "did you mean" hints.
    .showSuggestionAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });

  program.hook("preAction", (_root, action) => {
    const root = program.opts<{ debug?: boolean; json?: boolean; host?: string }>();
    const own = action.opts<{ json?: boolean }>();
    ctx.flags.debug = root.debug === true || ctx.flags.debug;
    ctx.flags.json = root.json === true || own.json === true;
    if (root.host !== undefined) ctx.flags.host = root.host;
    ctx.flags.command = action;
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
  registerSnapshot(program, ctx);
  registerProject(program, ctx);
  registerAutostart(program, ctx);
  registerDoctor(program, ctx);
  registerKernel(program, ctx);
  registerSettings(program, ctx);
  registerServe(program, ctx);
  registerMcp(program, ctx);
  registerCompletion(program, ctx);
  addExamples(program);
  return program;
}
