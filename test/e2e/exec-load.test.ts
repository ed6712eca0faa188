/**
 * Many execs into one VM: more `skiff exec` processes at once than the VM
 * has agent ports (they queue for a port), and SSH sessions among native
 * ones (dropbear started for each and gone with it; no zombies).
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

  it("starts dropbear only for SSH sessions: none is left waiting after native and SSH execs, and no zombie after 30 execs", async () => {
    // A relay used to start a dropbear at boot and keep one waiting: eight of them at once, on the
    // guest's one emulated CPU, were ~0.35 s of every cold boot, for what only SSH sessions use.
    for (let i = 0; i < 30; i++) {
      const ssh = i % 10 === 9;
      const r = await h.run(["exec", vm, "echo", String(i)], { timeoutMs: 60_000, ...(ssh ? { env: { SKIFF_AGENT_PROTOCOL: "ssh" } } : {}) });
      expect(r).toMatchObject({ code: 0, stdout: `${i}\n` });
    }
    const waiting = await h.run(["exec", vm, busybox, "pidof", "dropbear"]);
    expect(waiting).toMatchObject({ code: 1, stdout: "" });
    expect(await zombies()).toEqual([]);
  }, 900_000);
});
