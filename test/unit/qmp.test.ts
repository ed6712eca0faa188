import { mkdtemp, rm } from "node:fs/promises";
import { spawn } from "node:child_process";
import { connect as netConnect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SkiffError } from "../../src/errors.js";
import { QmpClient, type QmpEvent } from "../../src/qemu/qmp.js";

interface Command {
  execute: string;
  arguments?: Record<string, unknown>;
  id: number;
}

const greeting = JSON.stringify({
  QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: "test" }, capabilities: ["oob"] },
});

let dir: string;
let server: Server | undefined;
const clients: QmpClient[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "skiff-qmp-"));
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

/**
 * A fake QMP monitor. `onCommand` answers each command after qmp_capabilities;
 * `greet` writes the greeting (default: whole, one write).
 */
async function fakeQmp(options: {
  onCommand?: (cmd: Command, socket: Socket) => void;
  greet?: (socket: Socket) => void;
}): Promise<string> {
  const path = join(dir, "qmp.sock");
  server = createServer((socket) => {
    (options.greet ?? ((s) => s.write(`${greeting}\r\n`)))(socket);
    let buffer = "";
    socket.on("data", (chunk) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const cmd = JSON.parse(buffer.slice(0, nl)) as Command;
        buffer = buffer.slice(nl + 1);
        if (cmd.execute === "qmp_capabilities") socket.write(`${JSON.stringify({ return: {}, id: cmd.id })}\r\n`);
        else options.onCommand?.(cmd, socket);
      }
    });
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server!.listen(path, resolve));
  return path;
}

async function connect(path: string, opts: Parameters<typeof QmpClient.connect>[1] = {}): Promise<QmpClient> {
  const c = await QmpClient.connect(path, { label: "vm1", ...opts });
  clients.push(c);
  return c;
}

async function rejection(p: Promise<unknown>): Promise<SkiffError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SkiffError);
  return err as SkiffError;
}

