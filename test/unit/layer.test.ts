import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rejectionOf } from "./fixtures/errors.js";
import { layersDigest, layersImageName } from "../../src/layer/hash.js";
import { aptMirrorCommands, installCommand, shq } from "../../src/layer/package-manager.js";
import { mirrorRoute } from "../../src/layer/mirror.js";
import { loadLayer, parseLayer } from "../../src/layer/schema.js";
import { findLayer, listLayers, loadLayers, stdlibLayersDir } from "../../src/layer/search.js";

let root: string;
const write = async (path: string, text: string) => {
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, text);
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "skiff-layer-"));
  await write(join(root, "a/web/layer.yml"), "packages: [nginx]\nconfigs: [etc/nginx/nginx.conf]\nrun: echo hi\nstart: exec nginx -g 'daemon off;'\nbinary: ['bin/tool -> /usr/local/bin/tool']\n");
  await write(join(root, "a/web/etc/nginx/nginx.conf"), "events {}\n");
  await write(join(root, "a/web/bin/tool"), "#!/bin/sh\n");
  await write(join(root, "b/web/layer.yml"), "packages: [apache2]\n");
  await write(join(root, "b/redis/layer.yml"), "packages: [my-redis]\n");
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe("layer.yml", () => {
  it("reads every key", async () => {
    const spec = await loadLayer("web", join(root, "a/web"));
    expect(spec).toMatchObject({
      packages: ["nginx"],
      configs: ["etc/nginx/nginx.conf"],
      run: ["echo hi"],
      start: "exec nginx -g 'daemon off;'",
      binaries: [{ source: join(root, "a/web/bin/tool"), dest: "/usr/local/bin/tool" }],
    });
    expect((await parseLayer("x", root, "")).packages).toEqual([]);
    expect((await parseLayer("x", root, "run: [a, b]")).run).toEqual(["a", "b"]);
  });

  it("rejects unknown keys and bad values at file:line:col, all at once", async () => {
    const err = await rejectionOf(parseLayer("x", root, "packages: [ok]\npakages: [x]\nrun: 3\n", "x/layer.yml"));
    expect(err.code).toBe("ERR_SKIFF_CONFIG");
    expect(err.place).toBe("x/layer.yml:2:1");
    expect(err.message).toContain('unknown key "pakages"');
    const problems = err.details?.problems as { place: string; message: string }[];
    expect(problems.map((p) => p.place)).toEqual(["x/layer.yml:2:1", "x/layer.yml:3:6"]);
  });

  it("rejects paths outside the layer, missing files and bad binary lines", async () => {
    const text = "configs: [../etc/passwd, etc/missing]\nbinary: [tool, 'bin/x -> relative']\n";
    const err = await rejectionOf(parseLayer("x", join(root, "a/web"), text, "l.yml"));
    expect(err.code).toBe("ERR_SKIFF_CONFIG");
    const problems = err.details?.problems as { place: string; message: string }[];
    expect(problems.map((p) => p.place)).toEqual(["l.yml:1:11", "l.yml:1:26", "l.yml:2:10", "l.yml:2:16"]);
    expect(problems[0]!.message).toContain("inside the layer directory");
    expect(problems[1]!.message).toContain("does not exist");
  });

  it("a YAML syntax error is ERR_SKIFF_CONFIG at its place", async () => {
    const err = await rejectionOf(parseLayer("x", root, "packages: [a\n", "y.yml"));
    expect(err.code).toBe("ERR_SKIFF_CONFIG");
    expect(err.place).toMatch(/^y\.yml:\d+:\d+$/);
  });

  it("the standard library's layers are valid", async () => {
    const layers = await listLayers([]);
    expect(layers.map((l) => l.name)).toEqual(expect.arrayContaining(["base", "redis"]));
    for (const l of layers) await loadLayer(l.name, l.dir);
    expect((await loadLayer("redis", join(stdlibLayersDir, "redis"))).start).toContain("redis-server");
  });
});

