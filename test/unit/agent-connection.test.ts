import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable, Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SkiffError } from "../../src/errors.js";
import { connectAgent, waitForAgent, type AgentConnectOptions, type AgentConnection } from "../../src/guest/agent.js";
import { tryLock, type LockHandle } from "../../src/store/lock.js";
import { FakeGuest, skiffFailure, type FakeGuestOptions } from "./fixtures/agent-fake-guest.js";

let dir: string;
let guest: FakeGuest | undefined;
const open: AgentConnection[] = [];
const locks: LockHandle[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "skiff-agent-"));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  await Promise.all(locks.splice(0).map((l) => l.release()));
  await guest?.close();
  guest = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function startGuest(opts: Partial<FakeGuestOptions> = {}): Promise<FakeGuest> {
  guest = await FakeGuest.start({ dir: join(dir, "vm"), ...opts });
  return guest;
}

function options(g: FakeGuest, extra: Partial<AgentConnectOptions> = {}): AgentConnectOptions {
  return {
    socketPaths: g.socketPaths,
    lockPrefix: "vm-test",
    home: dir,
    privateKeyPath: g.privateKeyPath,
    hostPublicKey: g.hostPublicKey,
    vmName: "test",
    timeoutMs: 3_000,
    ...extra,
  };
}

async function connect(g: FakeGuest, extra: Partial<AgentConnectOptions> = {}): Promise<AgentConnection> {
  const conn = await connectAgent(options(g, extra));
  open.push(conn);
  return conn;
}


function sink(): Writable & { text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      done();
    },
  });
  return Object.assign(stream, { text: () => Buffer.concat(chunks).toString("utf8") });
}

