/**
 * Many execs into one VM: more `skiff exec` processes at once than the VM
 * has agent ports (they queue for a port), and the guest's agent after its
 * waiting dropbears ended on their own (no zombies, no dead sessions).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Harness } from "../vm/harness.js";

const h = new Harness();
const vm = "load";
const busybox = "/dev/.skiff/bin/busybox";

beforeAll(async () => {
  await h.ok(["run", "-d", "--name", vm, "base"]);
});
afterAll(async () => {
  await h.cleanup();
});

async function zombies(): Promise<string[]> {
  const ps = await h.ok(["exec", vm, busybox, "ps", "-o", "pid,ppid,stat,comm"]);
  return ps.split("\n").filter((line) => / Z\s/.test(line));
}

describe("exec under load", () => {
  it("runs 24 `skiff exec` processes at once into a VM with 8 agent ports", async () => {
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) => h.run(["exec", vm, "sh", "-c", `sleep 1; echo exec-${i}`], { timeoutMs: 300_000 })),
    );
    expect(results.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    expect(results.map((r) => r.stdout.trim()).sort()).toEqual(Array.from({ length: 24 }, (_, i) => `exec-${i}`).sort());
  }, 900_000);

  it("replaces the agent's waiting dropbears when they end on their own, and leaves no zombie after 30 execs", async () => {
    // dropbear gives up on a client that has not authenticated within 5 minutes, so every idle
    // port's dropbear ends on its own; ending them (all but this command's own) stands for that wait.
    await h.ok(["exec", vm, "sh", "-c", `for p in $(${busybox} pidof dropbear); do [ "$p" = "$PPID" ] || kill "$p"; done`]);
    for (let i = 0; i < 30; i++) {
      const r = await h.run(["exec", vm, "echo", String(i)], { timeoutMs: 60_000 });
      expect(r).toMatchObject({ code: 0, stdout: `${i}\n` });
    }
    expect(await zombies()).toEqual([]);
  }, 900_000);
});
