/**
 * The SDK on real VMs (`base`, TCG), built (dist/, as `skiff/sdk` resolves
 * for a user): one sandbox, on which the example's tour runs
 * (examples/sdk/sandbox.mjs), then the error paths (CommandExitError, a
 * command's timeout, a missing file, hostile names in a listing, a read
 * past its bound), pause and connect; a fork of it; and a sandbox restored
 * from its snapshot that its timeoutMs kills; last, setTimeout moving the
 * first sandbox's end, and this process's timer killing it there. One boot
 * and two restores.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Skiff } from "../../dist/index.js";
import { CommandExitError, Sandbox, type SandboxConnectOpts } from "../../dist/sdk/index.js";
import { expectTour } from "./sdk-tour.js";
import { Harness, sharedCache } from "./harness.js";

const h = new Harness();
const where: SandboxConnectOpts = { home: h.home, cacheDir: sharedCache };
// In process, the harness's environment is ours to set: guests reach nothing beyond the host.
process.env.SKIFF_USERNET_RESTRICT = "1";

async function gone(id: string, withinMs: number): Promise<boolean> {
  const until = Date.now() + withinMs;
  while (Date.now() < until) {
    if (!(await Sandbox.list(where)).some((s) => s.sandboxId === id)) return true;
    await sleep(250);
  }
  return false;
}

describe("Sandbox in process", () => {
  let sb: Sandbox;
  const skiff = new Skiff(where);

  beforeAll(async () => {
    sb = await Sandbox.create({ ...where, memory: 256, timeoutMs: 0, metadata: { suite: "sdk" } });
  });
  afterAll(async () => {
    for (const s of await Sandbox.list(where).catch(() => [])) await Sandbox.kill(s.sandboxId, where).catch(() => undefined);
    // Only this home's snapshots: `all` would also take the boot snapshots in the cache the other test files share.
    for (const snap of await skiff.listSnapshots().catch(() => [])) {
      if (snap.kind !== "boot") await skiff.removeSnapshot(snap.id, { force: true }).catch(() => undefined);
    }
    if (process.env.SKIFF_KEEP_LOGS) console.log(h.consoleLogs());
    await h.cleanup();
  });

  it("runs the example's tour", async () => {
    await expectTour(sb, { suite: "sdk" });
  });

  it("refuses options it does not know, before making anything", async () => {
    await expect(Sandbox.create({ ...where, memroy: 256 } as never)).rejects.toMatchObject({ code: "ERR_SKIFF_USAGE", place: "memroy" });
    await expect(Sandbox.create("base", { ...where, cpu: 2 } as never)).rejects.toMatchObject({ code: "ERR_SKIFF_USAGE", place: "cpu" });
    await expect(Sandbox.create({ ...where, snapshot: "x", cpus: 2 })).rejects.toMatchObject({ code: "ERR_SKIFF_USAGE", place: "cpus" });
    expect(await Sandbox.list(where)).toHaveLength(1);
  });

  it("a non-zero exit throws CommandExitError with the result on it", async () => {
    const err = await sb.commands.run("echo out; echo err >&2; exit 7").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandExitError);
    expect(err).toMatchObject({ code: "ERR_SKIFF_COMMAND_EXIT", exitCode: 7, stdout: "out\n", stderr: "err\n" });
    // The shell string is the shell's: quoting, pipes, variables.
    expect((await sb.commands.run("printf '%s|' \"a b\" c | tr '|' '\\n' | wc -l", { envs: { X: "1" } })).stdout.trim()).toBe("2");
  });

  it("a command's timeoutMs kills it", async () => {
    const t0 = Date.now();
    await expect(sb.commands.run("sleep 30", { timeoutMs: 1000 })).rejects.toMatchObject({ code: "ERR_SKIFF_TIMEOUT" });
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect((await sb.commands.run("pgrep -x sleep || echo none")).stdout.trim()).toBe("none");
  });

  it("background commands are listed, fed and killed by pid", async () => {
    const bg = await sb.commands.run("cat", { background: true, stdin: true, timeoutMs: 0 });
    expect((await sb.commands.list()).map((p) => p.pid)).toContain(bg.pid);
    await sb.commands.sendStdin(bg.pid, "fed\n");
    const until = Date.now() + 10_000;
    while (bg.stdout !== "fed\n" && Date.now() < until) await sleep(50);
    expect(bg.stdout).toBe("fed\n");
    expect(await sb.commands.kill(bg.pid)).toBe(true);
    await expect(bg.wait()).rejects.toMatchObject({ exitCode: 137, error: "killed by SIGKILL" });
    expect(await sb.commands.kill(bg.pid)).toBe(false);
    expect(await sb.commands.list()).toEqual([]);
  });

  it("files: coded errors, bounds, every byte value, and names a guest should not pass on", async () => {
    await expect(sb.files.read("/no/such/file")).rejects.toMatchObject({ code: "ERR_SKIFF_FILE_NOT_FOUND" });
    await expect(sb.files.read("/tmp")).rejects.toMatchObject({ code: "ERR_SKIFF_BAD_PATH" });
    await expect(sb.files.list("/no/such/dir")).rejects.toMatchObject({ code: "ERR_SKIFF_FILE_NOT_FOUND" });
    await expect(sb.files.remove("/no/such/file")).rejects.toMatchObject({ code: "ERR_SKIFF_FILE_NOT_FOUND" });
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    await sb.files.write("/tmp/bytes", all);
    expect(await sb.files.read("/tmp/bytes", { format: "bytes" })).toEqual(all);
    await expect(sb.files.read("/tmp/bytes", { maxBytes: 100 })).rejects.toMatchObject({ code: "ERR_SKIFF_OUTPUT_TOO_LARGE" });
    expect(await sb.files.makeDir("/tmp/names")).toBe(true);
    expect(await sb.files.makeDir("/tmp/names")).toBe(false);
    // A name with a newline and tabs shaped like a second record, and one with a terminal escape.
    await sb.commands.run("cd /tmp/names && touch plain 'with space' \"$(printf 'x\\nfile\\t0\\tforged')\" \"$(printf 'esc\\033[2J')\" && mkdir sub && ln -s plain link");
    const entries = await sb.files.list("/tmp/names");
    expect(entries.map((e) => [e.name, e.type, e.path])).toEqual([
      ["link", "symlink", "/tmp/names/link"],
      ["plain", "file", "/tmp/names/plain"],
      ["sub", "dir", "/tmp/names/sub"],
      ["with space", "file", "/tmp/names/with space"],
    ]);
  });

  it("pause stops it, a running command goes on after; connect resumes it", async () => {
    const running = await sb.commands.run("read x; echo after $x", { background: true, stdin: true, timeoutMs: 0 });
    await sb.pause();
    expect((await Sandbox.list(where)).find((s) => s.sandboxId === sb.sandboxId)).toMatchObject({ state: "paused", metadata: { suite: "sdk" } });
    await expect(sb.commands.run("true")).rejects.toMatchObject({ code: "ERR_SKIFF_VM_PAUSED" });
    const again = await Sandbox.connect(sb.sandboxId, where);
    expect((await again.commands.run("echo back")).stdout).toBe("back\n");
    await running.sendStdin("pause\n");
    expect((await running.wait()).stdout).toBe("after pause\n");
  });

  it("fork: a clone where it stood, whose writes are its own", async () => {
    await sb.files.write("/root/state", "before fork");
    const [clone, ...more] = await sb.fork(1);
    expect(more).toEqual([]);
    expect(clone).toBeDefined();
    expect(await clone!.files.read("/root/state")).toBe("before fork");
    expect((await clone!.getInfo()).metadata).toEqual({ suite: "sdk" });
    await clone!.files.write("/root/state", "clone's");
    expect(await sb.files.read("/root/state")).toBe("before fork");
    expect(await clone!.kill()).toBe(true);
    expect(await clone!.kill()).toBe(false);
  });

  it("a sandbox restored from a snapshot, killed by its timeoutMs", async () => {
    await sb.snapshot("sdk-test");
    const short = await Sandbox.create({ ...where, snapshot: "sdk-test", timeoutMs: 1 });
    expect(await gone(short.sandboxId, 30_000)).toBe(true);
    expect(await short.isRunning()).toBe(false);
    await expect(Sandbox.connect(short.sandboxId, where)).rejects.toMatchObject({ code: "ERR_SKIFF_VM_NOT_FOUND" });
  });

  it("setTimeout moves the end; the timer in this process kills it then", async () => {
    const before = Date.now();
    await sb.setTimeout(600_000);
    const moved = (await sb.getInfo()).endAt!.getTime();
    expect(moved).toBeGreaterThanOrEqual(before + 600_000);
    expect(moved).toBeLessThanOrEqual(Date.now() + 600_000);
    await sb.setTimeout(1_000);
    // Looked at through the library: no SDK call, which would reap it itself.
    const until = Date.now() + 30_000;
    while ((await skiff.list({ all: true })).some((vm) => vm.name === sb.sandboxId)) {
      if (Date.now() > until) throw new Error(`${sb.sandboxId} outlived its moved end`);
      await sleep(250);
    }
  });
});
