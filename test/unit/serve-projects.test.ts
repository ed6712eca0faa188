/**
 * The project routes and image import of `skiff serve` without a VM: which
 * project a request means, project files refused with their place before
 * anything is made, the verbs on a project with no VMs, and an archive
 * uploaded past the JSON body limit, imported, listed and removed (the
 * import builds its ext4 on the host: no VM).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadProject, Skiff } from "../../src/index.js";
import { SkiffHttpClient } from "../../src/api/client.js";
import { bodyIsLimited } from "../../src/server/app.js";
import { sourceKind } from "../../src/server/project-source.js";
import { startServer } from "../../src/server/serve.js";
import { makeTar } from "./fixtures/tar-fixtures.js";

const home = mkdtempSync(join(tmpdir(), "serve-projects-unit-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe("which project a request means", () => {
  it.each([
    [{ name: "demo" }, { kind: "name", name: "demo" }],
    [{ content: "x", directory: "/srv/demo" }, { kind: "file", options: { cwd: "/srv/demo", files: ["skiff.yml"], text: "x" } }],
    [{ content: "x", filename: "compose.yaml", directory: "/srv/demo", projectName: "p" }, { kind: "file", options: { cwd: "/srv/demo", files: ["compose.yaml"], text: "x", projectName: "p" } }],
    [{ files: ["/srv/demo/skiff.yml", "/srv/demo/override.yml"] }, { kind: "file", options: { cwd: "/srv/demo", files: ["/srv/demo/skiff.yml", "/srv/demo/override.yml"] } }],
    [{ files: ["skiff.yml"], directory: "/srv/demo" }, { kind: "file", options: { cwd: "/srv/demo", files: ["skiff.yml"] } }],
    [{ directory: "/srv/demo", projectName: "p" }, { kind: "file", options: { cwd: "/srv/demo", projectName: "p" } }],
  ])("%j", (source, want) => {
    expect(sourceKind(source)).toEqual(want);
  });

  it.each([
    [{}, undefined],
    [{ name: "demo", directory: "/srv" }, "directory"],
    [{ content: "x" }, "directory"],
    [{ content: "x", files: ["/a.yml"], directory: "/srv" }, "files"],
    [{ filename: "skiff.yml", directory: "/srv" }, "filename"],
    [{ files: ["skiff.yml"] }, "files"],
  ])("refuses %j", (source, place) => {
    expect(() => sourceKind(source)).toThrow(expect.objectContaining({ code: "ERR_SKIFF_USAGE", place }));
  });
});

it("a project given as text is one file, placed and resolved where its name says", async () => {
  const spec = await loadProject({ cwd: "/srv/demo", files: ["skiff.yml"], text: "services:\n  web:\n    image: base\n    volumes: [./src:/src]\n" });
  expect({ name: spec.name, dir: spec.dir, files: spec.files, volumes: spec.services[0]!.volumes }).toEqual({
    name: "demo",
    dir: "/srv/demo",
    files: ["/srv/demo/skiff.yml"],
    volumes: [{ kind: "bind", source: "/srv/demo/src", target: "/src", readOnly: false }],
  });
  await expect(loadProject({ cwd: "/srv/demo", files: ["a.yml", "b.yml"], text: "services: {}\n" })).rejects.toMatchObject({ code: "ERR_SKIFF_USAGE" });
});

it("an image import's body streams past the JSON limit, as a file upload's does", () => {
  expect(bodyIsLimited("POST", "/images/import?name=x")).toBe(false);
  expect(bodyIsLimited("POST", "/images/import")).toBe(false);
  expect(bodyIsLimited("POST", "/images/pull")).toBe(true);
  expect(bodyIsLimited("POST", "/projects/up")).toBe(true);
});

describe("the routes on loopback (no VM)", () => {
  const skiff = new Skiff({ home: join(home, "skiff"), cacheDir: join(home, "cache") });
  const dir = join(home, "demo");
  let server: Awaited<ReturnType<typeof startServer>>;
  let client: SkiffHttpClient;

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    server = await startServer({ skiff, listen: { kind: "tcp", host: "127.0.0.1", port: 0 }, token: "tok", bodyLimitBytes: 1024 });
    client = new SkiffHttpClient({ url: server.url, token: "tok" });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("refuses a project file's mistakes with the code and the file's place", async () => {
    const cases: [string, string, string, string?][] = [
      ["services:\n  web:\n    image: base\n    memroy: 1g\n", "ERR_SKIFF_CONFIG", "skiff.yml:4:5"],
      ["services:\n  web:\n    image: base\n    memory: lots\n", "ERR_SKIFF_CONFIG", "skiff.yml:4:13"],
      ["services: [\n", "ERR_SKIFF_CONFIG", "compose.yaml:2:1", "compose.yaml"],
    ];
    for (const [content, code, place, filename] of cases) {
      await expect(client.projectUp({ content, directory: dir, ...(filename === undefined ? {} : { filename }) })).rejects.toMatchObject({ name: "SkiffError", code, place });
    }
    writeFileSync(join(dir, "skiff.yml"), cases[0]![0]);
    await expect(client.projectUp({ directory: dir })).rejects.toMatchObject({ code: "ERR_SKIFF_CONFIG", place: "skiff.yml:4:5" });
    await expect(client.projectUp({ files: [join(dir, "nope.yml")] })).rejects.toMatchObject({ code: "ERR_SKIFF_FILE_NOT_FOUND" });
    await expect(client.projectUp({ name: "demo" })).rejects.toMatchObject({ code: "ERR_SKIFF_USAGE", place: "name" });
    expect(await client.list({ all: true })).toEqual([]);
  });

  it("refuses unknown fields and a bad path in a project body, naming them", async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${server.url}${path}`, { method: "POST", body: JSON.stringify(body), headers: { authorization: "Bearer tok", "content-type": "application/json" } });
    for (const [path, body, field] of [
      ["/projects/up", { directory: dir, detach: true }, "detach"],
      ["/projects/down", { name: "demo", volume: true }, "volume"],
      ["/projects/ps", { directory: "relative/dir" }, "directory"],
      ["/projects/stop", { name: "demo", services: "web" }, "services"],
    ] as const) {
      const res = await post(path, body);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: "ERR_SKIFF_USAGE", field });
    }
  });

  it("a project with no VMs: ps empty, down and stop do nothing, the list is empty", async () => {
    expect(await client.projectPs({ name: "demo" }, { all: true })).toEqual([]);
    expect(await client.projectDown({ name: "demo" }, { volumes: true })).toEqual({ vms: [], networks: [], volumes: [], images: [] });
    expect(await client.projectVerb("stop", { name: "demo" })).toEqual([]);
    expect(await client.listProjects()).toEqual([]);
    const res = await fetch(`${server.url}/projects/demo?all=1`, { headers: { authorization: "Bearer tok" } });
    expect(await res.json()).toEqual([]);
  });

  it("imports an uploaded root filesystem tarball larger than the JSON limit; lists and removes it", async () => {
    const tar = await makeTar([
      { name: "./", type: "directory" },
      { name: "./etc/", type: "directory" },
      { name: "./etc/os-release", body: "ID=uploaded\n" },
      { name: "./padding", body: Buffer.alloc(8192, 1) },
    ]);
    const builds: unknown[] = [];
    const imported = await client.importImage(tar, { filename: "tiny-root.tar", onBuild: (e) => builds.push(e) });
    expect(imported).toMatchObject({ kind: "rootfs-archive", name: "tiny-root", built: true });
    expect(builds.length).toBeGreaterThan(0);
    expect((await client.listImages()).map((i) => i.name)).toContain("tiny-root");
    await client.removeImage("tiny-root");
    expect((await client.listImages()).map((i) => i.name)).not.toContain("tiny-root");
  });

  it("refuses an import of nothing, of a directory, of bytes that are no archive", async () => {
    await expect(client.importImage(join(home, "missing.tar"))).rejects.toMatchObject({ code: "ERR_SKIFF_FILE_NOT_FOUND" });
    await expect(client.importImage(dir)).rejects.toMatchObject({ code: "ERR_SKIFF_USAGE" });
    await expect(client.importImage(Buffer.from("not a tar at all"), { name: "junk" })).rejects.toMatchObject({ name: "SkiffError" });
    expect((await client.listImages()).map((i) => i.name)).not.toContain("junk");
  });
});
