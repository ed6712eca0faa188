/**
 * The SDK against `skiff serve` (the built CLI on 127.0.0.1 with its token
 * file, as a user runs it): one sandbox (base, 256m) made with
 * `{ host, token }`, the example's tour on it over HTTP and exec
 * WebSockets, a non-zero exit as the same CommandExitError as in process,
 * and list/pause/connect/kill by id through the server.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommandExitError, Sandbox, type SandboxConnectOpts } from "../../dist/sdk/index.js";
import { expectTour } from "./sdk-tour.js";
import { Harness } from "./harness.js";
import { startServe, type ServeProcess } from "./serve-process.js";

const h = new Harness();
let server: ServeProcess | undefined;
let where: SandboxConnectOpts;

async function serve(): Promise<string> {
  server = await startServe(h);
  return server.url;
}

describe("Sandbox over skiff serve", () => {
  let sb: Sandbox;

  beforeAll(async () => {
    const url = await serve();
    where = { host: url, token: readFileSync(join(h.home, "serve-token"), "utf8").trim() };
    sb = await Sandbox.create({ ...where, memory: 256, timeoutMs: 0, metadata: { suite: "sdk-remote" } });
  });
  afterAll(async () => {
    if (where !== undefined) for (const s of await Sandbox.list(where).catch(() => [])) await Sandbox.kill(s.sandboxId, where).catch(() => undefined);
    await server?.stop();
    if (process.env.SKIFF_KEEP_LOGS) console.log(h.consoleLogs());
    await h.cleanup();
  });

  it("runs the example's tour remotely", async () => {
    await expectTour(sb, { suite: "sdk-remote" });
  });

  it("a non-zero exit throws CommandExitError with the result on it", async () => {
    const err = await sb.commands.run("echo out; echo err >&2; exit 7").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandExitError);
    expect(err).toMatchObject({ code: "ERR_SKIFF_COMMAND_EXIT", exitCode: 7, stdout: "out\n", stderr: "err\n" });
  });

  it("list, pause, connect and kill by id go through the server", async () => {
    const listed = await Sandbox.list(where);
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ sandboxId: sb.sandboxId, state: "running", templateId: "base", memoryMB: 256, metadata: { suite: "sdk-remote" } });
    expect(listed[0]!.startedAt).toBeInstanceOf(Date);
    await sb.pause();
    expect((await Sandbox.list(where))[0]).toMatchObject({ sandboxId: sb.sandboxId, state: "paused" });
    await expect(sb.commands.run("true")).rejects.toMatchObject({ code: "ERR_SKIFF_VM_PAUSED" });
    // connect resumes a paused sandbox, as in process.
    const again = await Sandbox.connect(sb.sandboxId, where);
    expect((await again.commands.run("echo back")).stdout).toBe("back\n");
    await expect(Sandbox.connect("no-such-sandbox", where)).rejects.toMatchObject({ code: "ERR_SKIFF_VM_NOT_FOUND" });
    expect(await Sandbox.kill(sb.sandboxId, where)).toBe(true);
    expect(await Sandbox.kill(sb.sandboxId, where)).toBe(false);
    expect(await Sandbox.list(where)).toEqual([]);
  });
});
