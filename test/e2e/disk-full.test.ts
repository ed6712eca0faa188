/**
 * A host disk that fills up under VMs, with the skiff home on a small tmpfs
 * this test mounts: QEMU pauses a guest whose writes fail for want of space
 * (runstate io-error), which ps and inspect show as `paused (disk full)`,
 * exec refuses with a hint, and `skiff start` resumes once there is space;
 * `run -d` on a home too full to start a VM fails with ERR_SKIFF_NO_SPACE
 * and leaves nothing behind. Then pause/unpause and their aliases, and
 * stop and kill of a paused VM.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliPath, Harness } from "../vm/harness.js";

const h = new Harness();
const vm = "full";
const MiB = 1024 * 1024;

beforeAll(async () => {
  h.mountTmpfs(160);
  await h.ok(["run", "-d", "--name", vm, "base"]);
});
afterAll(async () => {
  await h.cleanup();
});

function inspect(): { state: string; pauseReason?: string; exit?: { reason?: string } } {
  return JSON.parse(execFileSync(process.execPath, [cliPath, "inspect", vm], { env: h.env }).toString())[0];
}

async function psState(): Promise<string> {
  const line = (await h.ok(["ps", "-a"])).split("\n").find((l) => l.startsWith(`${vm} `)) ?? "";
  return line.split(/\s{2,}/)[1] ?? "";
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

describe("a guest whose host disk fills up", () => {
  it("shows as paused (disk full), refuses exec with a hint, and runs on after `skiff start` once there is space", async () => {
    // Leave 16 MiB free, then write 48 MiB from the guest: its disk grows past what the host has.
    const free = statfsSync(h.home);
    const ballast = join(h.home, "ballast");
    execFileSync("fallocate", ["-l", String(free.bavail * free.bsize - 16 * MiB), ballast]);
    const dd = h.run(["exec", vm, "dd", "if=/dev/zero", "of=/root/fill", "bs=1M", "count=48", "conv=fsync"], { timeoutMs: 300_000 });

    await until("the guest to pause", async () => (await psState()) === "paused (disk full)");
    expect(inspect()).toMatchObject({ state: "paused", pauseReason: "disk full" });

    const exec = await h.run(["exec", vm, "true"], { timeoutMs: 30_000 });
    expect(exec.code).toBe(4);
    expect(exec.stderr).toContain("ERR_SKIFF_VM_PAUSED");
    expect(exec.stderr).toContain(`skiff unpause ${vm}`);

    // Still full: resuming fails with the reason, and the guest stays paused.
    const early = await h.run(["start", vm]);
    expect(early.code).toBe(5);
    expect(early.stderr).toContain("ERR_SKIFF_NO_SPACE");
    expect(await psState()).toBe("paused (disk full)");

    rmSync(ballast);
    await h.ok(["start", vm]);
    expect((await dd).code).toBe(0);
    expect(await psState()).toMatch(/^running \(/);
    expect((await h.ok(["exec", vm, "stat", "-c", "%s", "/root/fill"])).trim()).toBe(String(48 * MiB));
  });
});

describe("pause and unpause", () => {
  it("pause stops the guest (ps: paused), unpause and start let it run on; suspend/resume are the same verbs", async () => {
    expect(await h.ok(["pause", vm])).toBe(`${vm}\n`);
    expect(await psState()).toBe("paused");
    expect(inspect()).toMatchObject({ state: "paused", pauseReason: "user" });
    const exec = await h.run(["exec", vm, "true"], { timeoutMs: 30_000 });
    expect(exec.code).toBe(4);
    expect(exec.stderr).toMatch(/ERR_SKIFF_VM_PAUSED[\s\S]*skiff unpause full/);
    const cp = await h.run(["cp", "/etc/hostname", `${vm}:/tmp/x`], { timeoutMs: 30_000 });
    expect(cp.code).toBe(4);
    expect(cp.stderr).toContain("ERR_SKIFF_VM_PAUSED");
    // ps stays in the list of running VMs, and answers fast.
    const t0 = Date.now();
    expect(await h.ok(["ps", "-q"])).toBe(`${vm}\n`);
    expect(Date.now() - t0).toBeLessThan(10_000);

    await h.ok(["unpause", vm]);
    expect(await psState()).toMatch(/^running \(/);
    expect(await h.ok(["exec", vm, "echo", "on"])).toBe("on\n");

    await h.ok(["suspend", vm]);
    expect(await psState()).toBe("paused");
    await h.ok(["resume", vm]);
    expect(await psState()).toMatch(/^running \(/);
    await h.ok(["pause", vm]);
    await h.ok(["start", vm]);
    expect(await h.ok(["exec", vm, "echo", "on"])).toBe("on\n");
  });

  it("stops a paused VM by its power button, kills one, and removes one", async () => {
    await h.ok(["pause", vm]);
    await h.ok(["stop", vm]);
    expect(inspect()).toMatchObject({ state: "stopped", exit: { reason: "stopped" } });
    await h.ok(["start", vm]);
    await h.ok(["pause", vm]);
    await h.ok(["kill", vm]);
    expect(inspect().state).not.toMatch(/running|paused/);
    const r = await h.run(["pause", vm]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("ERR_SKIFF_VM_NOT_RUNNING");
    await h.ok(["start", vm]);
    await h.ok(["pause", vm]);
    await h.ok(["rm", "-f", vm]);
    expect(await h.ok(["ps", "-a", "-q"])).toBe("");
    expect(h.qemuProcessesUnderHome()).toEqual([]);
  });
});

describe("run -d on a home without room for a VM", () => {
  const tiny = new Harness();
  afterAll(async () => {
    await tiny.cleanup();
  });

  it("fails with ERR_SKIFF_NO_SPACE and a hint, and leaves no VM behind", async () => {
    tiny.mountTmpfs(3);
    const r = await tiny.run(["run", "-d", "--name", "cramped", "base"]);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/^skiff: error ERR_SKIFF_NO_SPACE: no space left on device while starting cramped/m);
    expect(r.stderr).toContain(`hint: free space on the filesystem holding ${tiny.home}`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await tiny.ok(["ps", "-a", "-q"])).toBe("");
    expect(readdirSync(join(tiny.home, "vms"))).toEqual([]);
    expect(readdirSync(join(tiny.home, "locks")).filter((f) => f.startsWith("vm-"))).toEqual([]);
    // No jail user is still claimed for a VM of this home.
    const claims = "/var/lib/skiff/jail-ids";
    const held = existsSync(claims) ? readdirSync(claims).filter((f) => readFileSync(join(claims, f), "utf8").includes(`"${tiny.home}"`)) : [];
    expect(held).toEqual([]);
  });
});
