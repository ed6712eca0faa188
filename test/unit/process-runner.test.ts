import { closeSync, openSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processAlive } from "../../src/process/pid.js";
import { ProcessRunner, type RunOptions, type RunResult, type Runner } from "../../src/process/runner.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ home: dir, cleanup } = await makeTempHome());
});
afterAll(() => cleanup());

const runner = new ProcessRunner();

async function waitFor(check: () => boolean | Promise<boolean>, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function readPid(path: string): Promise<number> {
  await waitFor(async () => (await readFile(path, "utf8").catch(() => "")).trim() !== "");
  return Number((await readFile(path, "utf8")).trim());
}

describe("run", () => {
  it("captures stdout, stderr and the exit code", async () => {
    const result = await runner.run("sh", ["-c", "echo out; echo err >&2; exit 3"]);
    expect(result).toEqual({ code: 3, signal: null, stdout: "out\n", stderr: "err\n" });
    expect(runner.liveCount).toBe(0);
  });

  it("feeds input to stdin", async () => {
    expect((await runner.run("cat", [], { input: "hello" })).stdout).toBe("hello");
  });

  it("passes descriptors of ours at the numbers asked, and nothing at the ones between", async () => {
    const path = join(dir, "passed");
    await writeFile(path, "through fd 7\n");
    const fd = openSync(path, "r");
    try {
      const r = await runner.run("sh", ["-c", "cat <&7; for n in 3 4 5 6; do [ -e /proc/self/fd/$n ] && readlink /proc/self/fd/$n; done; echo end"], {
        passFds: new Map([[7, fd]]),
      });
      // fds 3-6 are /dev/null or nothing, never one of ours.
      expect(r.stdout.startsWith("through fd 7\n")).toBe(true);
      expect(r.stdout.split("\n").slice(1, -2).every((l) => l === "/dev/null")).toBe(true);
    } finally {
      closeSync(fd);
    }
  });

  it("passes cwd and env", async () => {
    const result = await runner.run("sh", ["-c", 'pwd; echo "$X"'], { cwd: dir, env: { PATH: process.env.PATH, X: "y" } });
    expect(result.stdout).toBe(`${dir}\ny\n`);
  });

  it("with check, turns a failure into ERR_SKIFF_TOOL_FAILED carrying stderr", async () => {
    await expect(runner.run("sh", ["-c", "echo broken >&2; exit 2"], { check: true })).rejects.toMatchObject({
      code: "ERR_SKIFF_TOOL_FAILED",
      message: "sh exited with code 2: broken",
    });
  });

  it("names the Debian package of a missing tool", async () => {
    await expect(runner.run("skiff-no-such-tool", [], { debianPackage: "skiff-tools" })).rejects.toMatchObject({
      code: "ERR_SKIFF_TOOL_MISSING",
      hint: "install it: apt-get install skiff-tools",
    });
    await expect(runner.run("skiff-no-such-tool", [])).rejects.toMatchObject({ hint: expect.stringContaining("PATH") });
    expect(runner.liveCount).toBe(0);
  });

  it("reports a missing working directory as such", async () => {
    await expect(runner.run("true", [], { cwd: join(dir, "nope") })).rejects.toMatchObject({ code: "ERR_SKIFF_FILE_NOT_FOUND" });
  });

  it("kills the whole process tree on timeout", async () => {
    const pidfile = join(dir, "grandchild.pid");
    const started = Date.now();
    await expect(runner.run("sh", ["-c", `sleep 30 & echo $! > ${pidfile}; wait`], { timeoutMs: 300 })).rejects.toMatchObject({
      code: "ERR_SKIFF_TIMEOUT",
    });
    expect(Date.now() - started).toBeLessThan(2_000);
    const grandchild = await readPid(pidfile);
    await waitFor(() => !processAlive(grandchild));
  });

  it("ignores a child that does not read its input", async () => {
    const result = await runner.run("true", [], { input: "x".repeat(1 << 20) });
    expect(result.code).toBe(0);
  });
});

describe("killAll", () => {
  it("ends every live child and its descendants", async () => {
    const pidfile = join(dir, "tree.pid");
    const running = runner.run("sh", ["-c", `sleep 30 & echo $! > ${pidfile}; wait`]);
    const grandchild = await readPid(pidfile);
    expect(runner.liveCount).toBe(1);
    await runner.killAll();
    const result = await running;
    expect(result.signal).toBe("SIGTERM");
    expect(runner.liveCount).toBe(0);
    await waitFor(() => !processAlive(grandchild));
  });

  it("escalates to SIGKILL when SIGTERM is ignored", async () => {
    const ready = join(dir, "trap.ready");
    const running = runner.run("sh", ["-c", `trap '' TERM; echo 1 > ${ready}; while :; do sleep 0.05; done`]);
    await readPid(ready);
    const started = Date.now();
    await runner.killAll(200);
    expect((await running).signal).toBe("SIGKILL");
    expect(Date.now() - started).toBeLessThan(1_500);
  });
});

describe("Runner", () => {
  it("can be faked by tests", async () => {
    const calls: string[][] = [];
    const fake: Runner = {
      async run(cmd: string, args: readonly string[], _opts?: RunOptions): Promise<RunResult> {
        calls.push([cmd, ...args]);
        return { code: 0, signal: null, stdout: "7.2.0\n", stderr: "" };
      },
    };
    const version = async (r: Runner) => (await r.run("qemu-system-x86_64", ["--version"])).stdout.trim();
    expect(await version(fake)).toBe("7.2.0");
    expect(calls).toEqual([["qemu-system-x86_64", "--version"]]);
  });
});
