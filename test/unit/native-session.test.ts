/**
 * The host's end of skiff's guest protocol against a guest that breaks it
 * (a guest is hostile): output beyond its credit, unknown frames, frames
 * out of turn, lengths and statuses out of range all cut the session and
 * fail the command with ERR_SKIFF_AGENT, holding nothing more; guest text
 * reaches messages only as printable ASCII. And a guest that keeps the
 * rules is served: credit granted as the caller takes output, stdin sent
 * only within the guest's window.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { NativeSession } from "../../src/guest/native/session.js";
import { encodeFrame, execPayload, FrameDecoder, G, H, nativeVersion, u32, window, type Frame } from "../../src/guest/native/frames.js";

let dir: string;
let server: Server | undefined;
const sockets: Socket[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "skiff-native-"));
});
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** A scripted guest: says HELLO, then `script` gets each frame the host sends and the guest's socket. */
async function guest(script: (frame: Frame, socket: Socket) => void, hello = encodeFrame(G.hello, Buffer.concat([u32(nativeVersion), u32(65536)]))): Promise<NativeSession> {
  const path = join(dir, "port.sock");
  server = createServer((socket) => {
    sockets.push(socket);
    const decoder = new FrameDecoder();
    socket.on("error", () => {});
    socket.write(hello);
    socket.on("data", (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) script(frame, socket);
    });
  });
  await new Promise<void>((done) => server?.listen(path, done));
  const socket = connect(path);
  sockets.push(socket);
  await new Promise((done) => socket.once("connect", done));
  const session = await NativeSession.open(socket, "vm");
  if (session === "ssh") throw new Error("expected a native session");
  return session;
}

const exec = (session: NativeSession, io = {}) => session.exec({ payload: execPayload(["a=x"]), what: "`x` in VM vm" }, io);
const started = (socket: Socket) => socket.write(encodeFrame(G.started, u32(42)));

