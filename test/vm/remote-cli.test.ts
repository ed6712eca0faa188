/**
 * The remote CLI: `skiff --host URL` (and SKIFF_HOST + SKIFF_TOKEN) runs
 * commands against a real `skiff serve` on 127.0.0.1, from a client with a
 * home of its own, with the output and exit codes the same commands give on
 * the server's host. One VM (base, 256m, no network) serves most tests.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Harness } from "./harness.js";
import { startServe, type ServeProcess } from "./serve-process.js";

describe("skiff --host", () => {
  const server = new Harness();
  const client = new Harness();
  const local = mkdtempSync(join(tmpdir(), "skiff-remote-"));
  let serve: ServeProcess;
  let remote: Record<string, string>;
  const viaHost = (args: string[], input?: string) => client.run(["--host", serve.url, ...args], { env: { SKIFF_TOKEN: serve.token ?? "" }, ...(input === undefined ? {} : { input }) });
  const viaEnv = (args: string[]) => client.run(args, { env: remote });

  beforeAll(async () => {
    serve = await startServe(server);
    remote = { SKIFF_HOST: serve.url, SKIFF_TOKEN: serve.token ?? "" };
    expect((await viaEnv(["run", "-d", "--name", "far", "--memory", "256m", "--network", "none", "base"])).stdout).toBe("far\n");
  });
  afterAll(async () => {
    // The harnesses' cleanup kills whatever a failed test left running (QEMU, the server, a hung client),
    // even when the polite steps before it fail or hang.
    try {
      await Promise.race([serve?.stop(), new Promise((r) => setTimeout(r, 20_000))]);
      await server.run(["rm", "-f", "far"], { timeoutMs: 30_000 });
    } finally {
      await client.cleanup();
      await server.cleanup();
      rmSync(local, { recursive: true, force: true });
    }
  }, 180_000);

  it("lists and inspects the server's VMs as the server's host does", async () => {
    const [there, here] = await Promise.all([viaEnv(["ps", "-a", "--format", "json"]), server.run(["ps", "-a", "--format", "json"])]);
    expect(there.code).toBe(0);
    const names = (text: string) => (JSON.parse(text) as { name: string; state: string; memoryMiB: number }[]).map((v) => [v.name, v.state, v.memoryMiB]);
    expect(names(there.stdout)).toEqual(names(here.stdout));
    expect(names(there.stdout)).toEqual([["far", "running", 256]]);
    // The client's own home has no VMs: the listing came from the server.
    expect((await client.ok(["ps", "-a", "-q"])).trim()).toBe("");
    expect((await viaHost(["ps", "-q"])).stdout).toBe((await server.ok(["ps", "-q"])));
    const inspected = JSON.parse((await viaHost(["inspect", "far"])).stdout) as { name: string; id: string }[];
    expect(inspected[0]?.id).toBe((JSON.parse(await server.ok(["inspect", "far"])) as { id: string }[])[0]?.id);
  });

  it("execs with stdout and stderr apart, stdin, a login shell, and the guest's exit code", async () => {
    const r = await viaHost(["exec", "far", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect([r.code, r.stdout, r.stderr]).toEqual([3, "out\n", "err\n"]);
    const piped = await viaHost(["exec", "-i", "far", "tr", "a-z", "A-Z"], "shout\n");
    expect([piped.code, piped.stdout]).toEqual([0, "SHOUT\n"]);
    const shell = await viaHost(["exec", "-i", "far", "sh"], "echo in-shell; exit 4\n");
    expect([shell.code, shell.stdout]).toEqual([4, "in-shell\n"]);
  });

  it("runs a foreground VM through the server, attached, and removes it with --rm", async () => {
    const r = await viaEnv(["run", "--rm", "--memory", "256m", "--network", "none", "base", "sh", "-c", "cat; echo err >&2; exit 5"]);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain("err\n");
    const piped = await client.run(["run", "--rm", "-i", "--memory", "256m", "--network", "none", "base", "sh", "-c", "tr a-z A-Z"], { env: remote, input: "through\n" });
    expect([piped.code, piped.stdout]).toEqual([0, "THROUGH\n"]);
    expect((await server.ok(["ps", "-a", "-q"])).trim()).toBe("far");
  });

  it("copies files and directories both ways, and a tar out, with the same guest-side copy as here", async () => {
    mkdirSync(join(local, "tree", "sub"), { recursive: true });
    writeFileSync(join(local, "tree", "sub", "f"), "far away\n");
    expect((await viaHost(["cp", join(local, "tree"), "far:/tmp/"])).code).toBe(0);
    expect((await viaHost(["exec", "far", "cat", "/tmp/tree/sub/f"])).stdout).toBe("far away\n");
    mkdirSync(join(local, "back"));
    expect((await viaHost(["cp", "far:/tmp/tree", join(local, "back")])).code).toBe(0);
    expect(readFileSync(join(local, "back", "tree", "sub", "f"), "utf8")).toBe("far away\n");
    const tar = await viaHost(["cp", "far:/tmp/tree", "-"]);
    expect(tar.code).toBe(0);
    expect(tar.stdout).toContain("tree/sub/f");
    const missing = await viaHost(["cp", "far:/nope", join(local, "back")]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("ERR_SKIFF_FILE_NOT_FOUND");
  });

  it("reads logs, makes and removes snapshots, volumes and networks on the server", async () => {
    const logs = await viaHost(["logs", "-n", "5", "far"]);
    expect(logs.code).toBe(0);
    expect(logs.stdout.split("\n").length).toBeLessThanOrEqual(6);
    expect((await viaEnv(["snapshot", "create", "far", "--name", "remote-snap"])).stdout).toBe("remote-snap\n");
    expect(await server.ok(["snapshot", "ls", "far"])).toContain("remote-snap");
    expect((await viaEnv(["snapshot", "rm", "remote-snap"])).code).toBe(0);
    expect((await viaEnv(["volume", "create", "remote-vol"])).stdout).toBe("remote-vol\n");
    expect(await server.ok(["volume", "ls"])).toContain("remote-vol");
    expect((await viaEnv(["volume", "rm", "remote-vol"])).code).toBe(0);
    expect((await viaEnv(["network", "create", "remote-net"])).stdout).toBe("remote-net\n");
    expect((await viaEnv(["network", "ls"])).stdout).toContain("remote-net");
    expect((await viaEnv(["network", "rm", "remote-net"])).code).toBe(0);
    expect(await server.ok(["network", "ls", "-q"]).catch(() => "")).not.toContain("remote-net");
  });

  it("gives the server's errors with their codes and exit codes, and refuses what only runs on the VMs' host", async () => {
    const [there, here] = await Promise.all([viaEnv(["stop", "nothing-here"]), server.run(["stop", "nothing-here"])]);
    expect(there.code).toBe(here.code);
    expect(there.stderr).toBe(here.stderr);
    const ssh = await viaHost(["ssh", "far", "true"]);
    expect(ssh.code).toBe(2);
    expect(ssh.stderr).toContain("ERR_SKIFF_LOCAL_ONLY (--host)");
    const wrong = await client.run(["ps"], { env: { ...remote, SKIFF_TOKEN: "wrong" } });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("ERR_SKIFF_UNAUTHORIZED");
  });

  it("brings a project up, lists it, stops and takes it down through the server, its file read here", async () => {
    const file = join(local, "proj", "skiff.yml");
    mkdirSync(join(local, "proj"));
    writeFileSync(file, "name: farproj\nservices:\n  web:\n    image: base\n    memory: 192m\n    networks: [none]\n");
    expect((await viaEnv(["up", "-d", "-f", file])).code).toBe(0);
    const ps = await viaEnv(["compose", "-f", file, "ps"]);
    expect(ps.stdout).toMatch(/farproj-web-1\s+web\s+running/);
    expect(await server.ok(["ps", "-q"])).toContain("farproj-web-1");
    expect((await viaEnv(["compose", "-f", file, "stop"])).code).toBe(0);
    expect((await viaEnv(["compose", "-f", file, "ps", "-a"])).stdout).toMatch(/farproj-web-1\s+web\s+stopped/);
    expect((await viaEnv(["down", "-f", file])).code).toBe(0);
    expect(await server.ok(["ps", "-a", "-q"])).not.toContain("farproj");
  });

  it("removes a --rm VM whose attached client was killed, before or after its command began, as the server's own run would", async () => {
    // Killed while the VM is still being made (the client leaves before the command is attached).
    const early = client.spawn(["run", "--rm", "--name", "orphan-early", "--memory", "256m", "--network", "none", "base", "sleep", "600"], { env: remote });
    for (const end = Date.now() + 60_000; !(await server.ok(["ps", "-a", "-q"])).includes("orphan-early"); ) {
      if (Date.now() > end) throw new Error("the VM was never made");
      await new Promise((r) => setTimeout(r, 100));
    }
    early.kill("SIGKILL");
    // Killed while its command runs.
    const child = client.spawn(["run", "--rm", "--name", "orphan", "--memory", "256m", "--network", "none", "base", "sh", "-c", "echo started; sleep 600"], { env: remote });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    for (const end = Date.now() + 60_000; !out.includes("started"); ) {
      if (Date.now() > end) throw new Error("the command never ran");
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill("SIGKILL");
    for (const end = Date.now() + 90_000; (await server.ok(["ps", "-a", "-q"])).includes("orphan"); ) {
      if (Date.now() > end) throw new Error("the VM outlived its killed client");
      await new Promise((r) => setTimeout(r, 250));
    }
  });

  it("stops and removes the VM through the server", async () => {
    expect((await viaEnv(["stop", "far"])).stdout).toBe("far\n");
    expect((await viaEnv(["rm", "far"])).stdout).toBe("far\n");
    expect((await server.ok(["ps", "-a", "-q"])).trim()).toBe("");
  });
});
