#!/usr/bin/env node
/**
 * The `skiff` command: a thin shell over the library. Parses flags, calls
 * the engine, renders results; exit codes are documented in docs/cli.md.
 */
import { CommanderError } from "commander";
import { endChildren, ExitCode, SkiffError } from "../pure.js";
import { makeContext } from "./context.js";
import { buildProgram } from "./program.js";
import { printError } from "./output.js";
import { wantsJson } from "./usage.js";

async function main(argv: string[]): Promise<number> {
  // Known before parsing so that errors during parsing already honour them.
  const ctx = makeContext({ debug: argv.includes("--debug"), json: wantsJson(argv) });
  const program = buildProgram(ctx, argv);

  try {
    await program.parseAsync(argv, { from: "user" });
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version (usage errors are SkiffErrors: usage.ts); commander has printed them.
      return err.exitCode === 0 ? 0 : ExitCode.usage;
    }
    if (err instanceof SkiffError && err.details?.silent === true) return err.exitCode;
    return printError(err, ctx.flags);
  }
}

for (const sig of ["SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    void endChildren(500).finally(() => process.exit(128 + (sig === "SIGTERM" ? 15 : 1)));
  });
}

// A reader that went away (`skiff ps | head -1`, `ssh -F <(skiff ssh-config VM)` that never read it) ends
// skiff as SIGPIPE ends a native program, exit 141, instead of an unhandled 'error' and its stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
    void endChildren(500).finally(() => process.exit(128 + 13));
  });
}

const code = await main(process.argv.slice(2));
await endChildren(500);
process.exitCode = code;
