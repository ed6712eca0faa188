import { fork, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, writeFile } from "node:fs/promises";
import { closeSync, openSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { currentProcess } from "../../src/process/pid.js";
import { lockExclusive } from "../../src/store/flock.js";
import { acquireLock, lockHolder, lockPath, tryLock, withLock } from "../../src/store/lock.js";
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

describe("lockPath", () => {
  it("is a file in the home's locks directory, one per name", () => {
    expect(lockPath("/h1", "names")).toBe("/h1/locks/names.lock");
    expect(lockPath("/h1/", "names")).toBe("/h1/locks/names.lock");
    expect(lockPath("/h2", "names")).not.toBe(lockPath("/h1", "names"));
    expect(lockPath("/h1", "other")).not.toBe(lockPath("/h1", "names"));
  });

  it("rejects names that are not plain words", () => {
    expect(() => lockPath("/h", "a/b")).toThrow(/invalid lock name/);
    expect(() => lockPath("/h", "../x")).toThrow(/invalid lock name/);
    expect(() => lockPath("/h", "")).toThrow(/invalid lock name/);
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

  it("contends with a second open file description of the same process, as with another process", async () => {
    const held = await tryLock("twice", { home });
    const fd = openSync(lockPath(home, "twice"), "r+");
    try {
      expect(lockExclusive(fd)).toBe(false);
      await held!.release();
      expect(lockExclusive(fd)).toBe(true);
      expect(await tryLock("twice", { home })).toBeUndefined();
    } finally {
      closeSync(fd);
    }
  });

  it("reports flock's errors by their errno name", () => {
    expect(() => lockExclusive(-1)).toThrow(expect.objectContaining({ code: "EBADF", syscall: "flock" }));
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

  it("keeps a waiter waiting past its timeout while the lock changes hands, and gives up once it stands still", async () => {
    const first = await tryLock("line", { home, purpose: "first" });
    const started = Date.now();
    const waiting = acquireLock("line", { home, timeoutMs: 400 });
    await new Promise((r) => setTimeout(r, 300));
    // Handed straight to another holder (of the same process and purpose: still a new taking).
    await first!.release();
    const second = await tryLock("line", { home, purpose: "first" });
    expect(second).toBeDefined();
    await new Promise((r) => setTimeout(r, 300));
    await second!.release();
    const handle = await waiting;
    expect(Date.now() - started).toBeGreaterThan(550);
    await handle.release();

    const still = await tryLock("line", { home });
    const t0 = Date.now();
    await expect(acquireLock("line", { home, timeoutMs: 300 })).rejects.toMatchObject({
      code: "ERR_SKIFF_LOCKED",
      message: expect.stringContaining("did not change hands for 300 ms"),
    });
    expect(Date.now() - t0).toBeLessThan(1_000);
    await still!.release();
  });

  it("tells waiters who holds it", async () => {
    const held = await tryLock("who", { home, purpose: "testing" });
    expect(await lockHolder("who", { home })).toEqual({ pid: process.pid, purpose: "testing" });
    await held!.release();
    expect(await lockHolder("who", { home })).toBeUndefined();
  });

  it("writes a purpose without control characters, and believes only what a live holder wrote", async () => {
    const held = await tryLock("told", { home, purpose: "create\nVM \u001b[2Jweb" });
    expect(await lockHolder("told", { home })).toEqual({ pid: process.pid, purpose: "create VM  [2Jweb" });
    const path = lockPath(home, "told");
    const me = currentProcess();
    const says = async (words: unknown) => {
      await writeFile(path, typeof words === "string" ? words : JSON.stringify(words));
      return lockHolder("told", { home });
    };
    expect(await says({ ...me, purpose: "ok" })).toEqual({ pid: me.pid, purpose: "ok" });
    // The same pid with another start time is a process that has since died.
    expect(await says({ pid: me.pid, startTime: me.startTime - 1, purpose: "ok" })).toBeUndefined();
    expect(await says({ pid: String(me.pid), startTime: me.startTime })).toBeUndefined();
    expect(await says({ pid: -1, startTime: 0 })).toBeUndefined();
    expect(await says("not json")).toBeUndefined();
    expect(await says({ ...me, purpose: "\u001b]0;pwned\u0007" })).toEqual({ pid: me.pid });
    expect(await says({ ...me, purpose: "x".repeat(201) })).toEqual({ pid: me.pid });
    await held!.release();
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

  it("is free the moment a SIGKILLed holder is gone, with nothing to clean up", async () => {
    const child = await holdInChild("killed");
    expect(await tryLock("killed", { home })).toBeUndefined();
    expect(await lockHolder("killed", { home })).toEqual({ pid: child.pid, purpose: "lock-holder fixture" });
    const gone = new Promise((done) => child.once("exit", done));
    child.kill("SIGKILL");
    await gone;
    // Its words are still in the file, but their writer is dead: not quoted.
    expect(await lockHolder("killed", { home })).toBeUndefined();
    const handle = await tryLock("killed", { home });
    expect(handle).toBeDefined();
    await handle!.release();
  }, 20_000);
});

/**
 * What an unprivileged local user tries against skiff's lock `name`: take
 * the lock file, read it, list and fill the locks directory, and bind the
 * abstract unix socket that was the lock before it was a file (binding it
 * first used to block skiff and let the squatter name itself the holder).
 * Reports each try's outcome, then stays, keeping what it got.
 */
const squatterScript = `
const fs = require("node:fs");
const [name, file] = process.argv.slice(1);
const dir = require("node:path").dirname(file);
const tries = {};
const attempt = (what, fn) => { try { fn(); tries[what] = "ok"; } catch (e) { tries[what] = e.code; } };
const kept = [];
attempt("open", () => kept.push(fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o666)));
attempt("read", () => kept.push(fs.openSync(file, "r")));
attempt("list", () => fs.readdirSync(dir));
attempt("plant", () => kept.push(fs.openSync(dir + "/planted.lock", "wx")));
const server = require("node:net").createServer((c) => c.end('{"pid":1,"purpose":"squatting"}\\n'));
server.on("error", (e) => { tries.bind = e.code; process.send(tries); });
server.listen("\\0" + name, () => { tries.bind = "ok"; process.send(tries); });
setInterval(() => {}, 60_000);
`;

describe("against other local users", () => {
  it("an unprivileged user can neither take nor block skiff's locks", async () => {
    const { home: open, cleanup: cleanOpen } = await makeTempHome();
    try {
      // A home others may read and search: the locks directory alone must keep them out.
      await chmod(open, 0o755);
      const first = await tryLock("names", { home: open });
      await first!.release();
      const oldName = `skiff-${createHash("sha256").update(open).digest("hex").slice(0, 16)}-names`;
      const squatter = spawn(process.execPath, ["-e", squatterScript, oldName, lockPath(open, "names")], {
        uid: 65534,
        gid: 65534,
        cwd: "/",
        stdio: ["ignore", "ignore", "inherit", "ipc"],
      });
      children.push(squatter);
      const tries = await new Promise((resolve, reject) => {
        squatter.once("message", resolve);
        squatter.once("exit", (code) => reject(new Error(`squatter exited early (${code})`)));
      });
      expect(tries).toEqual({ open: "EACCES", read: "EACCES", list: "EACCES", plant: "EACCES", bind: "ok" });
      const handle = await acquireLock("names", { home: open, timeoutMs: 0, purpose: "create VM web" });
      expect(await lockHolder("names", { home: open })).toEqual({ pid: process.pid, purpose: "create VM web" });
      await handle.release();
    } finally {
      await cleanOpen();
    }
  }, 20_000);
});
