import { describe, expect, it } from "vitest";
import { SkiffError } from "../../src/errors.js";
import { encodeExecRequest, execPrefix, maxCommandLength } from "../../src/guest/exec-request.js";

/** The guest's parse_request (guest/request.c), in TypeScript. */
function decode(command: string) {
  expect(command.startsWith(execPrefix)).toBe(true);
  const payload = Buffer.from(command.slice(execPrefix.length), "base64");
  const req = { user: undefined as string | undefined, cwd: undefined as string | undefined, pidfile: undefined as string | undefined, env: [] as string[], argv: [] as string[] };
  let start = 0;
  while (start < payload.length) {
    let end = payload.indexOf(0, start);
    if (end < 0) end = payload.length;
    const rec = payload.subarray(start, end).toString("utf8");
    if (rec.length >= 2 && rec[1] === "=") {
      const value = rec.slice(2);
      if (rec[0] === "u") req.user = value;
      if (rec[0] === "w") req.cwd = value;
      if (rec[0] === "p") req.pidfile = value;
      if (rec[0] === "e") req.env.push(value);
      if (rec[0] === "a") req.argv.push(value);
    }
    start = end + 1;
  }
  return req;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof SkiffError ? err.code : "not a SkiffError";
  }
  return undefined;
}

describe("encodeExecRequest", () => {
  it("round-trips argv, env, user, cwd and pidfile through the guest's parser", () => {
    const command = encodeExecRequest({
      argv: ["sh", "-c", "echo \"$A\" 'b c' $((1+2))", "", "ünïcødé", "a=b"],
      env: { A: "x=y", EMPTY: "", "WITH SPACE": "v\nw" },
      user: "1000:50",
      cwd: "/srv/my dir",
      pidfile: "agent3-0",
    });
    expect(decode(command)).toEqual({
      user: "1000:50",
      cwd: "/srv/my dir",
      pidfile: "agent3-0",
      env: ["A=x=y", "EMPTY=", "WITH SPACE=v\nw"],
      argv: ["sh", "-c", "echo \"$A\" 'b c' $((1+2))", "", "ünïcødé", "a=b"],
    });
  });

  it("leaves out what is not given, and uses plain base64", () => {
    const command = encodeExecRequest({ argv: ["true"] });
    expect(command).toBe(`${execPrefix}${Buffer.from("a=true").toString("base64")}`);
    expect(decode(command)).toEqual({ user: undefined, cwd: undefined, pidfile: undefined, env: [], argv: ["true"] });
  });

  it("refuses what cannot cross: NUL bytes, bad env names, no argv", () => {
    expect(codeOf(() => encodeExecRequest({ argv: [] }))).toBe("ERR_SKIFF_USAGE");
    expect(codeOf(() => encodeExecRequest({ argv: ["a\0b"] }))).toBe("ERR_SKIFF_USAGE");
    expect(codeOf(() => encodeExecRequest({ argv: ["x"], cwd: "/a\0" }))).toBe("ERR_SKIFF_USAGE");
    expect(codeOf(() => encodeExecRequest({ argv: ["x"], env: { "A=B": "1" } }))).toBe("ERR_SKIFF_BAD_ENV");
    expect(codeOf(() => encodeExecRequest({ argv: ["x"], env: { "": "1" } }))).toBe("ERR_SKIFF_BAD_ENV");
    expect(codeOf(() => encodeExecRequest({ argv: ["x"], env: { A: "\0" } }))).toBe("ERR_SKIFF_USAGE");
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
