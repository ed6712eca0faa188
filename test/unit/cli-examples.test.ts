/**
 * Every command's --help ends with examples, and every example is one the
 * real parser accepts (each flag exists on that command, values where
 * values are due), and at least one runs the command whose help shows it.
 */
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { makeContext } from "../../src/cli/context.js";
import { examples } from "../../src/cli/examples.js";
import { buildProgram } from "../../src/cli/program.js";
import { commandPath } from "../../src/cli/usage.js";

function allCommands(cmd: Command): Command[] {
  return cmd.commands.filter((c) => c.name() !== "help" && !(c as unknown as { _hidden?: boolean })._hidden).flatMap((c) => [c, ...allCommands(c)]);
}

/** Shell words, with quotes removed; operators (|, &&, >, <(, ), #…) split the line into commands. */
function shellCommands(line: string): string[][] {
  const commands: string[][] = [[]];
  const re = /'([^']*)'|"([^"]*)"|(&&|\|\||>>|<\(|[|;<>()])|(#.*$)|(\S+?)(?=['"\s|;<>()]|&&|$)|\s+/g;
  for (const m of line.matchAll(re)) {
    if (m[4] !== undefined) break;
    if (m[3] !== undefined) commands.push([]);
    else if (m[1] !== undefined || m[2] !== undefined || m[5] !== undefined) commands.at(-1)!.push(m[1] ?? m[2] ?? m[5]!);
  }
  return commands.filter((c) => c.length > 0);
}

/** A program whose actions only note which command ran. */
function dryProgram(): { program: Command; ran: string[] } {
  const program = buildProgram(makeContext({ debug: false, json: false }));
  program.configureOutput({ writeOut: () => {}, writeErr: () => {} });
  const ran: string[] = [];
  for (const cmd of allCommands(program)) cmd.action((...args: unknown[]) => void ran.push(commandPath(args.at(-1) as Command)));
  return { program, ran };
}

describe("examples in --help", () => {
  const { program } = dryProgram();
  const commands = allCommands(program);

  it("every command and subcommand has an Examples section", () => {
    expect(commands.length).toBeGreaterThan(60);
    const missing = commands.filter((c) => !examples[commandPath(c).replace(/^skiff /, "")]).map(commandPath);
    expect(missing).toEqual([]);
    const stray = Object.keys(examples).filter((path) => !commands.some((c) => commandPath(c) === `skiff ${path}`));
    expect(stray).toEqual([]);
  });

  it("the help text ends with them", () => {
    const stop = commands.find((c) => commandPath(c) === "skiff stop")!;
    let help = "";
    stop.configureOutput({ writeOut: (s) => (help += s) });
    stop.outputHelp();
    expect(help).toMatch(/\nExamples:\n {2}\$ skiff stop web\n {2}\$ skiff stop -t 30 web db\n {2}\$ skiff stop --hibernate sandbox\n$/);
  });

  it.each(Object.entries(examples))("skiff %s: every example parses, and one runs it", async (path, lines) => {
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(3);
    const ran: string[] = [];
    for (const line of lines) {
      const invocations = shellCommands(line).filter((words) => words[0] === "skiff");
      expect(invocations, line).not.toEqual([]);
      for (const words of invocations) {
        const dry = dryProgram();
        await expect(dry.program.parseAsync(words.slice(1), { from: "user" }), line).resolves.toBeDefined();
        ran.push(...dry.ran);
      }
    }
    // A group's examples run its verbs (`skiff image` → `skiff image ls`).
    expect(ran.filter((p) => p === `skiff ${path}` || p.startsWith(`skiff ${path} `)), ran.join(", ")).not.toEqual([]);
  });

  it("would catch a flag the command lacks", async () => {
    const dry = dryProgram();
    await expect(dry.program.parseAsync(["stop", "--force", "web"], { from: "user" })).rejects.toMatchObject({ code: "ERR_SKIFF_USAGE", place: "--force" });
    expect(shellCommands(`echo "$T" | skiff login -u a --password-stdin r.io # note`)).toEqual([["echo", "$T"], ["skiff", "login", "-u", "a", "--password-stdin", "r.io"]]);
  });
});
