import { describe, expect, it } from "vitest";
import { parseSignal, signalExitCode } from "../../src/guest/agent-exec.js";
import { skiffFailure } from "./fixtures/agent-fake-guest.js";

describe("parseSignal", () => {
  it("takes names with or without SIG, in any case, and numbers", () => {
    for (const input of ["INT", "int", "SIGINT", "sigint", " INT ", "2", 2]) expect(parseSignal(input)).toEqual({ name: "INT", number: 2 });
    expect(parseSignal("KILL")).toEqual({ name: "KILL", number: 9 });
    expect(parseSignal(15)).toEqual({ name: "TERM", number: 15 });
    expect(parseSignal("WINCH")).toEqual({ name: "WINCH", number: 28 });
  });

  it("refuses what is not a signal", async () => {
    for (const input of ["NOPE", "", "0", 999, "SIG"]) {
      const err = await skiffFailure(Promise.resolve().then(() => parseSignal(input)));
      expect(err.code).toBe("ERR_SKIFF_BAD_SIGNAL");
    }
  });
});

describe("signalExitCode", () => {
  it("is 128 + the signal number, as a shell reports it", () => {
    expect(signalExitCode("INT")).toBe(130);
    expect(signalExitCode("SIGKILL")).toBe(137);
    expect(signalExitCode("TERM")).toBe(143);
  });
});
