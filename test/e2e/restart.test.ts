/**
 * Restart policies for the VM itself: when QEMU ends, its supervisor (the
 * jailer, staying as QEMU's parent) starts it again as the policy says, and
 * a VM stopped or killed on purpose stays down, as with Docker.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { Harness } from "../vm/harness.js";

const h = new Harness();
afterAll(() => h.cleanup());

interface Info {
  state: string;
  pid?: number;
}

async function info(name: string): Promise<Info> {
  return (JSON.parse(await h.ok(["inspect", name])) as Info[])[0]!;
}

/** Wait until `name` runs on a QEMU other than `old`; its new pid. */
async function restartedFrom(name: string, old: number, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = await info(name);
    if (i.state === "running" && i.pid !== undefined && i.pid !== old) return i.pid;
    if (Date.now() > deadline) throw new Error(`${name} was not restarted: ${JSON.stringify(i)}`);
    await sleep(250);
  }
}

/** Its state a few seconds (past the first backoff) after `what`. */
async function settled(name: string): Promise<Info> {
  await sleep(3_000);
  return info(name);
}

describe("--restart on-failure", () => {
  it("brings the VM back when QEMU dies, and exec works in it again", async () => {
    await h.ok(["run", "-d", "--name", "onf", "--restart", "on-failure", "base"]);
    const first = (await info("onf")).pid!;
    process.kill(first, "SIGKILL");
    const second = await restartedFrom("onf", first);
    expect(second).not.toBe(first);
    expect((await h.ok(["exec", "onf", "echo", "back"])).trim()).toBe("back");
    expect((await h.ok(["ps"]))).toMatch(/^onf\s+running/m);
  });

  it("leaves it down after a power-off from inside the guest (a clean end is not a failure)", async () => {
    await h.run(["exec", "onf", "kill", "-TERM", "1"]);
    const after = await settled("onf");
    expect(after.state).toBe("stopped");
  });
});

describe("--restart always", () => {
  it("brings the VM back even after the guest powers off", async () => {
    await h.ok(["run", "-d", "--name", "alw", "--restart", "always", "base"]);
    const first = (await info("alw")).pid!;
    await h.run(["exec", "alw", "kill", "-TERM", "1"]);
    await restartedFrom("alw", first);
  });

  it("but not after skiff stop, nor after skiff kill", async () => {
    await h.ok(["stop", "alw"]);
    expect((await settled("alw")).state).toBe("stopped");
    await h.ok(["start", "alw"]);
    await h.ok(["kill", "alw"]);
    expect((await settled("alw")).state).toBe("stopped");
    expect(h.qemuProcessesUnderHome()).toEqual([]);
  });

  it("is refused together with --rm", async () => {
    const r = await h.run(["run", "-d", "--rm", "--restart", "always", "base"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("ERR_SKIFF_USAGE (--restart)");
  });

  it("rm -f ends the supervisor with the VM: nothing restarts it afterwards", async () => {
    await h.ok(["start", "onf"]);
    await h.ok(["rm", "-f", "onf", "alw"]);
    await sleep(3_000);
    expect(h.qemuProcessesUnderHome()).toEqual([]);
  });
});
