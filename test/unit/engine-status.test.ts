import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { observeStatus } from "../../src/engine/status.js";
import { vmPaths } from "../../src/store/vmdir.js";
import { processStartTime } from "../../src/process/pid.js";
import { hostTscKhz } from "../../src/engine/host.js";

describe("observeStatus", () => {
  let home: string;
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), "status-"));
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  const paths = () => {
    const p = vmPaths(home, "0123456789ab");
    mkdirSync(p.dir, { recursive: true });
    return p;
  };

  it("says created before the first start", async () => {
    expect((await observeStatus(paths(), {})).state).toBe("created");
  });

  it("says running when the pidfile names a live process with the recorded start time", async () => {
    const p = paths();
    writeFileSync(p.pidfile, `${process.pid}\n`);
    const startTime = processStartTime(process.pid)!;
    const s = await observeStatus(p, { qemu: { pid: process.pid, startTime } });
    expect(s).toEqual({ state: "running", pid: process.pid });
  });

  it("does not mistake a reused pid for QEMU", async () => {
    const p = paths();
    writeFileSync(p.pidfile, `${process.pid}\n`);
    const s = await observeStatus(p, { qemu: { pid: process.pid, startTime: 1 } });
    expect(s.state).toBe("crashed");
  });

  it("says crashed when QEMU died and left its pidfile", async () => {
    const p = paths();
    writeFileSync(p.pidfile, "999999999\n");
    expect((await observeStatus(p, { qemu: { pid: 999999999, startTime: 5 } })).state).toBe("crashed");
  });

  it("says stopped when QEMU removed its pidfile (guest power-off)", async () => {
    const s = await observeStatus(paths(), { qemu: { pid: 999999999, startTime: 5 } });
    expect(s).toEqual({ state: "stopped", reason: "guest-poweroff" });
  });

  it("trusts a recorded exit", async () => {
    const s = await observeStatus(paths(), { qemu: { pid: 1, startTime: 1 }, exit: { at: "x", reason: "killed" } });
    expect(s).toEqual({ state: "stopped", reason: "killed" });
  });
});

describe("hostTscKhz", () => {
  it("reads cpu MHz from cpuinfo", () => {
    expect(hostTscKhz("processor : 0\ncpu MHz\t\t: 2596.150\n")).toBe(2596150);
    expect(hostTscKhz("nothing here")).toBeUndefined();
  });
});
