/**
 * The host refuses what skiff-init could not take, naming the field and the
 * limit, before anything is made (the guest's side of the same limits:
 * guest-golden-limits.test.ts).
 */
import { describe, expect, it } from "vitest";
import { checkMainCommand, encodeExecRequest, maxCommandLength } from "../../src/guest/exec-request.js";
import { renderEnvFile, renderGuestConfig } from "../../src/guest/initramfs.js";
import { checkGuestInput, guestLimits } from "../../src/guest/limits.js";
import { Skiff } from "../../src/index.js";
import { maxMounts } from "../../src/engine/volumes.js";
import { errorOf } from "./fixtures/errors.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

const many = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i));

describe("exec requests", () => {
  it("take 1023 arguments and refuse 1024, naming argv and the limit", () => {
    expect(() => encodeExecRequest({ argv: many(guestLimits.args, () => "a") })).not.toThrow();
    const err = errorOf(() => encodeExecRequest({ argv: many(guestLimits.args + 1, () => "a") }));
    expect(err).toMatchObject({ code: "ERR_SKIFF_USAGE", place: "argv" });
    expect(err.hint).toMatch(/at most 1023 arguments/);
  });

  it("take 255 variables and refuse 256, naming env and the limit", () => {
    const env = (n: number) => Object.fromEntries(many(n, (i) => [`V${i}`, "1"]));
    expect(() => encodeExecRequest({ argv: ["env"], env: env(guestLimits.env) })).not.toThrow();
    const err = errorOf(() => encodeExecRequest({ argv: ["env"], env: env(guestLimits.env + 1) }));
    expect(err).toMatchObject({ code: "ERR_SKIFF_BAD_ENV", place: "env" });
    expect(err.hint).toMatch(/at most 255 variables/);
  });

  it("refuse a user the guest would have to cut", () => {
    expect(() => encodeExecRequest({ argv: ["id"], user: "ü".repeat(63) })).not.toThrow(); // 126 bytes
    const err = errorOf(() => encodeExecRequest({ argv: ["id"], user: "ü".repeat(64) }));
    expect(err).toMatchObject({ code: "ERR_SKIFF_USAGE", place: "user" });
    expect(err.hint).toMatch(/at most 127 bytes/);
  });
});

describe("a VM's command, checked at create", () => {
  it("takes 1022 arguments (run -d adds skiff-detach) and refuses 1023, naming command and the limit", () => {
    expect(() => checkMainCommand({ argv: many(guestLimits.args - 1, () => "a") })).not.toThrow();
    const err = errorOf(() => checkMainCommand({ argv: many(guestLimits.args, () => "a") }));
    expect(err).toMatchObject({ code: "ERR_SKIFF_USAGE", place: "command" });
    expect(err.hint).toMatch(/at most 1022 arguments/);
  });

  it("refuses a command too long for the agent, and a NUL, as the command's", () => {
    const long = errorOf(() => checkMainCommand({ argv: ["echo", "x".repeat(maxCommandLength)] }));
    expect(long).toMatchObject({ code: "ERR_SKIFF_USAGE", place: "command" });
    expect(long.message).toMatch(/too long as the VM's command/);
    expect(errorOf(() => checkMainCommand({ argv: ["a\0b"] }))).toMatchObject({ code: "ERR_SKIFF_USAGE", place: "command" });
    expect(errorOf(() => checkMainCommand({ argv: ["id"], user: "u".repeat(128) }))).toMatchObject({ place: "user" });
  });

  it("has nothing to check without a command (the image's, or a shell)", () => {
    expect(() => checkMainCommand({ argv: [] })).not.toThrow();
  });
});

describe("a VM's options", () => {
  const networks = (n: number) => many(n, (i) => ({ network: `n${i}`, place: "--network" }));

  it("take 16 NICs, user networking counting as one, and refuse 17, naming the flag and the limit", () => {
    expect(() => checkGuestInput({ networks: networks(15) })).not.toThrow();
    expect(() => checkGuestInput({ network: { mode: "none" }, networks: networks(16) })).not.toThrow();
    const err = errorOf(() => checkGuestInput({ networks: networks(16) }));
    expect(err).toMatchObject({ code: "ERR_SKIFF_USAGE", place: "--network" });
    expect(err.message).toMatch(/17 NICs/);
    expect(err.hint).toMatch(/at most 16 nics/);
  });

  it("never take more mounts than the guest does", () => {
    expect(maxMounts).toBeLessThanOrEqual(guestLimits.mounts);
  });

  it("take any number of variables, with newlines, and refuse what no environment can hold", () => {
    expect(() => checkGuestInput({ env: Object.fromEntries(many(5000, (i) => [`V${i}`, "a\nb"])) })).not.toThrow();
    expect(errorOf(() => checkGuestInput({ env: { "A=B": "1" } }))).toMatchObject({ code: "ERR_SKIFF_BAD_ENV", place: "env" });
    expect(errorOf(() => checkGuestInput({ env: { "": "1" } }))).toMatchObject({ code: "ERR_SKIFF_BAD_ENV", place: "env" });
    expect(errorOf(() => checkGuestInput({ env: { A: "x\0y" } }))).toMatchObject({ code: "ERR_SKIFF_BAD_ENV", place: "env" });
  });

  it("are checked again as the initrd is written: a VM recorded with more fails to start, saying why", () => {
    const config = {
      hostname: "h",
      agentPorts: 8,
      env: {},
      network: { nics: [], dns: [], hosts: "" },
      authorizedKey: "k",
      hostKey: Buffer.from("k"),
    };
    const nics = many(17, (i) => ({ name: `eth${i}`, network: `n${i}`, driver: "private" as const, mac: "52:54:00:00:00:01", address: "10.0.0.2/24" }));
    expect(errorOf(() => renderGuestConfig({ ...config, network: { ...config.network, nics } }))).toMatchObject({ code: "ERR_SKIFF_USAGE", place: "nics" });
    expect(errorOf(() => renderGuestConfig({ ...config, agentPorts: 17 }))).toMatchObject({ place: "agentPorts" });
    expect(errorOf(() => renderEnvFile({ "A=B": "1" }))).toMatchObject({ code: "ERR_SKIFF_BAD_ENV" });
  });
});

describe("Skiff.create", () => {
  it.each([
    ["17 NICs", { networks: many(16, (i) => ({ network: `n${i}` })) }, "ERR_SKIFF_USAGE", "networks"],
    ["a command of 1023 arguments", { command: many(1023, () => "a") }, "ERR_SKIFF_USAGE", "command"],
    ["an entrypoint and command of 1023 together", { entrypoint: many(1000, () => "a"), command: many(23, () => "b") }, "ERR_SKIFF_USAGE", "command"],
    ["an env name with '='", { env: { "A=B": "1" } }, "ERR_SKIFF_BAD_ENV", "env"],
  ])("refuses %s before it makes (or pulls) anything", async (_what, opts, code, place) => {
    const { home, cleanup } = await makeTempHome();
    try {
      const skiff = new Skiff({ home });
      await expect(skiff.create({ image: "alpine", ...opts })).rejects.toMatchObject({ code, place });
      expect(await skiff.list({ all: true })).toEqual([]);
    } finally {
      await cleanup();
    }
  });
});
