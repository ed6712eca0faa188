/**
 * The exec WebSocket's order (src/server/ws.ts): every byte a command wrote
 * reaches the client before its `exit`, also when the client reads slower
 * than the command writes, and output after the end breaks nothing. The
 * server is the real one on loopback with a real `ws` client; the VM is a
 * session that writes as skiff's guest session does (a chunk, then wait for
 * drain when the stream is full) and ends at once after its last output, as
 * a guest's EXIT follows its last output frames. Before the fix the first
 * case lost the last chunks on a quiet host (3 of 3) and the second on a
 * busy one too, with an unhandled write after end.
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

/**
 * A session whose one command writes until the socket pushes back for a
 * while, then `tail` chunks more, and exits. `endWhile`: "reading" ends it
 * once the long-awaited drain came (the client reads again), "stalled"
 * while the drain still has not come (the client still reads nothing).
 * With `late`, one more chunk just after the exit (an SSH channel's data
 * can race a timeout's close).
 */
function pushingSession(tail: number, written: { bytes: number }, opts: { endWhile: "reading" | "stalled"; late?: boolean }): ExecSession {
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
          const drained = await new Promise<boolean>((resolve) => {
            const onDrain = () => {
              clearTimeout(timer);
              resolve(true);
            };
            const timer = setTimeout(
              () => {
                out.off("drain", onDrain);
                resolve(false);
              },
              opts.endWhile === "stalled" ? 200 : 60_000,
            );
            out.once("drain", onDrain);
          });
          // A drain that took this long, or has not come: the client has stopped reading and the socket is full.
          if (!drained || Date.now() - waited > 200) break;
        }
        for (let i = 0; i < tail; i++) {
          out.write(chunk);
          written.bytes += chunk.length;
        }
        exit({ code: 0 });
        if (opts.late === true) setImmediate(() => out.write(chunk));
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

/**
 * One exec on the server at `port` by a client whose socket reads nothing
 * at first (`pauses`: ms paused, then read, alternately): the output bytes
 * before the exit frame, and the text frames' types, once the server closed.
 */
async function slowClient(port: number, pauses: number[]): Promise<{ beforeExit: number; frames: string[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/vms/x/exec`);
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  let beforeExit = 0;
  const frames: string[] = [];
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    // What comes after the exit is not the command's output to a client (the SDK stops listening there).
    if (isBinary && !frames.includes("exit")) beforeExit += data.length - 1;
    else if (!isBinary) frames.push((JSON.parse(data.toString()) as { type: string }).type);
  });
  const closed = new Promise((resolve) => ws.once("close", resolve));
  ws.send(JSON.stringify({ type: "start", argv: ["yes"] }));
  ws.send(JSON.stringify({ type: "eof" }));
  const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  for (const [i, ms] of pauses.entries()) {
    if (i % 2 === 0) socket.pause();
    else socket.resume();
    await sleep(ms);
  }
  socket.resume();
  await closed;
  return { beforeExit, frames };
}

describe("the exec WebSocket", () => {
  it("sends a command's last output before its exit to a client that reads slower than it writes", async () => {
    const written = { bytes: 0 };
    const port = await serve(pushingSession(3, written, { endWhile: "reading" }));
    // Nothing read for a while, then a little, then nothing again while the command ends.
    const { beforeExit, frames } = await slowClient(port, [1_000, 50, 800]);
    expect(frames).toEqual(["started", "exit"]);
    expect(written.bytes).toBeGreaterThan(4 * chunk.length);
    expect(beforeExit).toBe(written.bytes);
  }, 20_000);

  it("goes on serving when output comes after the command's end, and still sends what came before first", async () => {
    const written = { bytes: 0 };
    const port = await serve(pushingSession(3, written, { endWhile: "stalled", late: true }));
    for (let round = 0; round < 2; round++) {
      written.bytes = 0;
      // The command ends, and its late chunk comes, while the client reads nothing: the server still holds its last output.
      const { beforeExit, frames } = await slowClient(port, [1_000]);
      expect(frames).toEqual(["started", "exit"]);
      // Everything it wrote before its end; the late chunk may make it in before the exit too.
      expect(beforeExit).toBeGreaterThanOrEqual(written.bytes);
      expect(beforeExit).toBeLessThanOrEqual(written.bytes + chunk.length);
    }
  }, 20_000);
});
