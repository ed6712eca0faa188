/**
 * Concurrency and crash safety: parallel `run -d` get distinct names, and a
 * `skiff run` killed with SIGKILL leaves a state the next command repairs,
 * with no orphaned QEMU and no stale lock.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Harness } from "../vm/harness.js";

const h = new Harness();
afterAll(() => h.cleanup());

describe("concurrency and crashes", () => {
  it("8 concurrent run -d get 8 distinct names and all run", async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => h.run(["run", "-d", "--memory", "160m", "base"])));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const names = results.map((r) => r.stdout.trim());
    expect(new Set(names).size).toBe(8);
    const ps = JSON.parse(await h.ok(["ps", "--format", "json"])) as { name: string; state: string }[];
    expect(ps.map((v) => v.name).sort()).toEqual([...names].sort());
    expect(ps.every((v) => v.state === "running")).toBe(true);
    await h.ok(["rm", "-f", ...names]);
    expect(h.qemuProcessesUnderHome()).toEqual([]);
    expect(readdirSync(join(h.home, "vms")).filter((d) => !d.startsWith("."))).toEqual([]);
  }, 600_000);

  it("a SIGKILLed foreground run is cleaned up by the next command", async () => {
    const child = h.spawn(["run", "--rm", "--name", "orphan", "base", "sh", "-c", "echo booted; sleep 600"]);
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on("data", (d: Buffer) => d.toString().includes("booted") && resolve());
      child.on("exit", () => reject(new Error("run exited early")));
    });
    expect(h.qemuProcessesUnderHome().length).toBe(1);
    child.kill("SIGKILL");
    await new Promise((r) => child.on("exit", r));
    // The next command finds the VM's owner dead: it stops the VM and, --rm, removes it.
    const ps = await h.ok(["ps", "-a"]);
    expect(ps).not.toContain("orphan");
    expect(h.qemuProcessesUnderHome()).toEqual([]);
    expect(existsSync(join(h.home, "vms"))).toBe(true);
    expect(readdirSync(join(h.home, "vms")).filter((d) => !d.startsWith("."))).toEqual([]);
    // No stale lock: the name is free again at once.
    await h.ok(["create", "--name", "orphan", "base"]);
    await h.ok(["rm", "orphan"]);
  });

  it("a SIGKILLed run without --rm leaves a stopped VM, not a running orphan", async () => {
    const child = h.spawn(["run", "--name", "kept", "base", "sh", "-c", "echo booted; sleep 600"]);
    await new Promise<void>((resolve) => child.stdout?.on("data", (d: Buffer) => d.toString().includes("booted") && resolve()));
    child.kill("SIGKILL");
    await new Promise((r) => child.on("exit", r));
    const info = JSON.parse(await h.ok(["inspect", "kept"]))[0] as { state: string; exit: { reason: string } };
    expect(info.state).toBe("stopped");
    expect(info.exit.reason).toBe("owner-died");
    expect(h.qemuProcessesUnderHome()).toEqual([]);
    await h.ok(["rm", "kept"]);
  });
});
