/**
 * Golden tests of a session's start on an agent port (guest/greeting.c):
 * after SKIFF-READY, copies of the answered HELLO are dropped, the
 * session's own bytes (SSH's banner, the first frame) pass whole, and a
 * HELLO with another nonce (a new host, which may have been sent the old
 * host's answer) ends the session before it began, for the relay to answer
 * it. Fed whole and a byte at a time, as the port may deliver it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoldenHarness } from "./fixtures/guest-golden.js";

let harness: GoldenHarness;
beforeAll(() => {
  harness = GoldenHarness.build();
});
afterAll(() => harness.close());

const answered = "0123456789abcdef01234567";
const other = "fedcba9876543210fedcba98";
const hello = (nonce: string) => `SKIFF-HELLO ${nonce}\n`;

describe.each([1, 7, 65536])("a session's start, read %i bytes at a time", (chunk) => {
  it("drops copies of the answered HELLO and passes SSH's banner whole", () => {
    const input = hello(answered).repeat(3) + "SSH-2.0-ssh2js1.16.0\r\n";
    expect(harness.preamble(answered, input, chunk)).toEqual({ verdict: "end", held: "S", rest: "SH-2.0-ssh2js1.16.0\r\n", fresh: null });
  });

  it("passes a first frame (a zero byte first) with nothing held back", () => {
    const frame = Buffer.from([0, 0, 0, 1, 7, 0x41]);
    const input = Buffer.concat([Buffer.from(hello(`${answered} native1`)), frame]);
    expect(harness.preamble(`${answered} native1`, input, chunk)).toEqual({ verdict: "end", held: "", rest: frame.toString("utf8"), fresh: null });
  });

  it("ends at a new host's HELLO, with its nonce", () => {
    const input = hello(answered) + hello(other).repeat(2);
    expect(harness.preamble(answered, input, chunk)).toEqual({ verdict: "new", held: "", rest: hello(other), fresh: other });
  });

  it("tells a native HELLO of a new host from the answered one", () => {
    const input = hello(`${answered} native1`) + hello(`${other} native1`);
    expect(harness.preamble(`${answered} native1`, input, chunk)).toMatchObject({ verdict: "new", fresh: `${other} native1` });
  });

  it("waits while only copies came, even cut inside a line", () => {
    expect(harness.preamble(answered, hello(answered).repeat(2) + "SKIFF-HEL", chunk)).toEqual({ verdict: "more" });
  });

  it("drops a HELLO line too long to be any host's, not taking it for a new host", () => {
    const input = `SKIFF-HELLO ${"a".repeat(500)}\n` + hello(answered) + "SSH-2.0-x\r\n";
    expect(harness.preamble(answered, input, chunk)).toMatchObject({ verdict: "end", rest: "SH-2.0-x\r\n" });
  });
});

describe("a session's start, on bytes that are neither", () => {
  it("ends at the first byte that leaves the HELLO, with the ones held back", () => {
    expect(harness.preamble(answered, "SKIFF-HELP me\n", 1)).toEqual({ verdict: "end", held: "SKIFF-HEL", rest: "P me\n", fresh: null });
  });
});
