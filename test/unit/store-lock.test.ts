import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { acquireLock, lockAddress, lockHolder, tryLock, withLock } from "../../src/store/lock.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

const viteNode = fileURLToPath(new URL("../../node_modules/vite-node/vite-node.mjs", import.meta.url));
const holderScript = fileURLToPath(new URL("./fixtures/lock-holder.ts", import.meta.url));

let home: string;
let cleanup: () => Promise<void>;
const children: ChildProcess[] = [];

beforeAll(async () => {
  ({ home, cleanup } = await makeTempHome());
});
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
});
afterAll(() => cleanup());

/** A separate process holding lock `name` under `home`. */
function holdInChild(name: string): Promise<ChildProcess> {
  const child = fork(viteNode, [holderScript, home, name], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once("message", () => resolve(child));
    child.once("exit", (code) => reject(new Error(`lock holder exited early (${code})`)));
  });
}

describe("lockAddress", () => {
  it("is abstract, and differs by home and by name", () => {
    const a = lockAddress("/h1", "names");
    expect(a.startsWith("\0skiff-")).toBe(true);
    expect(lockAddress("/h2", "names")).not.toBe(a);
    expect(lockAddress("/h1", "other")).not.toBe(a);
    expect(lockAddress("/h1/", "names")).toBe(a);
  });

  it("rejects names that are not plain words", () => {
    expect(() => lockAddress("/h", "a/b")).toThrow(/invalid lock name/);
    expect(() => lockAddress("/h", "")).toThrow(/invalid lock name/);
  });
});

describe("in one process", () => {
  it("is exclusive until released", async () => {
    const first = await tryLock("solo", { home });
    expect(first).toBeDefined();
    expect(await tryLock("solo", { home })).toBeUndefined();
    await first!.release();
    await first!.release(); // idempotent
    const again = await tryLock("solo", { home });
    expect(again).toBeDefined();
    await again!.release();
  });

  it("does not contend across homes", async () => {
    const { home: other, cleanup: cleanOther } = await makeTempHome();
    const a = await tryLock("shared", { home });
    const b = await tryLock("shared", { home: other });
    expect(a && b).toBeDefined();
    await Promise.all([a!.release(), b!.release(), cleanOther()]);
  });

  it("withLock serialises and releases even when fn throws", async () => {
    const order: string[] = [];
    const slow = withLock("serial", async () => {
      order.push("a-in");
      await new Promise((r) => setTimeout(r, 50));
      order.push("a-out");
    }, { home });
    await new Promise((r) => setTimeout(r, 5));
    const fast = withLock("serial", () => order.push("b"), { home });
    await Promise.all([slow, fast]);
    expect(order).toEqual(["a-in", "a-out", "b"]);

    await expect(withLock("serial", () => { throw new Error("boom"); }, { home })).rejects.toThrow("boom");
    const after = await tryLock("serial", { home });
    expect(after).toBeDefined();
    await after!.release();
  });

  it("queues local waiters in order, and a waiter that gives up does not break the queue", async () => {
    const first = await acquireLock("queue", { home });
    const order: number[] = [];
    const waiters = [1, 2, 3].map((n) => withLock("queue", () => order.push(n), { home }));
    await expect(acquireLock("queue", { home, timeoutMs: 50 })).rejects.toMatchObject({
      code: "ERR_SKIFF_LOCKED",
      details: { holder: { pid: process.pid } },
    });
    const started = Date.now();
    await first.release();
    await Promise.all(waiters);
    expect(order).toEqual([1, 2, 3]);
    expect(Date.now() - started).toBeLessThan(100);
    const last = await acquireLock("queue", { home, timeoutMs: 0 });
    await last.release();
  });

  it("tells waiters who holds it", async () => {
    const held = await tryLock("who", { home, purpose: "testing" });
    expect(await lockHolder("who", { home })).toEqual({ pid: process.pid, purpose: "testing" });
    await held!.release();
    expect(await lockHolder("who", { home })).toBeUndefined();
  });
});

describe("across processes", () => {
  it("times out with ERR_SKIFF_LOCKED naming the holder", async () => {
    const child = await holdInChild("busy");
    const started = Date.now();
    await expect(acquireLock("busy", { home, timeoutMs: 300 })).rejects.toMatchObject({
      code: "ERR_SKIFF_LOCKED",
      message: expect.stringContaining(`pid ${child.pid} (lock-holder fixture)`),
      details: { lock: "busy", holder: { pid: child.pid } },
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(await tryLock("busy", { home })).toBeUndefined();
  }, 20_000);

  it("passes to a waiter as soon as the holder is SIGKILLed", async () => {
    const child = await holdInChild("crash");
    const waiting = acquireLock("crash", { home, timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 300));
    const killedAt = Date.now();
    child.kill("SIGKILL");
    const handle = await waiting;
    // Backoff is capped at 300 ms (200 ms + jitter); allow scheduling slack.
    expect(Date.now() - killedAt).toBeLessThan(1_000);
    await handle.release();
  }, 20_000);
});