describe("layer search", () => {
  it("takes the first search path that has the layer, then the standard library", async () => {
    const paths = [join(root, "a"), join(root, "b")];
    expect((await findLayer("web", paths)).dir).toBe(join(root, "a/web"));
    expect((await findLayer("web", paths.slice().reverse())).dir).toBe(join(root, "b/web"));
    expect((await findLayer("redis", paths)).dir).toBe(join(root, "b/redis"));
    const std = await findLayer("redis", [join(root, "a")]);
    expect(std).toMatchObject({ stdlib: true, dir: join(stdlibLayersDir, "redis") });
    const listed = await listLayers(paths);
    expect(listed.find((l) => l.name === "redis")).toMatchObject({ dir: join(root, "b/redis"), shadows: [join(stdlibLayersDir, "redis")] });
    expect(listed.find((l) => l.name === "web")?.shadows).toEqual([join(root, "b/web")]);
  });

  it("says where it looked when a layer is missing", async () => {
    const err = await rejectionOf(loadLayers(["nope"], [join(root, "a")]));
    expect(err.code).toBe("ERR_SKIFF_LAYER_NOT_FOUND");
    expect(err.message).toContain(join(root, "a/nope"));
    expect(err.message).toContain(join(stdlibLayersDir, "nope"));
    expect((await rejectionOf(findLayer("../etc", []))).code).toBe("ERR_SKIFF_CONFIG");
  });
});

describe("layer hash", () => {
  it("changes when any input changes, and not otherwise", async () => {
    const dir = join(root, "h");
    await write(join(dir, "one/layer.yml"), "packages: [a]\n");
    await write(join(dir, "one/etc/x.conf"), "x=1\n");
    await write(join(dir, "two/layer.yml"), "run: true\n");
    const one = { name: "one", dir: join(dir, "one") };
    const two = { name: "two", dir: join(dir, "two") };
    const base = `sha256:${"a".repeat(64)}`;
    const first = await layersDigest(base, [one, two]);
    expect(first).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await layersDigest(base, [one, two])).toBe(first);
    expect(layersImageName(first)).toBe(`skiff-layers:${first.slice(7, 19)}`);
    const seen = new Set([first]);
    const expectNew = async (d: string) => {
      expect(seen.has(d)).toBe(false);
      seen.add(d);
    };
    await expectNew(await layersDigest(`sha256:${"b".repeat(64)}`, [one, two]));
    await expectNew(await layersDigest(base, [two, one]));
    await expectNew(await layersDigest(base, [one]));
    await expectNew(await layersDigest(base, [{ ...one, name: "uno" }, two]));
    await writeFile(join(dir, "one/etc/x.conf"), "x=2\n");
    await expectNew(await layersDigest(base, [one, two]));
    await chmod(join(dir, "one/etc/x.conf"), 0o755);
    await expectNew(await layersDigest(base, [one, two]));
    await writeFile(join(dir, "one/etc/new"), "");
    await expectNew(await layersDigest(base, [one, two]));
    await writeFile(join(dir, "two/layer.yml"), "run: false\n");
    await expectNew(await layersDigest(base, [one, two]));
  });
});

describe("package managers and mirrors", () => {
  it("installs with the image's own tool", () => {
    expect(installCommand("apt", ["redis-server", "iproute2"])).toMatch(/^DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends .* redis-server iproute2$/);
    expect(installCommand("apk", ["redis"])).toBe("apk add --no-cache redis");
    expect(installCommand("dnf", ["redis"])).toMatch(/^dnf install -y .*redis$/);
    expect(shq("it's")).toBe(`'it'\\''s'`);
  });

  it("routes a loopback mirror through a guestfwd, others as they are", () => {
    expect(mirrorRoute("http://127.0.0.1:8123/repo/")).toEqual({
      url: "http://127.0.0.1:8123/repo/",
      guestUrl: "http://10.0.2.100/repo/",
      guestForward: { guestAddress: "10.0.2.100", guestPort: 80, hostAddress: "127.0.0.1", hostPort: 8123 },
    });
    expect(mirrorRoute("http://mirror.example/debian")).toEqual({ url: "http://mirror.example/debian", guestUrl: "http://mirror.example/debian" });
    expect(() => mirrorRoute("ftp://x/")).toThrow(/http/);
    expect(() => mirrorRoute("https://localhost:1/")).toThrow(/plain http/);
  });

  it("swaps apt's sources for the mirror and back", () => {
    const flat = aptMirrorCommands("http://10.0.2.100/", { flat: true, trusted: true });
    expect(flat.use).toContain('echo "deb [trusted=yes] http://10.0.2.100/ ./" > /etc/apt/sources.list');
    expect(aptMirrorCommands("http://m/debian", { flat: false, trusted: false }).use).toContain('"deb http://m/debian/ $VERSION_CODENAME main"');
    expect(flat.restore).toContain("/etc/apt/.skiff-saved");
  });
});
