/**
 * The library's one-shot verbs on a real VM (no network): `create` with the
 * CLI's memory units, `exec` returning code and output, `cp` both ways.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Skiff } from "../../src/index.js";
import { Harness, sharedCache } from "./harness.js";

describe("Skiff.exec and Skiff.cp", () => {
  const h = new Harness();
  const skiff = new Skiff({ home: h.home, cacheDir: sharedCache });
  let local: string;

  beforeAll(async () => {
    local = await mkdtemp(join(tmpdir(), "skiff-oneshot-"));
    const info = await skiff.create({ image: "base", name: "oneshot", memory: "320m", network: { mode: "none" } });
    expect(info.memoryMiB).toBe(320);
    await skiff.start("oneshot");
  });
  afterAll(async () => {
    await skiff.remove("oneshot", { force: true }).catch(() => undefined);
    if (process.env.SKIFF_KEEP_LOGS) console.log(h.consoleLogs());
    await h.cleanup();
    await rm(local, { recursive: true, force: true });
  });

  it("exec returns the exit code with stdout and stderr apart", async () => {
    expect(await skiff.exec("oneshot", ["sh", "-c", "echo out; echo err >&2; exit 3"])).toEqual({ code: 3, stdout: "out\n", stderr: "err\n" });
    expect(await skiff.exec("oneshot", ["cat"], { input: "fed on stdin" })).toEqual({ code: 0, stdout: "fed on stdin", stderr: "" });
    expect((await skiff.exec("oneshot", ["sh", "-c", "ip -o link | grep -c eth"])).stdout.trim()).toBe("0");
  });

  it("cp copies into the VM and back out", async () => {
    await writeFile(join(local, "in.txt"), "from the host\n");
    expect(await skiff.cp(join(local, "in.txt"), "oneshot:/tmp/in.txt")).toBeUndefined();
    expect((await skiff.exec("oneshot", ["cat", "/tmp/in.txt"])).stdout).toBe("from the host\n");
    await skiff.exec("oneshot", ["sh", "-c", "echo from the guest > /tmp/out.txt"]);
    const report = await skiff.cp("oneshot:/tmp/out.txt", join(local, "out.txt"));
    expect(report).toMatchObject({ skipped: { devices: 0, fifos: 0, other: 0 }, setidCleared: 0 });
    expect(await readFile(join(local, "out.txt"), "utf8")).toBe("from the guest\n");
  });

  it("refuses what it cannot do, with the usual codes", async () => {
    await expect(skiff.exec("nobody", ["true"])).rejects.toMatchObject({ code: "ERR_SKIFF_VM_NOT_FOUND" });
    await expect(skiff.exec("oneshot", [])).rejects.toMatchObject({ code: "ERR_SKIFF_USAGE" });
    await expect(skiff.cp(join(local, "in.txt"), "oneshot:relative")).rejects.toMatchObject({ code: "ERR_SKIFF_BAD_PATH" });
  });
});