const line = (value: unknown): string => `${JSON.stringify(value)}\r\n`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("QmpClient", () => {
  it("handles a greeting and responses split across writes", async () => {
    const path = await fakeQmp({
      greet: (s) => {
        s.write(greeting.slice(0, 10));
        setTimeout(() => s.write(`${greeting.slice(10)}\r`), 5);
        setTimeout(() => s.write("\n"), 10);
      },
      onCommand: async (cmd, s) => {
        // "é" is two bytes in UTF-8: split between them.
        const bytes = Buffer.from(line({ return: { status: "running", running: true, note: "é" }, id: cmd.id }));
        const cut = bytes.indexOf(0xc3) + 1;
        s.write(bytes.subarray(0, 3));
        await sleep(5);
        s.write(bytes.subarray(3, cut));
        await sleep(5);
        s.write(bytes.subarray(cut));
      },
    });
    const c = await connect(path);
    expect(c.greeting.version.qemu).toEqual({ major: 7, minor: 2, micro: 22 });
    expect(await c.execute("query-status")).toEqual({ status: "running", running: true, note: "é" });
  });

  it("reads several messages from one chunk and matches responses by id", async () => {
    const held: Command[] = [];
    const path = await fakeQmp({
      onCommand: (cmd, s) => {
        held.push(cmd);
        if (held.length < 2) return;
        // Answer in reverse order, with an event in between, all in one write.
        const [a, b] = held as [Command, Command];
        const stop = { event: "STOP", timestamp: { seconds: 1, microseconds: 2 } };
        s.write(line({ return: b.execute, id: b.id }) + line(stop) + line({ return: a.execute, id: a.id }));
      },
    });
    const c = await connect(path);
    const events: QmpEvent[] = [];
    c.on("event", (e) => events.push(e));
    const [first, second] = await Promise.all([c.execute("first"), c.execute("second")]);
    expect([first, second]).toEqual(["first", "second"]);
    expect(events).toEqual([{ event: "STOP", data: {}, timestamp: { seconds: 1, microseconds: 2 } }]);
  });

  it("turns a QMP error into ERR_SKIFF_QMP", async () => {
    const path = await fakeQmp({
      onCommand: (cmd, s) => s.write(line({ error: { class: "CommandNotFound", desc: "The command nope has not been found" }, id: cmd.id })),
    });
    const c = await connect(path);
    const err = await rejection(c.execute("nope"));
    expect(err.code).toBe("ERR_SKIFF_QMP");
    expect(err.message).toContain("nope has not been found");
    expect(err.place).toBe("vm1");
    expect(err.details).toEqual({ command: "nope", class: "CommandNotFound" });
  });

  it("sends arguments and runs HMP commands", async () => {
    const seen: Command[] = [];
    const path = await fakeQmp({
      onCommand: (cmd, s) => {
        seen.push(cmd);
        s.write(line({ return: "ok\r\n", id: cmd.id }));
      },
    });
    const c = await connect(path);
    expect(await c.hmp("info status")).toBe("ok\r\n");
    expect(seen[0]).toMatchObject({ execute: "human-monitor-command", arguments: { "command-line": "info status" } });
  });

  it("waits for a named event", async () => {
    const path = await fakeQmp({
      onCommand: (cmd, s) => {
        s.write(line({ return: {}, id: cmd.id }));
        setTimeout(() => {
          s.write(line({ event: "POWERDOWN", timestamp: { seconds: 1, microseconds: 0 } }));
          s.write(line({ event: "SHUTDOWN", data: { guest: true, reason: "guest-shutdown" }, timestamp: { seconds: 2, microseconds: 0 } }));
        }, 10);
      },
    });
    const c = await connect(path);
    const shutdown = c.waitForEvent("SHUTDOWN", 2000);
    await c.execute("system_powerdown");
    expect((await shutdown).data).toEqual({ guest: true, reason: "guest-shutdown" });
    expect((await rejection(c.waitForEvent("RESET", 20))).code).toBe("ERR_SKIFF_TIMEOUT");
  });

  it("times out a command that gets no answer, and ignores a late answer", async () => {
    const path = await fakeQmp({
      onCommand: (cmd, s) => {
        if (cmd.execute === "slow") setTimeout(() => s.write(line({ return: "late", id: cmd.id })), 60);
        else s.write(line({ return: "fast", id: cmd.id }));
      },
    });
    const c = await connect(path, { commandTimeoutMs: 30 });
    const err = await rejection(c.execute("slow"));
    expect(err.code).toBe("ERR_SKIFF_TIMEOUT");
    expect(err.hint).toBeDefined();
    await sleep(60);
    expect(await c.execute("quick")).toBe("fast");
  });

  it("times out when QEMU never greets", async () => {
    const path = await fakeQmp({ greet: () => undefined });
    const err = await rejection(connect(path, { timeoutMs: 50 }));
    expect(err.code).toBe("ERR_SKIFF_TIMEOUT");
    expect(err.hint).toContain("one at a time");
  });

  it("waits for its turn while the socket's backlog is full (EAGAIN), as when others ask QEMU at once", async () => {
    const path = join(dir, "busy.sock");
    // A monitor in another process that stops accepting for a while (its event loop blocked), then greets.
    const monitor = `const net = require("node:net");
      const server = net.createServer((s) => { s.write(${JSON.stringify(`${greeting}\r\n`)}); s.on("data", (d) => { for (const l of d.toString().split("\\n")) if (l.trim()) s.write(JSON.stringify({ return: {}, id: JSON.parse(l).id }) + "\\r\\n"); }); s.on("error", () => {}); });
      server.listen({ path: process.argv[1], backlog: 1 }, () => { process.stdout.write("ready\\n"); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500); });`;
    const child = spawn(process.execPath, ["-e", monitor, path], { stdio: ["ignore", "pipe", "inherit"] });
    const fillers: Socket[] = [];
    try {
      await new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()));
      // Fill its backlog; the connection after them is refused with EAGAIN while the monitor does not accept.
      const outcomes = await Promise.all(
        Array.from({ length: 4 }, () => new Promise<string>((resolve) => {
          const s = netConnect(path);
          fillers.push(s);
          s.once("connect", () => resolve("queued"));
          s.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
        })),
      );
      expect(outcomes).toContain("EAGAIN");
      const c = await connect(path, { timeoutMs: 10_000 });
      expect(c.greeting.version.qemu.major).toBe(7);
    } finally {
      for (const s of fillers) s.destroy();
      child.kill();
    }
  });

  it("fails clearly when the socket is missing", async () => {
    const err = await rejection(connect(join(dir, "missing.sock")));
    expect(err.code).toBe("ERR_SKIFF_QMP");
    expect(err.message).toContain("ENOENT");
    expect(err.hint).toContain("not running");
  });

  it("rejects pending and later commands when QEMU goes away", async () => {
    const path = await fakeQmp({ onCommand: (_cmd, s) => s.destroy() });
    const c = await connect(path);
    const closed = new Promise<void>((resolve) => c.once("close", resolve));
    expect((await rejection(c.execute("quit"))).code).toBe("ERR_SKIFF_QMP");
    await closed;
    expect(c.isClosed).toBe(true);
    expect((await rejection(c.execute("query-status"))).message).toContain("closed");
  });

  it("rejects a socket that does not speak QMP", async () => {
    const path = await fakeQmp({ greet: (s) => s.write("login: \n") });
    expect((await rejection(connect(path))).code).toBe("ERR_SKIFF_QMP");
  });
});