describe("a guest that breaks the protocol", () => {
  it.each([
    ["output beyond its credit", (s: Socket) => s.write(encodeFrame(G.stdout, Buffer.alloc(65536))) && s.write(Buffer.concat(Array.from({ length: 4 }, () => encodeFrame(G.stdout, Buffer.alloc(65536))))), /credit/],
    ["an unknown frame", (s: Socket) => s.write(encodeFrame(0x99, Buffer.from("x"))), /unexpected frame \(type 0x99\)/],
    ["an exit status out of range", (s: Socket) => s.write(encodeFrame(G.exit, Buffer.concat([u32(256), u32(0)]))), /out of range/],
    ["a signal out of range", (s: Socket) => s.write(encodeFrame(G.exit, Buffer.concat([u32(0), u32(99)]))), /out of range/],
    ["a length beyond the bound", (s: Socket) => s.write(Buffer.from([0x7f, 0xff, 0xff, 0xff, G.stdout])), /more than 65536/],
    ["a second STARTED", (s: Socket) => started(s), /second STARTED/],
    ["stdin credit beyond the window", (s: Socket) => s.write(encodeFrame(G.stdinCredit, u32(window))), /stdin credit beyond/],
  ])("%s: the session is cut and the command fails with ERR_SKIFF_AGENT", async (_what, misbehave, reason) => {
    const session = await guest((frame, socket) => {
      if (frame.type !== H.exec) return;
      started(socket);
      misbehave(socket);
    });
    const running = await exec(session, { stdout: new PassThrough() });
    await expect(running.done).rejects.toMatchObject({ code: "ERR_SKIFF_AGENT", message: expect.stringMatching(reason) });
    expect(session.isOpen).toBe(false);
  });

  it("frames while no command runs cut the session", async () => {
    let guestSocket: Socket | undefined;
    const session = await guest((frame, socket) => {
      guestSocket = socket;
      if (frame.type === H.ping) socket.write(encodeFrame(G.pong));
    });
    await session.ping(); // the guest's socket is known from here
    const closed = new Promise((done) => session.socket.once("close", done));
    guestSocket?.write(encodeFrame(G.stdout, Buffer.from("unasked")));
    await closed;
    expect(session.isOpen).toBe(false);
    await expect(exec(session)).rejects.toMatchObject({ code: "ERR_SKIFF_AGENT" });
  });

  it("shows a guest's error text only as printable ASCII, at most 200 characters", async () => {
    const session = await guest((frame, socket) => {
      if (frame.type === H.exec) socket.write(encodeFrame(G.error, Buffer.concat([Buffer.from("bad\x1b[31mred\n"), Buffer.alloc(500, 0x41)])));
    });
    const failure = await exec(session).catch((err: unknown) => err as Error);
    expect(failure).toMatchObject({ code: "ERR_SKIFF_AGENT" });
    const text = failure.message.slice(failure.message.indexOf("bad"));
    expect(text).toMatch(/^bad\?\[31mred\?A+$/);
    expect(text.length).toBe(200);
    // A refused request leaves the session usable.
    expect(session.isOpen).toBe(true);
  });

  it("refuses a guest of another protocol version, and tells SSH from HELLO by the first byte", async () => {
    await expect(guest(() => {}, encodeFrame(G.hello, Buffer.concat([u32(nativeVersion + 1), u32(65536)])))).rejects.toMatchObject({
      code: "ERR_SKIFF_AGENT",
      message: expect.stringMatching(new RegExp(`version ${nativeVersion + 1}`)),
    });
    const path = join(dir, "ssh.sock");
    const ssh = createServer((s) => s.write("SSH-2.0-dropbear\r\n"));
    await new Promise<void>((done) => ssh.listen(path, done));
    const socket = connect(path);
    expect(await NativeSession.open(socket, "vm")).toBe("ssh");
    // The banner is left for the SSH client to read.
    expect(String(socket.read())).toBe("SSH-2.0-dropbear\r\n");
    socket.destroy();
    await new Promise((done) => ssh.close(done));
  });
});

describe("a guest that keeps the rules", () => {
  it("gets output credit as the caller takes output, and stdin only within its window", async () => {
    let credit = 0;
    let stdinBytes = 0;
    let sock: Socket | undefined;
    const session = await guest((frame, socket) => {
      sock = socket;
      if (frame.type === H.exec) {
        started(socket);
        // The whole window at once: more needs credit.
        for (let i = 0; i < 4; i++) socket.write(encodeFrame(G.stdout, Buffer.alloc(65536, i)));
      }
      if (frame.type === H.credit) credit += frame.payload.readUInt32BE(0);
      if (frame.type === H.stdin) stdinBytes += frame.payload.length;
    });
    let taken = 0;
    let release!: () => void;
    const slow = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _e, done) {
        taken += chunk.length;
        release = done;
      },
    });
    const stdin = new PassThrough();
    const running = await exec(session, { stdout: slow, stdin });
    stdin.write(Buffer.alloc(window + 100_000));
    await new Promise((done) => setTimeout(done, 100));
    // Nothing granted while the caller holds the first chunk; stdin stops at the window.
    expect(credit).toBe(0);
    expect(stdinBytes).toBe(window);
    for (let i = 0; i < 4; i++) {
      release();
      await new Promise((done) => setTimeout(done, 10));
    }
    expect(taken).toBe(window);
    expect(credit).toBe(window);
    sock?.write(encodeFrame(G.stdinCredit, u32(window)));
    await new Promise((done) => setTimeout(done, 50));
    expect(stdinBytes).toBe(window + 100_000);
    sock?.write(encodeFrame(G.exit, Buffer.concat([u32(0), u32(0)])));
    expect(await running.done).toEqual({ code: 0 });
  });
});

describe("STAT", () => {
  const statAnswer = (mode: number) => {
    const b = Buffer.alloc(36);
    b.writeUInt32BE(mode, 4);
    b.writeBigUInt64BE(5n, 16);
    return b;
  };

  it("asks with the flag and the path, and reads the answer or the errno", async () => {
    const asked: string[] = [];
    const session = await guest((frame, socket) => {
      if (frame.type !== H.stat) return;
      asked.push(`${frame.payload[0]}:${frame.payload.subarray(1).toString()}`);
      socket.write(frame.payload.subarray(1).toString() === "/nope" ? encodeFrame(G.statReply, u32(2)) : encodeFrame(G.statReply, statAnswer(0o100600)));
    });
    expect(await session.stat("/etc/x")).toMatchObject({ isFile: true, size: 5, mode: 0o100600 });
    expect(await session.stat("/nope", { follow: false })).toEqual({ errno: 2 });
    expect(asked).toEqual(["0:/etc/x", "1:/nope"]);
    expect(session.isOpen).toBe(true);
  });

  it("cuts the session on an answer of the wrong shape", async () => {
    const session = await guest((frame, socket) => {
      if (frame.type === H.stat) socket.write(encodeFrame(G.statReply, Buffer.alloc(20)));
    });
    await expect(session.stat("/etc/x")).rejects.toMatchObject({ code: "ERR_SKIFF_AGENT", message: expect.stringMatching(/bad answer to STAT/) });
    expect(session.isOpen).toBe(false);
  });
});
