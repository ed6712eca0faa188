import { describe, expect, it } from "vitest";
import {
  formatAge,
  formatBytes,
  formatDuration,
  parseCpus,
  parseDuration,
  parseEnv,
  parseEnvList,
  parseMemory,
  parseSignal,
  checkMemoryMiB,
  hostMemoryMiB,
} from "../../src/util/units.js";
import { errorOf } from "./fixtures/errors.js";

describe("parseMemory", () => {
  it.each([
    ["256m", 256],
    ["512M", 512],
    ["1g", 1024],
    ["1.5G", 1536],
    ["2GiB", 2048],
    ["1gb", 1024],
    ["1024", 1024],
    ["163840k", 160],
    [" 192 MiB ", 192],
    ["1t", 1048576],
  ])("%s is %d MiB", (input, mib) => {
    expect(parseMemory(input, "--memory", 2 ** 21)).toBe(mib);
  });

  it.each(["", "m", "abc", "-1g", "1x", "1e3", "0.1g", "63m", "100000k"])("rejects %j", (input) => {
    const err = errorOf(() => parseMemory(input));
    expect(err.code).toBe("ERR_SKIFF_BAD_MEMORY");
    expect(err.place).toBe("memory");
    expect(err.hint).toContain("256m");
  });

  it("names the place it was given", () => {
    expect(errorOf(() => parseMemory("x", "skiff.yml:3")).place).toBe("skiff.yml:3");
  });

  it("refuses more than the host's memory, saying the maximum (QEMU could not set it up at start)", () => {
    const err = errorOf(() => parseMemory("1t", "memory", 24_105));
    expect(err.code).toBe("ERR_SKIFF_BAD_MEMORY");
    expect(err.place).toBe("memory");
    expect(err.message).toBe(`invalid memory size "1t": more than this host's memory, 24105 MiB (23.5 GiB)`);
    expect(err.hint).toContain("at most 24105 MiB (23.5 GiB), the host's RAM");
    expect(parseMemory("24105m", "--memory", 24_105)).toBe(24_105);
    // By default the bound is this host's RAM.
    expect(errorOf(() => parseMemory(`${hostMemoryMiB() + 1}m`)).code).toBe("ERR_SKIFF_BAD_MEMORY");
    expect(parseMemory(`${hostMemoryMiB()}m`)).toBe(hostMemoryMiB());
  });

  it("checks a size given in MiB (the library's memoryMiB) the same way", () => {
    expect(checkMemoryMiB(512, "memoryMiB", { maxMiB: 1024 })).toBe(512);
    expect(errorOf(() => checkMemoryMiB(2048, "memoryMiB", { maxMiB: 1024 })).place).toBe("memoryMiB");
    expect(errorOf(() => checkMemoryMiB(63, "memoryMiB", { maxMiB: 1024 })).message).toContain("at least 64 MiB");
    // The parser's floor is any kernel's; whether this VM's kernel boots in it is checked at create (kernel/boot-memory.ts).
    expect(checkMemoryMiB(64, "memoryMiB", { maxMiB: 1024 })).toBe(64);
    expect(errorOf(() => checkMemoryMiB(256.5, "memoryMiB", { maxMiB: 1024 })).message).toContain("not a whole number");
  });
});

describe("parseCpus", () => {
  it("takes whole numbers from 1 to 255", () => {
    expect(parseCpus("1")).toBe(1);
    expect(parseCpus("16")).toBe(16);
    expect(parseCpus("255")).toBe(255);
  });

  it.each(["0", "256", "1.5", "-2", "two", ""])("rejects %j", (input) => {
    expect(errorOf(() => parseCpus(input)).code).toBe("ERR_SKIFF_BAD_CPUS");
  });
});

describe("parseEnv", () => {
  const host = { HOME: "/root", EMPTY: "" };

  it("splits KEY=VALUE at the first =", () => {
    expect(parseEnv("A=1", host)).toEqual(["A", "1"]);
    expect(parseEnv("URL=a=b", host)).toEqual(["URL", "a=b"]);
    expect(parseEnv("E=", host)).toEqual(["E", ""]);
  });

  it("takes KEY alone from the host environment, and leaves it out when unset", () => {
    expect(parseEnv("HOME", host)).toEqual(["HOME", "/root"]);
    expect(parseEnv("EMPTY", host)).toEqual(["EMPTY", ""]);
    expect(parseEnv("NOPE", host)).toBeUndefined();
  });

  it.each(["=x", "1A=x", "A B=x", "", "A-B=1"])("rejects %j", (input) => {
    const err = errorOf(() => parseEnv(input, host));
    expect(err.code).toBe("ERR_SKIFF_BAD_ENV");
    expect(err.place).toBe("env");
  });

  it("builds a map where later values win", () => {
    expect(parseEnvList(["A=1", "B=2", "A=3", "NOPE", "HOME"], host)).toEqual({ A: "3", B: "2", HOME: "/root" });
  });
});

describe("parseSignal", () => {
  it.each([
    ["KILL", "SIGKILL", 9],
    ["SIGKILL", "SIGKILL", 9],
    ["kill", "SIGKILL", 9],
    ["9", "SIGKILL", 9],
    ["TERM", "SIGTERM", 15],
    ["hup", "SIGHUP", 1],
    ["SIGUSR1", "SIGUSR1", 10],
  ])("%s is %s", (input, name, number) => {
    expect(parseSignal(input)).toEqual({ name, number });
  });

  it.each(["", "SIGNOPE", "999", "-9", "9x"])("rejects %j", (input) => {
    expect(errorOf(() => parseSignal(input)).code).toBe("ERR_SKIFF_BAD_SIGNAL");
  });
});

describe("parseDuration", () => {
  it.each([
    ["10", 10_000],
    ["0", 0],
    ["1.5", 1500],
    ["10s", 10_000],
    ["500ms", 500],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1m30s", 90_000],
    ["1.5s", 1500],
  ])("%s is %d ms", (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(["", "s", "10x", "-1s", "1 m", "ms10"])("rejects %j", (input) => {
    const err = errorOf(() => parseDuration(input));
    expect(err.code).toBe("ERR_SKIFF_BAD_DURATION");
    expect(err.place).toBe("timeout");
  });
});

describe("formatBytes", () => {
  it.each([
    [0, "0 B"],
    [512, "512 B"],
    [1536, "1.5 KiB"],
    [256 * 1024 * 1024, "256 MiB"],
    [70 * 1024 * 1024 + 300 * 1024, "70.3 MiB"],
    [1.25 * 1024 ** 3, "1.3 GiB"],
    [2 * 1024 ** 5, "2 PiB"],
  ])("%d is %s", (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});

describe("formatDuration / formatAge", () => {
  const s = 1000;
  const min = 60 * s;
  const h = 60 * min;
  const d = 24 * h;
  it.each([
    [500, "Less than a second"],
    [1 * s, "1 second"],
    [42 * s, "42 seconds"],
    [90 * s, "About a minute"],
    [3 * min, "3 minutes"],
    [59 * min, "59 minutes"],
    [70 * min, "About an hour"],
    [5 * h, "5 hours"],
    [47 * h, "47 hours"],
    [3 * d, "3 days"],
    [20 * d, "2 weeks"],
    [90 * d, "3 months"],
    [800 * d, "2 years"],
  ])("%d ms is %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("says ago", () => {
    expect(formatAge(3 * min)).toBe("3 minutes ago");
  });
});
