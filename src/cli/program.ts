/**
 * The `skiff` command tree: every verb registered on one commander program
 * (main.ts runs it). A command's verbs, flags and examples are declared at
 * start, for --help, completion and usage errors (all of them when the
 * command line names no known verb); what a verb does is loaded when it
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

type Registrar = (program: Command, ctx: CliContext) => void;

/**
 * Each registrar, in --help's order, and the top-level verbs (aliases
 * included) it declares. A command names its verb first, so only the
 * registrars of that verb are run: declaring all ~60 commands, their flags
 * and examples costs every command ~10 ms. layer.ts adds `image layer` to
 * the `image` command, so `image` is registerImage's and registerLayer's.
 * test/unit/cli-program.test.ts checks this table against what each
 * registrar declares, and that a verb built alone is the same command as
 * in the whole tree.
 */
const registrars: readonly (readonly [Registrar, readonly string[]])[] = [
  [registerRun, ["run"]],
  [registerExec, ["exec"]],
  [registerLifecycle, ["create", "start", "stop", "pause", "suspend", "unpause", "resume", "restart", "kill", "rm"]],
  [registerPs, ["ps", "inspect"]],
  [registerCp, ["cp"]],
  [registerSsh, ["ssh", "ssh-config", "proxy", "top"]],
  [registerLogs, ["logs", "console"]],
  [registerImage, ["image", "login", "logout", "system"]],
  [registerLayer, ["layer", "image"]],
  [registerNetwork, ["network", "port", "port-forward"]],
  [registerVolume, ["volume"]],
  [registerSnapshot, ["snapshot", "restore", "fork"]],
  [registerProject, ["up", "down", "build", "provision", "reload", "config", "compose"]],
  [registerAutostart, ["autostart"]],
  [registerDoctor, ["doctor", "version"]],
  [registerKernel, ["kernel"]],
  [registerSettings, ["settings"]],
  [registerServe, ["serve"]],
  [registerMcp, ["mcp"]],
  // Completion walks the whole tree: its verbs are in no table row, so they get all of it.
  [registerCompletion, []],
];

/** Every top-level verb the table names (for the test). */
export const tableVerbs: readonly string[] = [...new Set(registrars.flatMap(([, verbs]) => verbs))];

/**
 * The verb `argv` runs: its first word after the root's own options
 * (`--debug`, `--json`, `-H`/`--host URL`). Undefined when there is none,
 * or when a root option comes that is not one of those (`--help`,
 * `--version`, a typo): the whole tree then answers.
 */
export function verbOf(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--debug" || arg === "--json" || arg.startsWith("--host=") || (arg.startsWith("-H") && arg.length > 2)) continue;
    if (arg === "-H" || arg === "--host") {
      i++;
      continue;
    }
    return arg.startsWith("-") ? undefined : arg;
  }
  return undefined;
}

/**
 * The program, with every command declared; given the command line, only
 * the commands of its verb when the table knows that verb (anything else:
 * help, an unknown verb and its "did you mean", completion, gets them all).
 */
export function buildProgram(ctx: CliContext, argv?: readonly string[]): Command {
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

  const verb = argv === undefined ? undefined : verbOf(argv);
  const own = verb === undefined ? [] : registrars.filter(([, verbs]) => verbs.includes(verb));
  for (const [register] of own.length > 0 ? own : registrars) register(program, ctx);
  addExamples(program);
  return program;
}
