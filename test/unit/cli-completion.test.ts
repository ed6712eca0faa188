/**
 * `skiff completion`: the bash script completes commands, flags and names
 * (through `skiff __complete`) when bash runs it; the zsh and fish scripts,
 * whose shells this host lacks, are checked on their text.
 */
import { spawnSync } from "node:child_process";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { completionTree } from "../../src/cli/completion-spec.js";
import { makeContext } from "../../src/cli/context.js";
import { buildProgram } from "../../src/cli/program.js";
import { VmStore } from "../../src/store/store.js";
import { cliPath, runCli } from "./fixtures/cli.js";
import { machineSpec } from "./fixtures/spec.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

let home: string;
let cleanup: () => Promise<void>;
let bin: string;

beforeAll(async () => {
  ({ home, cleanup } = await makeTempHome());
  // A VM record is all `__complete vms` reads: no image, no boot.
  const store = new VmStore({ home });
  const vm = await store.create(machineSpec("webserver"), { image: { digest: "sha256:abc" } });
  await store.commit(vm.id);
  expect(runCli(["network", "create", "backnet"], { SKIFF_HOME: home }).code).toBe(0);
  // The script calls `skiff` by the name it was typed as: put one on PATH.
  bin = join(home, "bin");
  await mkdir(bin);
  await writeFile(join(bin, "skiff"), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(cliPath)} "$@"\n`);
  await chmod(join(bin, "skiff"), 0o755);
}, 30_000);
afterAll(() => cleanup());

/** What bash offers for the words typed so far (the last one is being completed). */
function complete(...words: string[]): string[] {
  const script = `source <(skiff completion bash) || exit 9
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
_skiff_complete
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync("bash", ["-c", script, "bash", "skiff", ...words], {
    encoding: "utf8",
    env: { ...process.env, SKIFF_HOME: home, PATH: `${bin}:${process.env.PATH ?? ""}` },
  });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return r.stdout.split("\n").filter((l) => l !== "");
}

describe("bash completion", { timeout: 60_000 }, () => {
  it("completes commands and subcommands", () => {
    expect(complete("net")).toEqual(["network"]);
    expect(complete("image", "p")).toEqual(["pull", "prune"]);
    expect(complete("compose", "-f", "x.yml", "u")).toEqual(["up", "unpause"]);
  });

  it("completes flags of the command being typed", () => {
    expect(complete("run", "--mem")).toEqual(["--memory"]);
    expect(complete("image", "prune", "-")).toEqual(["-a", "--all", "-h", "--help"]);
  });

  it("completes VM names where a VM is asked for, after flags and their values", () => {
    expect(complete("stop", "-t", "5", "web")).toEqual(["webserver"]);
    expect(complete("start", "webserver", "")).toEqual(["webserver"]);
    expect(complete("exec", "")).toEqual(["webserver"]);
  });

  it("completes network names for network verbs and --network", () => {
    expect(complete("network", "rm", "")).toEqual(["backnet"]);
    expect(complete("run", "--network", "b")).toEqual(["backnet"]);
  });
});

describe("__complete", { timeout: 30_000 }, () => {
  it("lists names one a line, and nothing for an empty home", async () => {
    expect(runCli(["__complete", "vms"], { SKIFF_HOME: home })).toMatchObject({ code: 0, stdout: "webserver\n" });
    const empty = await makeTempHome();
    try {
      expect(runCli(["__complete", "volumes"], { SKIFF_HOME: empty.home })).toMatchObject({ code: 0, stdout: "", stderr: "" });
    } finally {
      await empty.cleanup();
    }
  });

  it("is not in the help", () => {
    expect(runCli(["--help"]).stdout).not.toContain("__complete");
  });
});

describe("zsh and fish scripts (text)", { timeout: 30_000 }, () => {
  const tree = completionTree(buildProgram(makeContext({ debug: false, json: false })));

  it("the tree has every verb with its flags", () => {
    const run = tree.find((n) => n.path === "run");
    expect(run?.flags).toEqual(expect.arrayContaining(["-m", "--memory", "--network"]));
    expect(run?.valued).toContain("--memory");
    expect(run?.flagKinds["--network"]).toBe("networks");
    expect(tree.find((n) => n.path === "network rm")?.args).toEqual(["networks*"]);
    expect(tree.find((n) => n.path === "")?.verbs).not.toContain("__complete");
  });

  it("zsh loads the bash function through bashcompinit", () => {
    const zsh = runCli(["completion", "zsh"]).stdout;
    expect(zsh.split("\n")[0]).toBe("#compdef skiff");
    expect(zsh).toContain("autoload -U +X bashcompinit && bashcompinit");
    expect(zsh).toContain("emulate -L ksh");
    expect(zsh).toContain("complete -F _skiff_complete skiff");
  });

  it("fish has a guarded complete line per verb, flag and name kind", () => {
    const fish = runCli(["completion", "fish"]).stdout;
    expect(fish).toContain(`complete -c skiff -f -n '__skiff_at '\\'''\\''' -a 'network'`);
    expect(fish).toContain(`complete -c skiff -n '__skiff_at '\\''run'\\''' -l 'memory' -r`);
    expect(fish).toContain(`complete -c skiff -n '__skiff_at '\\''run'\\''' -l 'network' -x -a '(skiff __complete networks)'`);
    expect(fish).toContain(`complete -c skiff -f -n '__skiff_at '\\''stop'\\''' -a '(skiff __complete vms)'`);
    // Balanced blocks: every function, for, if and switch has its end.
    const opens = fish.match(/^\s*(function|for|if|switch)\b/gm)?.length ?? 0;
    const ends = fish.match(/^\s*end$/gm)?.length ?? 0;
    expect(ends).toBe(opens);
  });
});
