/** Errors from argument parsing have the shape of every other error: code, place, hint, --json, exit code 2. */
import { describe, expect, it } from "vitest";
import { SkiffError } from "../../src/errors.js";
import { closest } from "../../src/util/closest.js";
import { spawnSync } from "node:child_process";
import { cliPath, parseError, runCli } from "./fixtures/cli.js";

describe("argument parsing errors", { timeout: 30_000 }, () => {
  it.each([
    [["run", "--memroy", "1g", "alpine"], "--memroy", "did you mean --memory? see `skiff run --help`", /unknown option '--memroy'/],
    [["run", "--frobnicate", "alpine"], "--frobnicate", "see `skiff run --help`", /unknown option/],
    // skiff's own flag after a command that lacks it: where it goes, not "did you mean --json" (itself).
    [["snapshot", "inspect", "s1", "--json"], "--json", "did you mean `skiff --json snapshot inspect …` (--json belongs to `skiff`)? see `skiff snapshot inspect --help`", /unknown option '--json'/],
    [["netwrk", "ls"], "netwrk", "did you mean `skiff network`? see `skiff --help`", /unknown command 'netwrk'/],
    [["image", "prnue"], "prnue", "did you mean `skiff image prune`? see `skiff image --help`", /unknown command 'prnue'/],
    [["exec"], "<name>", "see `skiff exec --help`", /missing required argument 'name'/],
    [["run", "-m"], "--memory", "see `skiff run --help`", /argument missing/],
    [["completion", "tcsh"], "<shell>", "see `skiff completion --help`", /Allowed choices are bash, zsh, fish/],
    [["login", "example.org"], "--username", "see `skiff login --help`", /required option/],
    // Words a command does not take are refused, not ignored.
    [["ps", "a", "b", "c"], "skiff ps", "see `skiff ps --help`", /too many arguments for 'ps'. Expected 0 arguments but got 3/],
    [["network", "ls", "x"], "skiff network ls", "see `skiff network ls --help`", /too many arguments for 'ls'/],
  ])("skiff %j: place %s", async (args, place, hint, message) => {
    const err = await parseError(args);
    expect(err).toBeInstanceOf(SkiffError);
    expect(err).toMatchObject({ code: "ERR_SKIFF_USAGE", place, hint, exitCode: 2 });
    expect((err as SkiffError).message).toMatch(message);
    expect((err as SkiffError).message).not.toMatch(/^error:/);
  });

  it("the CLI prints them as it prints every error, and as JSON with --json", () => {
    const plain = runCli(["run", "--memroy", "1g", "alpine"]);
    expect(plain.code).toBe(2);
    expect(plain.stdout).toBe("");
    expect(plain.stderr).toBe("skiff: error ERR_SKIFF_USAGE (--memroy): unknown option '--memroy'\n  hint: did you mean --memory? see `skiff run --help`\n");

    const json = runCli(["--json", "netwrk", "ls"]);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stderr)).toEqual({
      error: {
        code: "ERR_SKIFF_USAGE",
        message: "unknown command 'netwrk'",
        place: "netwrk",
        hint: "did you mean `skiff network`? see `skiff --help`",
        details: { commander: "commander.unknownCommand" },
      },
    });
  });

  it("--json after `--` belongs to the guest command, not to skiff", () => {
    const r = runCli(["exec", "--frob", "--", "--json"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^skiff: error ERR_SKIFF_USAGE \(--frob\)/);
  });

  it("a reader that went away ends skiff as SIGPIPE would (141), without a stack trace", () => {
    // The reader closes its end at once and lingers: skiff's completion script (tens of KB) meets a closed pipe.
    const piped = spawnSync("bash", ["-c", `set -o pipefail; "${process.execPath}" "${cliPath}" completion bash | (exec 0<&-; sleep 0.3)`], { encoding: "utf8" });
    expect(piped.stderr).not.toMatch(/EPIPE|at /);
    expect(piped.status).toBe(141);
  });

  it("help and version still exit 0", () => {
    expect(runCli(["--help"])).toMatchObject({ code: 0, stderr: "" });
    expect(runCli(["--version"]).code).toBe(0);
  });
});

describe("closest", () => {
  it("finds typos and prefixes, not unrelated words", () => {
    expect(closest("netwrk", ["network", "volume"])).toBe("network");
    expect(closest("vol", ["network", "volume"])).toBe("volume");
    expect(closest("--memroy", ["--memory", "--name"])).toBe("--memory");
    expect(closest("bogus", ["network", "volume", "run"])).toBeUndefined();
  });
});
