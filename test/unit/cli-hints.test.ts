/**
 * Every `skiff VERB …` that a hint, message or document tells a user to
 * type names a verb the CLI has (a hint once said `skiff ls`, which does
 * not exist).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { makeContext } from "../../src/cli/context.js";
import { buildProgram } from "../../src/cli/program.js";

const root = join(import.meta.dirname, "..", "..");

function names(cmd: Command): string[] {
  return [cmd.name(), ...cmd.aliases()];
}

/** Files under `dir` (recursively) ending in `ext`. */
function filesIn(dir: string, ext: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(ext))
    .map((e) => join(e.parentPath, e.name));
}

/**
 * The first words of every `skiff …` a user is told to type: in backticks
 * (escaped ones inside a template literal). A template literal that merely
 * starts with "skiff" (`skiff home is too deep…${path}…`) is not one.
 */
function commandsIn(text: string): string[][] {
  return [...text.matchAll(/(\\?)`skiff ([^`\n]*?)\\?`/g)].flatMap((m) => {
    if (m[1] === "" && m[2]!.includes("${")) return [];
    const words = m[2]!.split(/\s+/).filter((w) => !w.startsWith("-"));
    const verbs = words.slice(0, 2).filter((w, i) => i === 0 || /^[a-z][a-z-]*$/.test(w));
    return /^[a-z][a-z-]*$/.test(verbs[0] ?? "") ? [verbs] : [];
  });
}

describe("commands named in hints and docs", () => {
  const program = buildProgram(makeContext({ debug: false, json: false }));
  const unknown = (words: string[]): boolean => {
    const cmd = program.commands.find((c) => names(c).includes(words[0]!));
    if (cmd === undefined) return true;
    // A second word is a verb only for commands that have verbs (`network rm`, not `logs web`).
    if (cmd.commands.length === 0 || words[1] === undefined) return false;
    return !cmd.commands.some((c) => names(c).includes(words[1]!));
  };

  it("every `skiff VERB` in src/ and the docs is a verb the CLI has", () => {
    const files = [...filesIn(join(root, "src"), ".ts"), ...filesIn(join(root, "docs"), ".md"), join(root, "README.md")];
    const found = files.map((file) => ({ file: file.slice(root.length + 1), commands: commandsIn(readFileSync(file, "utf8")) }));
    expect(found.reduce((n, f) => n + f.commands.length, 0)).toBeGreaterThan(100);
    const bad = found.flatMap((f) => f.commands.filter(unknown).map((words) => `${f.file}: skiff ${words.join(" ")}`));
    expect(bad).toEqual([]);
  });

  it("would catch `skiff ls`", () => {
    expect(commandsIn("check it runs (`skiff ls`) and `skiff network rm x`").filter(unknown)).toEqual([["ls"]]);
  });
});
