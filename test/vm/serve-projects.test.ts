/**
 * Projects and image import through `skiff serve` (the built CLI on
 * 127.0.0.1), driven by SkiffHttpClient: a two-service skiff.yml posted as
 * text comes up (base, 192m each, no NIC), ps by name and by the file on
 * the server, exec in a service, pause and unpause of one service, down
 * leaving nothing; a bad file refused with its code and file:line; a root
 * filesystem tarball uploaded, listed and removed.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SkiffHttpClient } from "../../src/api/client.js";
import type { TaskEvent } from "../../src/project/events.js";
import { Harness } from "./harness.js";
import { startServe, type ServeProcess } from "./serve-process.js";

const yml = `services:
  web:
    image: base
    memory: 192m
    networks: [none]
  worker:
    image: base
    memory: 192m
    networks: [none]
    depends_on: [web]
`;

describe("projects and image import over skiff serve", () => {
  const h = new Harness();
  const dir = mkdtempSync("/tmp/skpa-");
  let server: ServeProcess;
  let client: SkiffHttpClient;

  beforeAll(async () => {
    writeFileSync(join(dir, "skiff.yml"), yml);
    server = await startServe(h);
    client = new SkiffHttpClient({ url: server.url, token: server.token! });
  });
  afterAll(async () => {
    await client?.projectDown({ name: "apiproj" }).catch(() => undefined);
    // The image went into the shared test cache: it goes even when the test failed half-way.
    await client?.removeImage("api-imported").catch(() => undefined);
    await server?.stop();
    if (process.env.SKIFF_KEEP_LOGS) console.log(h.consoleLogs());
    await h.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a bad project file with its code and place, before anything is made", async () => {
    const bad = yml.replace("    memory: 192m\n    networks: [none]\n  worker", "    memroy: 192m\n    networks: [none]\n  worker");
    await expect(client.projectUp({ content: bad, directory: dir, projectName: "apiproj" })).rejects.toMatchObject({
      name: "SkiffError",
      code: "ERR_SKIFF_CONFIG",
      place: "skiff.yml:4:5",
      exitCode: 2,
    });
    await expect(client.projectUp({ name: "apiproj" })).rejects.toMatchObject({ code: "ERR_SKIFF_USAGE", place: "name" });
    expect(await client.list({ all: true })).toEqual([]);
  });

  it("brings a posted project up, its tasks streamed; ps by name and by the file; exec in a service", async () => {
    const tasks: TaskEvent[] = [];
    const up = await client.projectUp({ content: yml, directory: dir, projectName: "apiproj" }, { onTask: (e) => tasks.push(e) });
    expect(up.vms.map((v) => [v.name, v.service, v.action]).sort()).toEqual([
      ["apiproj-web-1", "web", "created"],
      ["apiproj-worker-1", "worker", "created"],
    ]);
    expect(tasks.filter((t) => t.state === "running").map((t) => t.task).sort()).toEqual(["apiproj-web-1", "apiproj-worker-1"]);

    const byName = await client.projectPs({ name: "apiproj" });
    expect(byName.map((r) => [r.service, r.vm.name, r.vm.state]).sort()).toEqual([
      ["web", "apiproj-web-1", "running"],
      ["worker", "apiproj-worker-1", "running"],
    ]);
    const byFile = await client.projectPs({ files: [join(dir, "skiff.yml")], projectName: "apiproj" });
    expect(byFile.map((r) => r.vm.name).sort()).toEqual(["apiproj-web-1", "apiproj-worker-1"]);
    expect(await client.listProjects()).toEqual([{ name: "apiproj", vms: 2, running: 2 }]);

    const r = await client.exec("apiproj-web-1", ["cat", "/etc/hostname"]);
    expect({ code: r.code, out: r.stdout.trim() }).toEqual({ code: 0, out: "web" });
  });

  it("pauses and unpauses one service; up again leaves both unchanged", async () => {
    expect(await client.projectVerb("pause", { name: "apiproj" }, ["worker"])).toEqual(["apiproj-worker-1"]);
    expect((await client.inspect("apiproj-worker-1")).state).toBe("paused");
    expect((await client.inspect("apiproj-web-1")).state).toBe("running");
    expect(await client.projectVerb("unpause", { name: "apiproj" }, ["worker"])).toEqual(["apiproj-worker-1"]);
    expect((await client.inspect("apiproj-worker-1")).state).toBe("running");
    const again = await client.projectUp({ files: ["skiff.yml"], directory: dir, projectName: "apiproj" });
    expect(again.vms.map((v) => v.action)).toEqual(["unchanged", "unchanged"]);
  });

  it("takes the project down by name, leaving nothing", async () => {
    const down = await client.projectDown({ name: "apiproj" });
    expect(down.vms.sort()).toEqual(["apiproj-web-1", "apiproj-worker-1"]);
    expect(await client.list({ all: true })).toEqual([]);
    expect(await client.projectPs({ name: "apiproj" }, { all: true })).toEqual([]);
    expect(await client.listProjects()).toEqual([]);
  });

  it("imports an uploaded root filesystem tarball, lists it, removes it", async () => {
    const root = join(dir, "rootfs");
    mkdirSync(join(root, "etc"), { recursive: true });
    writeFileSync(join(root, "etc", "os-release"), "ID=uploaded\n");
    const tarball = join(dir, "tiny-root.tar.gz");
    execFileSync("tar", ["-C", root, "-czf", tarball, "."]);
    const imported = await client.importImage(tarball, { name: "api-imported" });
    expect(imported).toMatchObject({ kind: "rootfs-archive", name: "api-imported" });
    expect((await client.listImages()).map((i) => i.name)).toContain("api-imported");
    await client.removeImage("api-imported");
    expect((await client.listImages()).map((i) => i.name)).not.toContain("api-imported");
  });
});
