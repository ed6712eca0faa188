import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { observeStatus } from "../../src/engine/status.js";
import { vmPaths, type VmConfig } from "../../src/store/vmdir.js";
import { processStartTime } from "../../src/process/pid.js";
import { hostTscKhz } from "../../src/engine/host.js";
import { fakeQemu, type FakeQemu } from "./fixtures/fake-qemu.js";

describe("observeStatus", () => {
  let home: string;
  const fakes: FakeQemu[] = [];
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), "status-"));
  });
  afterEach(async () => {
    for (const f of fakes.splice(0)) await f.stop();
    rmSync(home, { recursive: true, force: true });
  });

  const vm = (config: Pick<VmConfig, "jail"> = {}) => {
    const paths = vmPaths(home, "0123456789ab");
    mkdirSync(paths.runDir, { recursive: true });
    return { paths, config };
  };
  const start = async (opts: Parameters<typeof fakeQemu>[0]) => {
    const f = await fakeQemu(opts);
    fakes.push(f);
    return f;
  };

  it("says created before the first start", async () => {
    expect((await observeStatus(vm(), {})).state).toBe("created");
  });

  it("finds the running QEMU by the pidfile its command line names, whatever state.json says", async () => {
    const v = vm();
    const q = await start({ pidfile: v.paths.pidfile });
    // No state at all: a skiff killed right after starting QEMU never wrote it.
    const s = await observeStatus(v, {});
    expect(s).toEqual({ state: "running", pid: q.pid, qemu: { pid: q.pid, startTime: processStartTime(q.pid) } });
  });

  it("does not believe a pidfile: one naming another live process is not a running VM", async () => {
    const v = vm();
    // A QEMU taken over by its guest writes its own pidfile: here, this test's pid.
    writeFileSync(v.paths.pidfile, `${process.pid}\n`);
    const s = await observeStatus(v, { qemu: { pid: process.pid, startTime: processStartTime(process.pid)! } });
    expect(s.state).toBe("crashed");
  });

  it("finds a jailed QEMU by its jail uid even when its command line hides the pidfile", async () => {
    const uid = 1_599_999_001;
    const q = await start({ uid });
    const s = await observeStatus(vm({ jail: { uid, gid: uid } }), {});
    expect(s.qemu?.pid).toBe(q.pid);
  });

  it("does not take a process of another VM's jail uid for this VM's QEMU", async () => {
    const v = vm({ jail: { uid: 1_599_999_002, gid: 1_599_999_002 } });
    await start({ uid: 1_599_999_003, pidfile: "/elsewhere/run/qemu.pid" });
    expect((await observeStatus(v, {})).state).toBe("created");
  });

  it("says crashed when QEMU died and left its pidfile", async () => {
    const v = vm();
    writeFileSync(v.paths.pidfile, "999999999\n");
    expect((await observeStatus(v, { qemu: { pid: 999999999, startTime: 5 } })).state).toBe("crashed");
  });

  it("says stopped when QEMU removed its pidfile (guest power-off)", async () => {
    const s = await observeStatus(vm(), { qemu: { pid: 999999999, startTime: 5 } });
    expect(s).toEqual({ state: "stopped", reason: "guest-poweroff" });
  });

  it("trusts a recorded exit", async () => {
    const s = await observeStatus(vm(), { qemu: { pid: 1, startTime: 1 }, exit: { at: "x", reason: "killed" } });
    expect(s).toEqual({ state: "stopped", reason: "killed" });
  });
});

describe("hostTscKhz", () => {
  it("reads cpu MHz from cpuinfo", () => {
    expect(hostTscKhz("processor : 0\ncpu MHz\t\t: 2596.150\n")).toBe(2596150);
    expect(hostTscKhz("nothing here")).toBeUndefined();
  });
});
