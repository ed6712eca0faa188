import { describe, expect, it } from "vitest";
import { SkiffError } from "../../src/errors.js";
import { encodeExecRequest, execPrefix, maxCommandLength } from "../../src/guest/exec-request.js";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof SkiffError ? err.code : "not a SkiffError";
  }
  return undefined;
}

describe("encodeExecRequest", () => {
  it("leaves out what is not given, and uses plain base64", () => {
    const command = encodeExecRequest({ argv: ["true"] });
    // What the guest makes of requests: guest-golden-request.test.ts, through its own parser.
    expect(command).toBe(`${execPrefix}${Buffer.from("a=true").toString("base64")}`);
  });

  it("refuses what cannot cross: NUL bytes, bad env names, no argv", () => {
    expect(codeOf(() => encodeExecRequest({ argv: [] }))).toBe("ERR_SKIFF_USAGE");
    expect(codeOf(() => encodeExecRequest({ argv: ["a\0b"] }))).toBe("ERR_SKIFF_USAGE");
    expect(codeOf(() => encodeExecRequest({ argv: ["x"], cwd: "/a\0" }))).toBe("ERR_SKIFF_USAGE");
    expect(codeOf(() => encodeExecRequest({ argv: ["x"], env: { "A=B": "1" } }))).toBe("ERR_SKIFF_BAD_ENV");
    expect(codeOf(() => encodeExecRequest({ argv: ["x"], env: { "": "1" } }))).toBe("ERR_SKIFF_BAD_ENV");
    expect(codeOf(() => encodeExecRequest({ argv: ["x"], env: { A: "\0" } }))).toBe("ERR_SKIFF_BAD_ENV");
    expect(codeOf(() => encodeExecRequest({ argv: ["x"], pidfile: "../etc/passwd" }))).toBe("ERR_SKIFF_INTERNAL");
  });

  it("refuses commands longer than dropbear takes, and says so", () => {
    // "a=" + arg: 3 bytes of payload per 4 of base64.
    const fits = encodeExecRequest({ argv: ["x".repeat(Math.floor(((maxCommandLength - execPrefix.length) * 3) / 4) - 2)] });
    expect(fits.length).toBeLessThanOrEqual(maxCommandLength);
    let error: unknown;
    try {
      encodeExecRequest({ argv: ["echo", "x".repeat(7000)] });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SkiffError);
    expect((error as SkiffError).code).toBe("ERR_SKIFF_USAGE");
    expect((error as SkiffError).message).toMatch(/at most 9000/);
    expect((error as SkiffError).hint).toMatch(/stdin/);
  });
});
