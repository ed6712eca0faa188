/**
 * The exec WebSocket's order (src/server/ws.ts): every byte a command wrote
 * reaches the client before its `exit`, also when the client reads slower
 * than the command writes. The server is the real one on loopback with a
 * real `ws` client; the VM is a session that writes as skiff's guest
 * session does (a chunk, then wait for drain when the stream is full) and
 * ends at once after its last output, as a guest's EXIT follows its last
 * output frames.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ExecSession, RunningExec, Skiff } from "../../src/index.js";
import type { AgentConnections } from "../../src/server/agents.js";
import { upgradeHandler } from "../../src/server/ws.js";

const chunk = Buffer.alloc(64 * 1024, 0x61);

/** A session whose one command writes until the socket pushes back for a while, then `tail` chunks more, and exits. */
function pushingSession(tail: number, written: { bytes: number }): ExecSession {
  return {
    start: async (_req, io = {}) => {
      const out = io.stdout as Writable;
      let exit!: (r: { code: number }) => void;
      const done = new Promise<{ code: number }>((resolve) => (exit = resolve));
      void (async () => {
        for (;;) {
          written.bytes += chunk.length;
          if (out.write(chunk)) continue;
          const waited = Date.now();
          await new Promise((resolve) => out.once("drain", resolve));
          // A drain that took this long: the client has stopped reading and the socket is full.
          if (Date.now() - waited > 200) break;
        }
        for (let i = 0; i < tail; i++) {
          out.write(chunk);
          written.bytes += chunk.length;
        }
        exit({ code: 0 });
      })();
      const running: RunningExec = { done, sendSignal: async () => undefined, setWindow: () => undefined };
      return running;
    },
    shell: () => Promise.reject(new Error("no shell here")),
    close: async () => undefined,
  };
}

let server: Server | undefined;
afterEach(() => {
  server?.close();
  server = undefined;
});

async function serve(session: ExecSession): Promise<number> {
  const agents = { use: <T>(_name: string, fn: (conn: ExecSession) => Promise<T>) => fn(session) } as unknown as AgentConnections;
  server = createServer();
  server.on("upgrade", upgradeHandler({ skiff: {} as Skiff, agents, authorize: () => undefined }));
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("the exec WebSocket", () => {
  it("sends a command's last output before its exit to a client that reads slower than it writes", async () => {
    const written = { bytes: 0 };
    const port = await serve(pushingSession(3, written));
    const ws = new WebSocket(`ws://127.0.0.1:${port}/vms/x/exec`);
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    let beforeExit = 0;
    let exit: { code?: number } | undefined;
    const closed = new Promise((resolve) => ws.once("close", resolve));
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        expect(exit, "output after the exit frame").toBeUndefined();
        beforeExit += data.length - 1;
      } else if ((JSON.parse(data.toString()) as { type: string }).type === "exit") exit = JSON.parse(data.toString()) as { code: number };
    });
    ws.send(JSON.stringify({ type: "start", argv: ["yes"] }));
    ws.send(JSON.stringify({ type: "eof" }));
    // A slow client: nothing read for a while, then a little, then nothing again while the command ends.
    const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    await sleep(1_000);
    socket.resume();
    await sleep(50);
    socket.pause();
    await sleep(800);
    socket.resume();
    await closed;
    expect(exit).toEqual({ type: "exit", code: 0 });
    expect(written.bytes).toBeGreaterThan(4 * chunk.length);
    expect(beforeExit).toBe(written.bytes);
  }, 20_000);
});