describe("connectAgent", () => {
  it("connects on the first free port and holds its lock until closed", async () => {
    const g = await startGuest();
    const conn = await connect(g);
    expect(conn.port).toBe(0);
    expect(await tryLock("vm-test-agent-0", { home: dir })).toBeUndefined();
    await conn.close();
    expect(conn.isOpen).toBe(false);
    const lock = await tryLock("vm-test-agent-0", { home: dir });
    expect(lock).toBeDefined();
    await lock?.release();
  });

  it("skips ports locked by other skiff processes and ports that do not answer", async () => {
    const g = await startGuest({ ports: 3, silentPorts: [1] });
    locks.push((await tryLock("vm-test-agent-0", { home: dir }))!);
    const conn = await connect(g, { portBudgetMs: 200 });
    expect(conn.port).toBe(2);
  });

  it("gets through a guest that misses the first HELLO", async () => {
    const g = await startGuest({ dropFirstHello: true });
    const conn = await connect(g);
    expect((await conn.run(["echo", "hi"])).stdout).toBe("hi\n");
  });

  it("says the VM is not running when nothing listens", async () => {
    const g = await startGuest();
    await g.close();
    expect((await skiffFailure(connectAgent(options(g)))).code).toBe("ERR_SKIFF_VM_NOT_RUNNING");
  });

  it("says the VM is busy when every port stays locked past the busy deadline", async () => {
    const g = await startGuest();
    for (const i of [0, 1]) locks.push((await tryLock(`vm-test-agent-${i}`, { home: dir }))!);
    const err = await skiffFailure(connectAgent(options(g, { timeoutMs: 300, busyTimeoutMs: 600 })));
    expect(err.code).toBe("ERR_SKIFF_VM_BUSY");
    expect(err.message).toContain("stayed in use for 0.6 s");
  });

  it("waits for a port that another process lets go, however long past its answer deadline", async () => {
    const g = await startGuest();
    for (const i of [0, 1]) locks.push((await tryLock(`vm-test-agent-${i}`, { home: dir }))!);
    setTimeout(() => void locks[1]!.release(), 1_000);
    const t0 = Date.now();
    const conn = await connect(g, { timeoutMs: 300 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(conn.port).toBe(1);
    expect((await conn.run(["echo", "queued"])).stdout).toBe("queued\n");
  });

  it("says the agent did not answer, with a hint to read the logs", async () => {
    const g = await startGuest({ silentPorts: [0, 1] });
    const err = await skiffFailure(connectAgent(options(g, { timeoutMs: 600, portBudgetMs: 150 })));
    expect(err.code).toBe("ERR_SKIFF_AGENT");
    expect(err.message).toContain("did not answer on test");
    expect(err.hint).toContain("skiff logs test");
  });

  it("refuses a guest whose host key is not the VM's", async () => {
    const g = await startGuest({ wrongHostKey: true });
    const err = await skiffFailure(connectAgent(options(g)));
    expect(err.code).toBe("ERR_SKIFF_AGENT");
    expect(err.message).toMatch(/host key/);
  });
});

describe("waitForAgent", () => {
  it("waits for sockets that appear after it started", async () => {
    const g = await startGuest({ listenAfterMs: 400 });
    const conn = await waitForAgent({ ...options(g), timeoutMs: 5_000 });
    open.push(conn);
    expect((await conn.run(["echo", "up"])).stdout).toBe("up\n");
  });

  it("gives up at its deadline", async () => {
    const g = await startGuest();
    await g.close();
    const err = await skiffFailure(waitForAgent({ ...options(g), timeoutMs: 400 }));
    expect(err.code).toBe("ERR_SKIFF_AGENT");
  });

  it("stops when aborted", async () => {
    const g = await startGuest();
    await g.close();
    const abort = new AbortController();
    setTimeout(() => abort.abort(new SkiffError("ERR_SKIFF_BOOT_FAILED", "QEMU exited")), 100);
    const err = await skiffFailure(waitForAgent({ ...options(g), timeoutMs: 5_000, signal: abort.signal }));
    expect(err.code).toBe("ERR_SKIFF_BOOT_FAILED");
  });
});

describe("AgentConnection.exec", () => {
  it("separates stdout and stderr and reports the exit code", async () => {
    const conn = await connect(await startGuest());
    expect(await conn.run(["fail", "3", "it", "broke"])).toEqual({ code: 3, stdout: "", stderr: "it broke\n" });
    expect(await conn.run(["nothing-here"])).toMatchObject({ code: 127, stderr: "skiff: nothing-here: command not found\n" });
  });

  it("sends argv, env, user, cwd and a pidfile as one encoded request", async () => {
    const g = await startGuest();
    const conn = await connect(g);
    const out = await conn.run(["request", "a b", ""], { env: { K: "v=1" }, user: "1000", cwd: "/srv" });
    expect(JSON.parse(out.stdout)).toMatchObject({ argv: ["request", "a b", ""], env: ["K=v=1"], user: "1000", cwd: "/srv", pidfile: "agent0-0" });
  });

  it("streams stdin to the command and ends it with EOF", async () => {
    const conn = await connect(await startGuest());
    const stdout = sink();
    const result = await conn.exec({ argv: ["cat"] }, { stdin: Readable.from(["one\n", "two\n"]), stdout });
    expect(result).toEqual({ code: 0 });
    expect(stdout.text()).toBe("one\ntwo\n");
    expect(await conn.run(["cat"], { input: "given" })).toMatchObject({ code: 0, stdout: "given" });
  });

  it("delivers signals while stdin is open, after EOF, and through skiff-kill for other signals", async () => {
    const g = await startGuest();
    const conn = await connect(g);
    const stdin = new PassThrough();
    const withStdin = await conn.start({ argv: ["sleep"] }, { stdin });
    await withStdin.sendSignal("INT");
    expect(await withStdin.done).toEqual({ code: 130, signal: "INT" });

    const afterEof = await conn.start({ argv: ["sleep"] });
    await afterEof.sendSignal("SIGTERM");
    expect(await afterEof.done).toEqual({ code: 143, signal: "TERM" });

    // XCPU has no RFC 4254 name: it goes through skiff-kill, and the guest cannot name it back.
    const other = await conn.start({ argv: ["sleep"] });
    await other.sendSignal("XCPU");
    expect(await other.done).toEqual({ code: 255 });
    expect(g.execs.at(-1)?.argv).toEqual(["/dev/.skiff/bin/skiff-kill", "agent0-0", "24"]);

    await expect(other.sendSignal("INT")).resolves.toBeUndefined(); // already ended: a no-op
    expect((await skiffFailure(other.sendSignal("NOPE"))).code).toBe("ERR_SKIFF_BAD_SIGNAL");
  });

  it("kills a command that outlives its timeout", async () => {
    const conn = await connect(await startGuest());
    const started = Date.now();
    const err = await skiffFailure(conn.exec({ argv: ["sleep"] }, { timeoutMs: 200 }));
    expect(err.code).toBe("ERR_SKIFF_TIMEOUT");
    expect(err.message).toContain("`sleep` in VM test");
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await conn.run(["echo", "still", "here"])).stdout).toBe("still here\n");
  });

  it("runs commands in parallel, each on a session of its own", async () => {
    const g = await startGuest({ ports: 4 });
    const conn = await connect(g);
    const sleepers = await Promise.all([0, 1, 2].map(() => conn.start({ argv: ["sleep"] })));
    expect(g.sessions).toEqual([1, 1, 1, 0]);
    const outputs = await Promise.all(Array.from({ length: 6 }, (_, i) => conn.run(["echo", String(i)])));
    expect(outputs.map((o) => o.stdout)).toEqual(["0\n", "1\n", "2\n", "3\n", "4\n", "5\n"]);
    for (const s of sleepers) await s.sendSignal("KILL");
    expect(await Promise.all(sleepers.map((s) => s.done))).toEqual([0, 1, 2].map(() => ({ code: 137, signal: "KILL" })));
  });

  it("queues commands beyond its ports until a session falls idle, never sharing a busy one", async () => {
    const g = await startGuest({ ports: 2 });
    const conn = await connect(g);
    const sleepers = await Promise.all([0, 1].map(() => conn.start({ argv: ["sleep"] })));
    let answered = false;
    const queued = Promise.all(Array.from({ length: 4 }, (_, i) => conn.run(["echo", String(i)]))).finally(() => (answered = true));
    // Longer than the pool once waited before sharing a busy session.
    await new Promise((r) => setTimeout(r, 2_500));
    expect(answered).toBe(false);
    expect(g.sessions).toEqual([1, 1]);
    await sleepers[0]!.sendSignal("KILL");
    expect((await queued).map((o) => o.stdout)).toEqual(["0\n", "1\n", "2\n", "3\n"]);
    await sleepers[1]!.sendSignal("KILL");
    await Promise.all(sleepers.map((s) => s.done));
  });

  it("fails running commands with ERR_SKIFF_AGENT when the guest goes away", async () => {
    const g = await startGuest();
    const conn = await connect(g);
    const sleeper = await conn.start({ argv: ["sleep"] });
    g.dropConnections();
    const err = await skiffFailure(sleeper.done);
    expect(err.code).toBe("ERR_SKIFF_AGENT");
    expect(err.message).toContain("lost the connection");
    await conn.close();
    expect((await skiffFailure(conn.run(["echo"]))).code).toBe("ERR_SKIFF_AGENT");
  });

  it("opens a login shell", async () => {
    const conn = await connect(await startGuest());
    const stdout = sink();
    const shell = await conn.shell({ tty: { cols: 100, rows: 40 } }, { stdout, stdin: new PassThrough() });
    shell.setWindow({ cols: 120, rows: 50 });
    expect(await shell.done).toEqual({ code: 0 });
    expect(stdout.text()).toBe("fake login shell\n");
  });
});
