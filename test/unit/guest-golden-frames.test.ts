/**
 * The host's frames of skiff's guest protocol (src/guest/native/frames.ts)
 * through the guest's own reader (guest/frames.c, the code native.c runs):
 * in any chunking the guest sees the frames the host wrote, an EXEC means
 * exactly the request the host encoded, and a bound is a bound on both sides.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execRecords, type EncodableRequest } from "../../src/guest/exec-request.js";
import { guestLimits } from "../../src/guest/limits.js";
import { encodeFrame, execPayload, H, maxFrame, u32, windowSize } from "../../src/guest/native/frames.js";
import { GoldenHarness } from "./fixtures/guest-golden.js";

let harness: GoldenHarness;
beforeAll(() => {
  harness = GoldenHarness.build();
});
afterAll(() => harness.close());

const requests: Array<[string, EncodableRequest, { term: string; rows: number; cols: number } | undefined]> = [
  ["plain argv", { argv: ["sh", "-c", "echo hi"] }, undefined],
  ["user, cwd and env with = and newlines", { argv: ["env"], user: "1000:100", cwd: "/tmp/a b", env: { A: "x=y", B: "line1\nline2", C: "" } }, undefined],
  ["arguments that are not ASCII or have spaces", { argv: ["printf", "%s|", "héllo wörld", "", "tab\there"] }, undefined],
  ["a PTY", { argv: ["top"] }, { term: "xterm-256color", rows: 50, cols: 200 }],
];

describe("frames through the guest's reader", () => {
  it.each(requests)("EXEC of %s means the same request in the guest, in any chunking", (_what, req, pty) => {
    const wire = encodeFrame(H.exec, execPayload(execRecords(req), pty));
    for (const chunk of [1, 3, 7, 4096]) {
      const { status, lines } = harness.frames(wire, chunk);
      expect(status).toBe(0);
      expect(lines).toHaveLength(1);
      const [frame] = lines;
      if (frame === undefined || !("exec" in frame) || frame.exec === undefined) throw new Error(`no EXEC: ${JSON.stringify(frame)}`);
      expect(frame.type).toBe(H.exec);
      expect(frame.exec.request).toEqual({
        user: req.user ?? null,
        cwd: req.cwd ?? null,
        pidfile: null,
        env: Object.entries(req.env ?? {}).map(([k, v]) => `${k}=${v}`),
        argv: req.argv,
      });
      expect({ tty: frame.exec.tty, term: frame.exec.term, rows: frame.exec.rows, cols: frame.exec.cols }).toEqual(
        pty ? { tty: true, ...pty } : { tty: false, term: "", rows: 24, cols: 80 },
      );
    }
  });

  it("reads an empty EXEC as a login shell, and a stream of frames in order", () => {
    const wire = Buffer.concat([
      encodeFrame(H.exec, execPayload([], { term: "vt100", rows: 24, cols: 80 })),
      encodeFrame(H.stdin, Buffer.from("input\n")),
      encodeFrame(H.resize, windowSize(40, 120)),
      encodeFrame(H.signal, u32(2)),
      encodeFrame(H.stdinEof),
    ]);
    const { status, lines } = harness.frames(wire, 5);
    expect(status).toBe(0);
    expect(lines.map((l) => ("type" in l ? l.type : l))).toEqual([H.exec, H.stdin, H.resize, H.signal, H.stdinEof]);
    const [exec, stdin] = lines;
    expect(exec && "exec" in exec ? exec.exec?.request.argv : undefined).toEqual([]);
    expect(stdin && "payload" in stdin ? stdin.payload : undefined).toBe("input\n");
  });

  it("takes the largest frame and stops at a length one beyond, before reading it", () => {
    const at = harness.frames(encodeFrame(H.stdin, Buffer.alloc(maxFrame, 0x61)), 4096);
    expect(at.status).toBe(0);
    expect(at.lines).toHaveLength(1);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(maxFrame + 1, 0);
    head[4] = H.stdin;
    const over = harness.frames(Buffer.concat([encodeFrame(H.ping, Buffer.from("x")), head, Buffer.alloc(100)]), 7);
    expect(over.status).toBe(1);
    expect(over.lines).toEqual([{ type: H.ping, payload: "x" }, { error: "length 65537" }]);
    // A frame cut short is held, not taken.
    expect(harness.frames(encodeFrame(H.stdin, Buffer.alloc(10)).subarray(0, 9), 3).lines).toEqual([{ partial: 9 }]);
  });

  it("refuses an EXEC beyond the guest's limits instead of cutting it, and a terminal size that is not a number", () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => `a=${i}`);
    const exec = (records: string[]) => harness.frames(encodeFrame(H.exec, Buffer.from(records.join("\0"))), 4096).lines[0];
    expect(exec(many(guestLimits.args))).toMatchObject({ exec: { tty: false } });
    expect(exec(many(guestLimits.args + 1))).toMatchObject({ refused: "more than 1023 arguments in one request" });
    expect(exec(["a=sh", "t=vt100", "r=40x"])).toMatchObject({ refused: "bad terminal size 40x" });
    expect(exec(["a=sh", "t=vt100", "c=70000"])).toMatchObject({ refused: "bad terminal size 70000" });
    expect(exec(["a=sh", `t=${"x".repeat(200)}`])).toMatchObject({ refused: "t= record of 200 bytes" });
  });
});
