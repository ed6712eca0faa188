// The program built for one verb (main.ts passes the command line) is the
// same command as in the whole tree, and the table of verbs in program.ts
// names every verb the registrars declare.
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { makeContext } from "../../src/cli/context.js";
import { buildProgram, tableVerbs, verbOf } from "../../src/cli/program.js";

const ctx = () => makeContext({ debug: false, json: false });
const namesOf = (cmd: Command) => [cmd.name(), ...cmd.aliases()];
const find = (program: Command, verb: string) => program.commands.find((c) => namesOf(c).includes(verb));

/** Everything a user can see of a command: its names, flags, help (examples included), and its subcommands'. */
function dump(cmd: Command): unknown {
  let help = "";
  cmd.configureOutput({ writeOut: (s) => (help += s), writeErr: (s) => (help += s) });
  cmd.outputHelp();
  return {
    names: namesOf(cmd),
    options: cmd.options.map((o) => [o.flags, o.description, o.defaultValue]),
    help,
    subs: cmd.commands.map(dump),
  };
}

describe("the program built for a verb", () => {
  const full = buildProgram(ctx());
  const declared = full.commands.filter((c) => c.name() !== "help").flatMap(namesOf);

  it("the table names every verb the registrars declare, except completion's, which needs the whole tree", () => {
    expect([...tableVerbs].sort()).toEqual(declared.filter((v) => v !== "completion" && v !== "__complete").sort());
  });

  it.each(tableVerbs.map((v) => [v]))("%s: the same command as in the whole tree, without the others", (verb) => {
    const own = buildProgram(ctx(), ["--json", verb, "--help"]);
    expect(own.commands.length).toBeLessThan(full.commands.length);
    expect(dump(find(own, verb)!)).toEqual(dump(find(full, verb)!));
  });

  it("gets the whole tree for no verb, an unknown one, help and completion", () => {
    for (const argv of [[], ["--help"], ["-v"], ["nosuch"], ["help", "ps"], ["completion", "bash"], ["__complete", "ps"]]) {
      expect(buildProgram(ctx(), argv).commands.length, argv.join(" ")).toBe(full.commands.length);
    }
  });
});

describe("verbOf", () => {
  it("skips the root's own options and their values", () => {
    expect(verbOf(["ps", "-a"])).toBe("ps");
    expect(verbOf(["--debug", "--json", "exec", "web", "true"])).toBe("exec");
    expect(verbOf(["-H", "unix:/s", "ps"])).toBe("ps");
    expect(verbOf(["--host", "h:1", "ps"])).toBe("ps");
    expect(verbOf(["--host=h:1", "-Hx", "ps"])).toBe("ps");
  });

  it("is undefined for any other option before the verb, and for none", () => {
    expect(verbOf(["--help", "ps"])).toBeUndefined();
    expect(verbOf(["-v"])).toBeUndefined();
    expect(verbOf(["--jsno", "ps"])).toBeUndefined();
    expect(verbOf(["-H"])).toBeUndefined();
    expect(verbOf([])).toBeUndefined();
  });
});
