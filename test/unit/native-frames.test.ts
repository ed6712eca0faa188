/**
 * The frames of skiff's guest protocol: the decoder takes frames in any
 * chunking, refuses a length beyond the bound before holding it, and the
 * host's numbers are the guest's (read from guest/skiff-init.h itself, so the
 * two cannot drift apart).
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { agentProtocol } from "../../src/guest/agent.js";
import { execRecords } from "../../src/guest/exec-request.js";
import { encodeFrame, execPayload, filePath, FrameDecoder, FrameError, G, H, maxFrame, nativeVersion, parseStatReply, u32, window, windowSize } from "../../src/guest/native/frames.js";

const nativeC = readFileSync(join(import.meta.dirname, "..", "..", "guest", "skiff-init.h"), "utf8");

describe("frames", () => {
  it("decodes frames split anywhere, and several in one chunk", () => {
    const frames = [encodeFrame(G.stdout, Buffer.from("hello")), encodeFrame(G.exit, Buffer.concat([u32(3), u32(0)])), encodeFrame(G.pong)];
    const wire = Buffer.concat(frames);
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new FrameDecoder();
      const got = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
      expect(got.map((f) => [f.type, f.payload.toString("hex")])).toEqual([
        [G.stdout, Buffer.from("hello").toString("hex")],
        [G.exit, "0000000300000000"],
        [G.pong, ""],
      ]);
    }
    const d = new FrameDecoder();
    const byByte = [...wire].flatMap((b) => d.push(Buffer.from([b])));
    expect(byByte).toHaveLength(3);
  });

  it("takes a frame of the largest payload and refuses one byte more before reading it", () => {
    const d = new FrameDecoder();
    expect(d.push(encodeFrame(G.stdout, Buffer.alloc(maxFrame)))[0]?.payload.length).toBe(maxFrame);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(maxFrame + 1, 0);
    expect(() => new FrameDecoder().push(head)).toThrow(FrameError);
    head.writeUInt32BE(0xffffffff, 0);
    expect(() => new FrameDecoder().push(head)).toThrow(/more than 65536/);
    expect(() => encodeFrame(H.stdin, Buffer.alloc(maxFrame + 1))).toThrow(RangeError);
  });

  it("survives random bytes: frames or a FrameError, nothing else", () => {
    for (let i = 0; i < 2_000; i++) {
      const d = new FrameDecoder();
      try {
        for (const f of d.push(randomBytes(i % 300))) expect(f.payload.length).toBeLessThanOrEqual(maxFrame);
      } catch (err) {
        expect(err).toBeInstanceOf(FrameError);
      }
    }
  });

  it("encodes EXEC as request.c's records, with a PTY's TERM and size after them", () => {
    const records = execRecords({ argv: ["sh", "-c", "echo hi"], env: { A: "1" }, user: "1000", cwd: "/tmp" });
    expect(execPayload(records).toString().split("\0")).toEqual(["u=1000", "w=/tmp", "e=A=1", "a=sh", "a=-c", "a=echo hi"]);
    expect(execPayload(["a=sh"], { term: "vt100", rows: 33, cols: 101 }).toString().split("\0")).toEqual(["a=sh", "t=vt100", "r=33", "c=101"]);
    expect([...windowSize(40, 120)]).toEqual([0, 40, 0, 120]);
    expect([...windowSize(70000, -3)]).toEqual([0xff, 0xff, 0, 0]);
  });

  it("uses the guest's numbers (guest/skiff-init.h)", () => {
    const define = (name: string) => Number(new RegExp(`#define ${name} (\\d+)`).exec(nativeC)?.[1]);
    const enumValue = (name: string) => Number(new RegExp(`${name} = (0x[0-9a-f]+)`).exec(nativeC)?.[1]);
    expect(define("NATIVE_VERSION")).toBe(nativeVersion);
    expect(define("MAX_FRAME")).toBe(maxFrame);
    expect(define("WINDOW")).toBe(window);
    const names: Record<string, number> = {
      F_EXEC: H.exec,
      F_STDIN: H.stdin,
      F_STDIN_EOF: H.stdinEof,
      F_SIGNAL: H.signal,
      F_RESIZE: H.resize,
      F_CREDIT: H.credit,
      F_PING: H.ping,
      F_STAT: H.stat,
      F_GET: H.get,
      F_PUT: H.put,
      F_HELLO: G.hello,
      F_STARTED: G.started,
      F_STDOUT: G.stdout,
      F_STDERR: G.stderr,
      F_EXIT: G.exit,
      F_ERROR: G.error,
      F_STDIN_CREDIT: G.stdinCredit,
      F_PONG: G.pong,
      F_STAT_REPLY: G.statReply,
    };
    for (const [name, value] of Object.entries(names)) expect({ name, value: enumValue(name) }).toEqual({ name, value });
  });
});

describe("file operations' frames", () => {
  const reply = (fields: { errno?: number; mode?: number; size?: bigint; mtime?: bigint; length?: number }) => {
    const b = Buffer.alloc(fields.length ?? 36);
    b.writeUInt32BE(fields.errno ?? 0, 0);
    if (b.length >= 36) {
      b.writeUInt32BE(fields.mode ?? 0o100644, 4);
      b.writeUInt32BE(1000, 8);
      b.writeUInt32BE(100, 12);
      b.writeBigUInt64BE(fields.size ?? 12n, 16);
      b.writeBigInt64BE(fields.mtime ?? 1_700_000_000n, 24);
      b.writeUInt32BE(1, 32);
    }
    return b;
  };

  it("reads STAT's answer: a file, a directory, a symlink, an errno", () => {
    expect(parseStatReply(reply({}))).toEqual({ mode: 0o100644, uid: 1000, gid: 100, size: 12, mtimeMs: 1_700_000_000_000, nlink: 1, isFile: true, isDirectory: false, isSymlink: false });
    expect(parseStatReply(reply({ mode: 0o40755 }))).toMatchObject({ isFile: false, isDirectory: true });
    expect(parseStatReply(reply({ mode: 0o120777 }))).toMatchObject({ isSymlink: true });
    expect(parseStatReply(reply({ errno: 2, length: 4 }))).toEqual({ errno: 2 });
  });

  it("refuses a hostile answer: wrong sizes, an errno out of range, sizes past 2^53", () => {
    for (const bad of [Buffer.alloc(0), Buffer.alloc(3), reply({ length: 35 }), reply({ length: 40 }), reply({ errno: 2, length: 36 }), reply({ errno: 70000, length: 4 }), reply({ size: 2n ** 60n }), reply({ mtime: -(2n ** 62n) })]) {
      expect(parseStatReply(bad)).toBeUndefined();
    }
  });

  it("takes only absolute paths without NUL, up to 4095 bytes", () => {
    expect(filePath("/etc/hostname").toString()).toBe("/etc/hostname");
    expect(filePath("/" + "é".repeat(2047)).length).toBe(4095);
    for (const bad of ["etc/hostname", "", "/a\0b", "/" + "x".repeat(4095)]) expect(() => filePath(bad)).toThrow(RangeError);
  });
});

describe("SKIFF_AGENT_PROTOCOL", () => {
  it("is native unless it says ssh, and refuses anything else with the variable as the place", () => {
    expect(agentProtocol({})).toBe("native");
    expect(agentProtocol({ SKIFF_AGENT_PROTOCOL: "native" })).toBe("native");
    expect(agentProtocol({ SKIFF_AGENT_PROTOCOL: "ssh" })).toBe("ssh");
    expect(() => agentProtocol({ SKIFF_AGENT_PROTOCOL: "telnet" })).toThrow(expect.objectContaining({ code: "ERR_SKIFF_USAGE", place: "SKIFF_AGENT_PROTOCOL" }));
  });
});
