import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, copyFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { currentProcess, identityAlive, processAlive, processStartTime, readPidfile } from "../../src/process/pid.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ home: dir, cleanup } = await makeTempHome());
});
afterAll(() => cleanup());

describe("processAlive", () => {
  it("knows this process, by pid and by identity", () => {
    const me = currentProcess();
    expect(me.pid).toBe(process.pid);
    expect(processStartTime(process.pid)).toBe(me.startTime);
    expect(processAlive(process.pid)).toBe(true);
    expect(identityAlive(me)).toBe(true);
  });

  it("treats a reused pid (other start time) as dead", () => {
    expect(processAlive(process.pid, currentProcess().startTime + 1)).toBe(false);
  });

  it("treats absent and invalid pids as dead", () => {
    expect(processAlive(2 ** 22 + 1)).toBe(false);
    expect(processAlive(0)).toBe(false);
    expect(processAlive(-1)).toBe(false);
    expect(processStartTime(2 ** 22 + 1)).toBeUndefined();
  });

  it("treats a zombie as dead", async () => {
    // The child exits at once; its parent never waits for it (a shell might reap it early, perl does not).
    const sh = spawn("perl", ["-e", "$| = 1; my $p = fork(); exit 0 unless $p; print \"$p\\n\"; sleep 5"], { stdio: ["ignore", "pipe", "ignore"] });
    const zombie = await new Promise<number>((resolve) => sh.stdout.once("data", (d: Buffer) => resolve(Number(d.toString()))));
    try {
      for (let i = 0; i < 50 && !readFileSync(`/proc/${zombie}/stat`, "utf8").includes(") Z "); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(existsSync(`/proc/${zombie}`)).toBe(true);
      expect(processAlive(zombie)).toBe(false);
    } finally {
      sh.kill("SIGKILL");
    }
  });

  it("parses a process name with spaces and parentheses", async () => {
    // The name (comm) is field 2 of /proc/<pid>/stat, in parentheses, unescaped.
    const odd = join(dir, "a) b (c");
    await copyFile("/bin/sleep", odd);
    await chmod(odd, 0o755);
    const child = spawn(odd, ["5"], { stdio: "ignore" });
    try {
      await new Promise((r) => child.once("spawn", r));
      expect(readFileSync(`/proc/${child.pid}/stat`, "utf8")).toContain("(a) b (c)");
      const startTime = processStartTime(child.pid!);
      expect(startTime).toBeGreaterThanOrEqual(currentProcess().startTime);
      expect(processAlive(child.pid!, startTime)).toBe(true);
    } finally {
      child.kill("SIGKILL");
    }
  });
});

describe("readPidfile", () => {
  it("reads a pid, and treats missing or empty files as no pid yet", async () => {
    const path = join(dir, "qemu.pid");
    expect(await readPidfile(path)).toBeUndefined();
    await writeFile(path, "");
    expect(await readPidfile(path)).toBeUndefined();
    await writeFile(path, "1234\n");
    expect(await readPidfile(path)).toBe(1234);
  });

  it("reports garbage as a corrupt state file", async () => {
    const path = join(dir, "bad.pid");
    await writeFile(path, "12ab\n");
    await expect(readPidfile(path)).rejects.toMatchObject({ code: "ERR_SKIFF_STATE_CORRUPT" });
  });
});
