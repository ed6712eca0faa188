/**
 * What `skiff serve` holds and watches for its clients (the built CLI on
 * 127.0.0.1, two `base` sandboxes of 256m without a network, made through
 * the SDK's remote backend):
 *
 * - sandbox deadlines enforced by the server: a sandbox made with a short
 *   timeoutMs is running, then removed at its end while the client does
 *   nothing at all (the SDK has no timer remotely, and is not called); one
 *   whose end setTimeout moved is still running past its first end; a
 *   deadline set through the server is honoured by a server started again
 *   on the same home (it is a label of the VM);
 * - the agent connection the server keeps per VM: execs (REST and
 *   WebSocket) after a restart through the server and after a stop and
 *   start by the CLI beside it (the held connection is stale then) work,
 *   and many execs at once on one VM all succeed; a client that leaves an
 *   exec WebSocket has its command killed (the connection is not closed for it).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Skiff } from "../../dist/index.js";
import { SkiffHttpClient } from "../../dist/api/client.js";
import { Sandbox, type SandboxConnectOpts } from "../../dist/sdk/index.js";
import { Harness, sharedCache } from "./harness.js";
import { startServe, type ServeProcess } from "./serve-process.js";

const h = new Harness();
/** The home read directly (no SDK: its calls reap expired sandboxes themselves). */
const skiff = new Skiff({ home: h.home, cacheDir: sharedCache });
let server: ServeProcess | undefined;
let where: SandboxConnectOpts;
let client: SkiffHttpClient;

async function serve(): Promise<string> {
  server = await startServe(h);
  return server.url;
}

const stopServer = async () => void (await server?.stop());

async function connectTo(url: string): Promise<void> {
  const token = readFileSync(join(h.home, "serve-token"), "utf8").trim();
  where = { host: url, token };
  client = new SkiffHttpClient({ url, token });
}

/** Whether the VM is still in the home, by the library (no SDK call, no server). */
async function exists(name: string): Promise<boolean> {
  return (await skiff.list({ all: true })).some((vm) => vm.name === name);
}

/** Wait until `name` is gone; when it went. */
async function goneAt(name: string, withinMs: number): Promise<number> {
  for (const end = Date.now() + withinMs; Date.now() < end; await sleep(250)) {
    if (!(await exists(name))) return Date.now();
  }
  throw new Error(`${name} still there after ${withinMs} ms`);
}

const small = { memory: 256 } as const;

describe("skiff serve: sandbox deadlines and held agent connections", () => {
  let short: Sandbox;
  let long: Sandbox;

  beforeAll(async () => {
    await connectTo(await serve());
    // Long enough that a slow start on a loaded host is not past it yet when create returns.
    [short, long] = await Promise.all([Sandbox.create({ ...where, ...small, timeoutMs: 40_000 }), Sandbox.create({ ...where, ...small, timeoutMs: 40_000 })]);
  }, 240_000);
  afterAll(async () => {
    for (const vm of await skiff.list({ all: true }).catch(() => [])) await skiff.remove(vm.name, { force: true }).catch(() => undefined);
    await stopServer();
    await h.cleanup();
  });

  it("a sandbox is removed at its end by the server, the client doing nothing; setTimeout moves an end", async () => {
    const info = await short.getInfo();
    expect(info.state).toBe("running");
    expect(info.endAt!.getTime() - info.startedAt!.getTime()).toBe(40_000);
    const firstEnd = (await long.getInfo()).endAt!.getTime();
    const before = Date.now();
    await long.setTimeout(600_000);
    const moved = (await long.getInfo()).endAt!.getTime();
    expect(moved).toBeGreaterThanOrEqual(before + 600_000);
    expect(moved).toBeLessThanOrEqual(Date.now() + 600_000);

    // From here the test only looks at the home: no SDK or server call.
    expect(await exists(short.sandboxId)).toBe(true);
    const at = await goneAt(short.sandboxId, info.endAt!.getTime() - Date.now() + 30_000);
    expect(at).toBeGreaterThanOrEqual(info.endAt!.getTime());
    // Its first end has passed too: the moved one holds.
    await sleep(Math.max(0, firstEnd + 1_000 - Date.now()));
    expect(await exists(long.sandboxId)).toBe(true);
    expect(await long.isRunning()).toBe(true);
    expect(await short.isRunning()).toBe(false);
  }, 180_000);

  it("exec works after a restart through the server and after a stop and start by the CLI beside it", async () => {
    const name = long.sandboxId;
    // The server holds a connection from here.
    expect((await long.commands.run("echo one")).stdout).toBe("one\n");
    expect((await client.exec(name, ["echo", "two"])).stdout).toBe("two\n");
    await client.restart(name);
    expect((await long.commands.run("echo three")).stdout).toBe("three\n");
    expect((await client.exec(name, ["echo", "four"])).stdout).toBe("four\n");
    // Behind the server's back: its held connection is to the QEMU that stopped.
    await h.ok(["stop", name]);
    await h.ok(["start", name]);
    expect((await client.exec(name, ["echo", "five"])).stdout).toBe("five\n");
    expect((await long.commands.run("cat /proc/uptime >/dev/null; echo six")).stdout).toBe("six\n");
  }, 300_000);

  it("many execs at once on one VM all succeed", async () => {
    const viaWs = Array.from({ length: 16 }, (_, i) => long.commands.run(`echo ws-${i}`).then((r) => r.stdout));
    const viaRest = Array.from({ length: 8 }, (_, i) => client.exec(long.sandboxId, ["echo", `rest-${i}`]).then((r) => r.stdout));
    const out = await Promise.all([...viaWs, ...viaRest]);
    expect(out).toEqual([...Array.from({ length: 16 }, (_, i) => `ws-${i}\n`), ...Array.from({ length: 8 }, (_, i) => `rest-${i}\n`)]);
  });

  it("a client that leaves an exec WebSocket has its command killed; the shared connection serves on", async () => {
    const name = long.sandboxId;
    const ws = new WebSocket(`${where.host!.replace(/^http/, "ws")}/vms/${name}/exec`, { headers: { authorization: `Bearer ${where.token}` } });
    await once(ws, "open");
    const started = new Promise<void>((resolve) =>
      ws.on("message", (data, binary) => {
        if (!binary && (JSON.parse(data.toString()) as { type: string }).type === "started") resolve();
      }),
    );
    ws.send(JSON.stringify({ type: "start", argv: ["sh", "-c", "trap '' HUP TERM INT PIPE; echo $$ > /tmp/left.pid; while :; do sleep 1 </dev/null; done"] }));
    await started;
    const alive = async () => (await client.exec(name, ["sh", "-c", "test -s /tmp/left.pid && kill -0 $(cat /tmp/left.pid)"])).code === 0;
    for (const end = Date.now() + 10_000; !(await alive()); await sleep(100)) if (Date.now() > end) throw new Error("the command never ran");
    ws.close();
    for (const end = Date.now() + 15_000; await alive(); await sleep(250)) if (Date.now() > end) throw new Error("the command outlived its client");
    expect((await long.commands.run("echo still")).stdout).toBe("still\n");
  }, 60_000);

  it("a deadline set through the server is kept by the next server on the home", async () => {
    const name = long.sandboxId;
    await Sandbox.setTimeout(name, 8_000, where);
    const end = (await long.getInfo()).endAt!.getTime();
    await stopServer();
    expect(await exists(name)).toBe(true);
    await connectTo(await serve());
    const at = await goneAt(name, end - Date.now() + 30_000);
    expect(at).toBeGreaterThanOrEqual(end);
    expect(await Sandbox.list(where)).toEqual([]);
  }, 120_000);
});
