/**
 * Skiff.run, the library's `docker run`, on real VMs (no network): in the
 * foreground it returns the main command's exit code and output and stops
 * the VM (removes it with autoRemove); detached it leaves the VM running
 * with the command in the guest's background; without a command it runs
 * the image's own.
 */
import { afterAll, describe, expect, it } from "vitest";
import { Skiff } from "../../src/index.js";
import { Harness, sharedCache } from "./harness.js";

describe("Skiff.run", () => {
  const h = new Harness();
  const skiff = new Skiff({ home: h.home, cacheDir: sharedCache });
  const none = { mode: "none" } as const;

  afterAll(async () => {
    for (const vm of await skiff.list({ all: true })) await skiff.remove(vm.name, { force: true }).catch(() => undefined);
    if (process.env.SKIFF_KEEP_LOGS) console.log(h.consoleLogs());
    await h.cleanup();
  });

  it("in the foreground returns the command's code and output, then removes the VM (autoRemove)", async () => {
    const r = await skiff.run({ image: "base", name: "run-rm", command: ["sh", "-c", "echo out; echo err >&2; exit 4"], network: none, autoRemove: true });
    expect(r).toMatchObject({ code: 4, stdout: "out\n", stderr: "err\n" });
    expect(r.vm.name).toBe("run-rm");
    expect((await skiff.list({ all: true })).map((v) => v.name)).not.toContain("run-rm");
  });

  it("without autoRemove stops the VM, its writes kept for the next start", async () => {
    const r = await skiff.run({ image: "base", name: "run-keep", command: ["sh", "-c", "echo kept > /root/mark"], network: none });
    expect(r.code).toBe(0);
    expect((await skiff.inspect("run-keep")).state).toBe("stopped");
    await skiff.start("run-keep");
    expect((await skiff.exec("run-keep", ["cat", "/root/mark"])).stdout).toBe("kept\n");
    await skiff.remove("run-keep", { force: true });
  });

  it("detached leaves the VM running with its command in the background", async () => {
    const r = await skiff.run({ image: "base", name: "run-d", command: ["sh", "-c", "echo started > /tmp/started; sleep 300"], network: none }, { detach: true });
    expect(r.code).toBeUndefined();
    expect((await skiff.inspect("run-d")).state).toBe("running");
    // It runs once run returns; its first write may take a moment under TCG.
    let seen = "";
    for (let i = 0; i < 50 && seen === ""; i++) {
      seen = (await skiff.exec("run-d", ["cat", "/tmp/started"])).stdout;
      if (seen === "") await new Promise((done) => setTimeout(done, 200));
    }
    expect(seen).toBe("started\n");
    await skiff.remove("run-d", { force: true });
  });

  it("runs the image's own command when given none (base: a shell, here with no input) and leaves nothing", async () => {
    const r = await skiff.run({ image: "base", name: "run-default", network: none, autoRemove: true });
    expect(r).toMatchObject({ code: 0, stdout: "", stderr: "" });
    expect(r.vm.command).toEqual(["/bin/sh"]);
    expect((await skiff.list({ all: true })).map((v) => v.name)).not.toContain("run-default");
  });
});
