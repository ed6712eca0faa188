import { mkdtemp, rm } from "node:fs/promises";
import { type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { agentHandshake } from "../../src/guest/agent-handshake.js";
import { LinePorts } from "./fixtures/line-port.js";

let dir: string;
let ports: LinePorts;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "skiff-handshake-"));
  ports = new LinePorts(dir);
});
afterEach(async () => {
  await ports.close();
  await rm(dir, { recursive: true, force: true });
});

/** A port whose guest side is `onLine` (called with each line the host sends). */
const port = (onLine: (line: string, socket: Socket, count: number) => void) => ports.port(onLine);

function readAll(socket: Socket): Promise<string> {
  return new Promise((done) => {
    let text = "";
    socket.on("data", (chunk) => (text += chunk.toString("latin1")));
    socket.on("end", () => done(text));
    socket.resume();
  });
}

describe("agentHandshake", () => {
  it("skips stale bytes, and hands over what follows READY in the same chunk", async () => {
    const path = await port((line, socket) => {
      const nonce = line.slice("SKIFF-HELLO ".length);
      socket.end(`old session bytes\nSKIFF-READY someone-else\nSKIFF-READY ${nonce}\nSSH-2.0-guest\r\n`);
    });
    const result = await agentHandshake(path, { budgetMs: 2_000 });
    expect(result.kind).toBe("ready");
    if (result.kind !== "ready") return;
    expect(await readAll(result.socket)).toBe("SSH-2.0-guest\r\n");
  });

  it("repeats HELLO until the guest answers, and finds READY split across chunks", async () => {
    const path = await port((line, socket, count) => {
      // A guest that is not up yet: lines 2-4 are the quick repeats (5, 15, 30 ms), the 5th is `repeatMs` after the 4th.
      if (count < 5) return;
      const ready = `SKIFF-READY ${line.slice(12)}\n`;
      socket.write(ready.slice(0, 7));
      setTimeout(() => socket.end(`${ready.slice(7)}rest`), 20);
    });
    const started = Date.now();
    const result = await agentHandshake(path, { budgetMs: 2_000, repeatMs: 30 });
    expect(result.kind).toBe("ready");
    expect(Date.now() - started).toBeGreaterThanOrEqual(50);
    if (result.kind === "ready") expect(await readAll(result.socket)).toBe("rest");
  });

  it("repeats quickly at first: a guest that dropped the first lines (its open event came after them) is answered without waiting out repeatMs", async () => {
    const times: number[] = [];
    const path = await port((line, socket, count) => {
      times.push(Date.now());
      if (count === 3) socket.write(`SKIFF-READY ${line.slice(12)}\n`);
    });
    const started = Date.now();
    const result = await agentHandshake(path, { budgetMs: 10_000, repeatMs: 5_000 });
    expect(result.kind).toBe("ready");
    // The third line came from the quick repeats, not after 2 x 5 s; a 4th quick one may cross the answer on a busy host.
    expect(times.length).toBeGreaterThanOrEqual(3);
    expect(times.length).toBeLessThanOrEqual(4);
    expect(times[2]! - started).toBeLessThan(4_000);
    if (result.kind === "ready") result.socket.destroy();
  });

  it("reports a silent port after its budget", async () => {
    const path = await port(() => {});
    const started = Date.now();
    expect(await agentHandshake(path, { budgetMs: 200 })).toEqual({ kind: "silent" });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("tells a missing socket (no QEMU) from a silent one", async () => {
    expect(await agentHandshake(join(dir, "nothing.sock"), { budgetMs: 500 })).toEqual({ kind: "absent", errno: "ENOENT" });
  });

  it("gives up at once when its signal aborts, and hangs up (a paused guest never answers)", async () => {
    let hungUp = false;
    const path = await port((_line, socket) => socket.once("close", () => (hungUp = true)));
    const given = new AbortController();
    setTimeout(() => given.abort(), 100);
    const started = Date.now();
    expect(await agentHandshake(path, { budgetMs: 5_000, signal: given.signal })).toEqual({ kind: "failed", reason: "aborted" });
    expect(Date.now() - started).toBeLessThan(2_000);
    await expect.poll(() => hungUp).toBe(true);
    // Aborted before it began: no connection is kept.
    expect(await agentHandshake(path, { budgetMs: 5_000, signal: given.signal })).toEqual({ kind: "failed", reason: "aborted" });
  });

  it("reports a port that hangs up", async () => {
    const path = await port((_line, socket) => socket.destroy());
    const result = await agentHandshake(path, { budgetMs: 2_000 });
    expect(result.kind).toBe("failed");
  });
});
