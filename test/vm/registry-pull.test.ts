/**
 * Pulls from a real registry (Debian's docker-registry) on loopback, with
 * test images built here and pushed with skopeo: anonymous, basic and token
 * auth, platform selection, and the failures (unknown tag, wrong digest,
 * connection cut mid-blob, cancellation), each leaving the cache clean. No
 * QEMU: this file is in the VM suite because it runs real outside processes.
 */
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { SkiffError } from "../../src/errors.js";
import type { PullEvent } from "../../src/image/oci/types.js";
import { blobPath, ingestDir } from "../../src/image/registry/blob-store.js";
import { skiffAuthPath } from "../../src/image/registry/credentials.js";
import { login } from "../../src/image/registry/login.js";
import { pullImage, readPulledImage, type PullOptions } from "../../src/image/registry/pull.js";
import { readRefIndex } from "../../src/image/registry/refs.js";
import { startFaultProxy, type FaultProxy } from "./fault-proxy.js";
import { buildOciLayout, type BuiltLayout, type LayerSpec } from "./oci-layout.js";
import { freePort, pushLayout, startRegistry, type TestRegistry } from "./registry.js";

const work = await mkdtemp(join(tmpdir(), "skiff-pull-"));
afterAll(() => rm(work, { recursive: true, force: true }));

/** A fresh, empty cache (and skiff home) per test, so nothing is cached by accident. */
async function freshDirs(): Promise<{ cacheDir: string; home: string }> {
  const dir = await mkdtemp(join(work, "c-"));
  await mkdir(join(dir, "home"));
  return { cacheDir: join(dir, "cache"), home: join(dir, "home") };
}

/** A fetch that counts what it is asked to do. */
function countingFetch(): { fetch: typeof fetch; calls: string[] } {
  const calls: string[] = [];
  const wrapped = ((input: string | URL | Request, init?: RequestInit) => {
    calls.push(`${init?.method ?? "GET"} ${String(input)}`);
    return fetch(input, init);
  }) as typeof fetch;
  return { fetch: wrapped, calls };
}

/** Every stored blob hashes to its name, and nothing unfinished is left behind. */
async function expectCleanCache(cacheDir: string): Promise<string[]> {
  const ingest = await readdir(ingestDir(cacheDir)).catch(() => []);
  expect(ingest).toEqual([]);
  const dir = join(cacheDir, "blobs", "sha256");
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const hex = createHash("sha256").update(await readFile(join(dir, name))).digest("hex");
    expect(hex).toBe(name);
  }
  return names.map((n) => `sha256:${n}`);
}

const noEnv: NodeJS.ProcessEnv = {};

/** An anonymous pull of `ref` fails with ERR_SKIFF_AUTH pointing at `skiff login HOST`, and stores nothing. */
async function expectLoginNeeded(ref: string, host: string): Promise<void> {
  const { cacheDir, home } = await freshDirs();
  const err = await pullImage(ref, { cacheDir, home, env: noEnv }).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: "ERR_SKIFF_AUTH", hint: expect.stringContaining(`skiff login ${host}`) });
  expect(await expectCleanCache(cacheDir)).toEqual([]);
}

const appLayers: LayerSpec[] = [
  {
    compression: "gzip",
    entries: [
      { type: "dir", path: "/etc" },
      { type: "file", path: "/etc/os-release", content: "ID=skiff-test\n" },
      { type: "file", path: "/etc/gone", content: "removed by layer 2\n" },
      { type: "dir", path: "/srv" },
      { type: "file", path: "/srv/old", content: "hidden by the opaque dir\n" },
      { type: "file", path: "/bin/app", content: "#!/bin/sh\necho app\n", mode: 0o755 },
      { type: "hardlink", path: "/bin/app-link", target: "/bin/app" },
      { type: "symlink", path: "/bin/sym", target: "app" },
    ],
  },
  {
    compression: "zstd",
    entries: [
      { type: "whiteout", path: "/etc/gone" },
      { type: "opaque", path: "/srv" },
      { type: "file", path: "/srv/new", content: "x".repeat(200_000), uid: 1000, gid: 1000, mode: 0o640 },
      { type: "chardev", path: "/dev/null", major: 1, minor: 3 },
    ],
  },
  { compression: "none", entries: [{ type: "file", path: "/home/user/.profile", content: "export A=1\n", uid: 1000, gid: 1000 }] },
];
const appConfig = {
  Entrypoint: ["/bin/app"],
  Cmd: ["--serve", "x"],
  Env: ["PATH=/usr/bin:/bin", "GREETING=hello world"],
  WorkingDir: "/srv",
  User: "1000:1000",
  ExposedPorts: ["8080/tcp", "53/udp"],
  Labels: { "org.skiff.test": "app" },
};

let app: BuiltLayout;
let multi: BuiltLayout;

beforeAll(async () => {
  app = await buildOciLayout(join(work, "app"), { tag: "v1", images: [{ layers: appLayers, config: appConfig }] });
  const shared: LayerSpec = { entries: [{ type: "file", path: "/shared", content: "same on every platform\n" }] };
  multi = await buildOciLayout(join(work, "multi"), {
    tag: "v1",
    images: [
      { platform: { os: "linux", architecture: "amd64" }, layers: [shared, { entries: [{ type: "file", path: "/arch", content: "amd64\n" }] }], config: { Cmd: ["/amd64"] } },
      {
        platform: { os: "linux", architecture: "arm64", variant: "v8" },
        layers: [shared, { entries: [{ type: "file", path: "/arch", content: "arm64\n" }] }],
        config: { Cmd: ["/arm64"] },
      },
    ],
  });
});

describe("an anonymous registry", () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
    await pushLayout(registry, app, "test/app");
    await pushLayout(registry, multi, "test/multi");
    await pushLayout(registry, multi, "test/docker", { format: "docker" });
    await pushLayout(registry, app, "library/mirrored");
  });
  afterAll(() => registry?.stop());

  describe("as a Docker Hub mirror (registry-mirrors)", () => {
    /** A fetch that never leaves the host: Docker Hub is "down". */
    function hubless(): { fetch: typeof fetch; calls: string[] } {
      const counted = countingFetch();
      const wrapped = ((input: string | URL | Request, init?: RequestInit) => {
        if (String(input).includes("docker.io")) {
          counted.calls.push(`${init?.method ?? "GET"} ${String(input)}`);
          return Promise.reject(new TypeError("fetch failed (Docker Hub is not reachable from tests)"));
        }
        return counted.fetch(input, init);
      }) as typeof fetch;
      return { fetch: wrapped, calls: counted.calls };
    }

    test("a Docker Hub image comes from the first mirror that has it, past one that is down; refs stay Docker Hub's", async () => {
      const { cacheDir, home } = await freshDirs();
      const down = `127.0.0.1:${await freePort()}`;
      const { fetch, calls } = hubless();
      const events: PullEvent[] = [];
      const image = await pullImage("mirrored:v1", { cacheDir, home, env: { SKIFF_REGISTRY_MIRRORS: registry.url }, mirrors: [`http://${down}`], fetch, onEvent: (e) => events.push(e) });
      expect(image.manifestDigest).toBe(app.images[0]!.manifestDigest);
      expect(events).toContainEqual({ type: "mirror", ref: "docker.io/library/mirrored:v1", mirror: registry.host });
      expect(calls.filter((c) => c.includes("docker.io"))).toEqual([]);
      expect(calls.some((c) => c.includes(down))).toBe(true);
      expect(Object.keys(await readRefIndex(cacheDir))).toContain("docker.io/library/mirrored:v1");
      await expectCleanCache(cacheDir);
    });

    test("a tag no mirror has goes to Docker Hub, whose error is the one reported; other registries never use a mirror", async () => {
      const { cacheDir, home } = await freshDirs();
      const { fetch, calls } = hubless();
      const err = await pullImage("mirrored:v9", { cacheDir, home, env: noEnv, mirrors: [registry.url], fetch }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SkiffError);
      expect(calls.some((c) => c.includes(`${registry.host}/v2/library/mirrored/manifests/v9`))).toBe(true);
      expect(calls.some((c) => c.includes("registry-1.docker.io"))).toBe(true);
      expect(await expectCleanCache(cacheDir)).toEqual([]);

      const elsewhere = hubless();
      await pullImage(`${registry.host}/test/app:v1`, { cacheDir, home, env: noEnv, mirrors: ["http://127.0.0.1:1"], fetch: elsewhere.fetch });
      expect(elsewhere.calls.every((c) => c.includes(registry.host))).toBe(true);
    });
  });

  test("pull: manifest, config and layers land in the store, verified; the config is read", async () => {
    const { cacheDir, home } = await freshDirs();
    const events: PullEvent[] = [];
    const image = await pullImage(`${registry.host}/test/app:v1`, { cacheDir, home, env: noEnv, onEvent: (e) => events.push(e) });
    const built = app.images[0]!;
    expect(image.manifestDigest).toBe(built.manifestDigest);
    expect(image.indexDigest).toBeUndefined();
    expect(image.configDigest).toBe(built.configDigest);
    expect(image.platform).toEqual({ os: "linux", architecture: "amd64" });
    expect(image.layers).toEqual(built.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })));
    expect(image.layers.map((l) => l.mediaType)).toEqual([
      "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "application/vnd.oci.image.layer.v1.tar",
    ]);
    expect(image.diffIds).toEqual(built.layers.map((l) => l.diffId));
    expect(image.config).toEqual({
      entrypoint: ["/bin/app"],
      cmd: ["--serve", "x"],
      env: { PATH: "/usr/bin:/bin", GREETING: "hello world" },
      workingDir: "/srv",
      user: "1000:1000",
      exposedPorts: ["53/udp", "8080/tcp"],
      labels: { "org.skiff.test": "app" },
    });
    const stored = await expectCleanCache(cacheDir);
    expect(stored.sort()).toEqual([built.manifestDigest, built.configDigest, ...built.layers.map((l) => l.digest)].sort());
    for (const layer of built.layers) expect((await stat(blobPath(cacheDir, layer.digest))).size).toBe(layer.size);
    expect(events[0]).toMatchObject({ type: "resolved", manifestDigest: built.manifestDigest });
    expect(events.filter((e) => e.type === "layer-done")).toHaveLength(3);
    expect(events.at(-1)).toEqual({ type: "done", ref: `${registry.host}/test/app:v1`, manifestDigest: built.manifestDigest });
    expect(await readRefIndex(cacheDir)).toEqual({
      [`${registry.host}/test/app:v1`]: built.manifestDigest,
      [`${registry.host}/test/app@${built.manifestDigest}`]: built.manifestDigest,
    });
    expect(await readPulledImage(cacheDir, built.manifestDigest)).toEqual(image);
  });

  test("a second pull by digest makes no request at all; by tag, one HEAD", async () => {
    const { cacheDir, home } = await freshDirs();
    const ref = `${registry.host}/test/app:v1`;
    const first = await pullImage(ref, { cacheDir, home, env: noEnv });
    const byDigest = countingFetch();
    const events: PullEvent[] = [];
    const again = await pullImage(`${registry.host}/test/app@${first.manifestDigest}`, {
      cacheDir,
      home,
      env: noEnv,
      fetch: byDigest.fetch,
      onEvent: (e) => events.push(e),
    });
    expect(byDigest.calls).toEqual([]);
    expect(again.manifestDigest).toBe(first.manifestDigest);
    expect(again.config).toEqual(first.config);
    expect(events.filter((e) => e.type === "layer-cached")).toHaveLength(3);
    const byTag = countingFetch();
    await pullImage(ref, { cacheDir, home, env: noEnv, fetch: byTag.fetch });
    expect(byTag.calls).toEqual([`HEAD http://${registry.host}/v2/test/app/manifests/v1`]);
  });

  test("an index: linux/amd64 by default, --platform linux/arm64/v8 shares the common layer", async () => {
    const { cacheDir, home } = await freshDirs();
    const [amd64, arm64] = multi.images as [BuiltLayout["images"][0], BuiltLayout["images"][0]];
    const a = await pullImage(`${registry.host}/test/multi:v1`, { cacheDir, home, env: noEnv });
    expect(a.indexDigest).toBe(multi.indexDigest);
    expect(a.manifestDigest).toBe(amd64.manifestDigest);
    expect(a.config.cmd).toEqual(["/amd64"]);
    const events: PullEvent[] = [];
    const counted = countingFetch();
    const b = await pullImage(`${registry.host}/test/multi:v1`, { cacheDir, home, env: noEnv, platform: "linux/arm64/v8", fetch: counted.fetch, onEvent: (e) => events.push(e) });
    expect(b.manifestDigest).toBe(arm64.manifestDigest);
    expect(b.platform).toEqual({ os: "linux", architecture: "arm64" });
    expect(b.config.cmd).toEqual(["/arm64"]);
    expect(events.filter((e) => e.type === "layer-cached").map((e) => (e as { digest: string }).digest)).toEqual([arm64.layers[0]!.digest]);
    // HEAD the tag (index cached), then the arm64 manifest, its config and its own layer.
    expect(counted.calls).toHaveLength(4);
    expect((await readPulledImage(cacheDir, arm64.manifestDigest)).indexDigest).toBe(multi.indexDigest);
    await expectCleanCache(cacheDir);
  });

  test("Docker media types: a manifest list v2 of schema 2 manifests", async () => {
    const { cacheDir, home } = await freshDirs();
    const image = await pullImage(`${registry.host}/test/docker:v1`, { cacheDir, home, env: noEnv, platform: "linux/arm64" });
    const manifest = JSON.parse(await readFile(blobPath(cacheDir, image.manifestDigest), "utf8")) as { mediaType: string };
    expect(manifest.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
    const index = JSON.parse(await readFile(blobPath(cacheDir, image.indexDigest!), "utf8")) as { mediaType: string };
    expect(index.mediaType).toBe("application/vnd.docker.distribution.manifest.list.v2+json");
    expect(image.layers.map((l) => l.mediaType)).toEqual(["application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip"]);
    expect(image.diffIds).toEqual(multi.images[1]!.layers.map((l) => l.diffId));
    expect(image.config.cmd).toEqual(["/arm64"]);
    await expectCleanCache(cacheDir);
  });

  test("a platform the index does not have: ERR_SKIFF_PLATFORM listing those it has", async () => {
    const { cacheDir, home } = await freshDirs();
    const err = await pullImage(`${registry.host}/test/multi:v1`, { cacheDir, home, env: noEnv, platform: "linux/s390x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SkiffError);
    expect((err as SkiffError).code).toBe("ERR_SKIFF_PLATFORM");
    expect((err as SkiffError).message).toContain("it has: linux/amd64, linux/arm64");
    expect(await readRefIndex(cacheDir)).toEqual({});
    await expectCleanCache(cacheDir);
  });

  test("a single-platform image asked for another platform: ERR_SKIFF_PLATFORM before any layer", async () => {
    const { cacheDir, home } = await freshDirs();
    const err = await pullImage(`${registry.host}/test/app:v1`, { cacheDir, home, env: noEnv, platform: "linux/arm64" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ERR_SKIFF_PLATFORM", message: expect.stringContaining("it has: linux/amd64") });
    expect(await expectCleanCache(cacheDir)).toHaveLength(2); // manifest and config only
  });

  test("an unknown tag or repository: ERR_SKIFF_IMAGE_NOT_FOUND naming the reference", async () => {
    const { cacheDir, home } = await freshDirs();
    for (const ref of [`${registry.host}/test/app:nope`, `${registry.host}/test/none:v1`]) {
      const err = await pullImage(ref, { cacheDir, home, env: noEnv }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "ERR_SKIFF_IMAGE_NOT_FOUND", place: ref, message: expect.stringContaining(ref) });
    }
    await expectCleanCache(cacheDir);
  });

  test("a registry that is not there: ERR_SKIFF_REGISTRY", async () => {
    const { cacheDir, home } = await freshDirs();
    const port = await freePort();
    const err = await pullImage(`127.0.0.1:${port}/test/app:v1`, { cacheDir, home, env: noEnv }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ERR_SKIFF_REGISTRY", message: expect.stringContaining("ECONNREFUSED") });
  });

  describe("through a faulty proxy", () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await startFaultProxy(registry.host);
    });
    afterAll(() => proxy?.stop());
    const bigLayer = () => app.images[0]!.layers[1]!.digest;
    const opts = async (): Promise<PullOptions> => ({ ...(await freshDirs()), env: noEnv });

    test("a blob with a flipped byte: ERR_SKIFF_DIGEST_MISMATCH, nothing stored, no ref recorded", async () => {
      proxy.fault = (method, path) => (method === "GET" && path.endsWith(bigLayer()) ? "corrupt" : undefined);
      const o = await opts();
      const err = await pullImage(`${proxy.host}/test/app:v1`, o).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "ERR_SKIFF_DIGEST_MISMATCH", message: expect.stringContaining(bigLayer()) });
      const stored = await expectCleanCache(o.cacheDir);
      expect(stored).not.toContain(bigLayer());
      expect(await readRefIndex(o.cacheDir)).toEqual({});
      // A corrupt blob is not worth a retry.
      expect(proxy.requests.filter((r) => r.endsWith(bigLayer()))).toHaveLength(1);
      proxy.requests.length = 0;
    });

    test("the connection cut mid-blob: retried once, then ERR_SKIFF_REGISTRY, nothing half-made", async () => {
      proxy.fault = (method, path) => (method === "GET" && path.endsWith(bigLayer()) ? "drop" : undefined);
      const o = await opts();
      const err = await pullImage(`${proxy.host}/test/app:v1`, o).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "ERR_SKIFF_REGISTRY", message: expect.stringMatching(/broke off|ended early/) });
      expect(proxy.requests.filter((r) => r.endsWith(bigLayer()))).toHaveLength(2);
      expect(await expectCleanCache(o.cacheDir)).not.toContain(bigLayer());
      // Once the network behaves, the same cache completes the pull.
      proxy.fault = () => undefined;
      const image = await pullImage(`${proxy.host}/test/app:v1`, o);
      expect(image.manifestDigest).toBe(app.images[0]!.manifestDigest);
      proxy.requests.length = 0;
    });

    test("a pull cancelled mid-blob stops, and leaves no temp file", async () => {
      proxy.fault = (method, path) => (method === "GET" && path.endsWith(bigLayer()) ? "stall" : undefined);
      const o = await opts();
      const controller = new AbortController();
      const pulling = pullImage(`${proxy.host}/test/app:v1`, { ...o, signal: controller.signal }).catch((e: unknown) => e);
      const started = Date.now();
      while (!proxy.requests.some((r) => r.endsWith(bigLayer())) && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100));
      controller.abort(new SkiffError("ERR_SKIFF_TIMEOUT", "cancelled by the test"));
      const err = await pulling;
      expect(err).toMatchObject({ message: "cancelled by the test" });
      expect(await expectCleanCache(o.cacheDir)).not.toContain(bigLayer());
      proxy.fault = () => undefined;
      proxy.requests.length = 0;
    });
  });
});

describe("a registry with basic auth", () => {
  let registry: TestRegistry;
  let ref: string;
  beforeAll(async () => {
    registry = await startRegistry({ auth: "basic" });
    ref = await pushLayout(registry, app, "private/app");
  });
  afterAll(() => registry?.stop());

  test("without credentials: ERR_SKIFF_AUTH with `skiff login HOST`", () => expectLoginNeeded(ref, registry.host));

  test("skiff login: wrong password refused and not saved; right one saved (0600), then pulls work", async () => {
    const { cacheDir, home } = await freshDirs();
    await expect(login(registry.host, registry.user, "wrong", { home, env: noEnv })).rejects.toMatchObject({ code: "ERR_SKIFF_AUTH" });
    await expect(stat(skiffAuthPath(home))).rejects.toMatchObject({ code: "ENOENT" });
    const saved = await login(registry.host, registry.user, registry.password, { home, env: noEnv });
    expect(saved).toEqual({ registry: registry.host, path: skiffAuthPath(home), verified: true });
    expect((await stat(saved.path)).mode & 0o777).toBe(0o600);
    const image = await pullImage(ref, { cacheDir, home, env: noEnv });
    expect(image.manifestDigest).toBe(app.images[0]!.manifestDigest);
  });

  test("credentials from Docker's config.json via DOCKER_CONFIG", async () => {
    const { cacheDir, home } = await freshDirs();
    const dockerDir = join(home, "docker");
    await mkdir(dockerDir);
    const auth = Buffer.from(`${registry.user}:${registry.password}`).toString("base64");
    await writeFile(join(dockerDir, "config.json"), JSON.stringify({ auths: { [`http://${registry.host}`]: { auth } } }));
    const image = await pullImage(ref, { cacheDir, home, env: { DOCKER_CONFIG: dockerDir } });
    expect(image.manifestDigest).toBe(app.images[0]!.manifestDigest);
  });

  test("wrong credentials in the file: ERR_SKIFF_AUTH naming the file", async () => {
    const { cacheDir, home } = await freshDirs();
    await writeFile(skiffAuthPath(home), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${registry.user}:bad`).toString("base64") } } }));
    const err = await pullImage(ref, { cacheDir, home, env: noEnv }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ERR_SKIFF_AUTH", hint: expect.stringContaining(skiffAuthPath(home)) });
  });

  test("blobs redirected to another origin are fetched without our credentials", async () => {
    const basic = `Basic ${Buffer.from(`${registry.user}:${registry.password}`).toString("base64")}`;
    const proxy = await startFaultProxy(registry.host, { targetAuthorization: basic });
    try {
      proxy.fault = (method, path) => (method === "GET" && path.includes("/blobs/") ? "redirect" : undefined);
      const { cacheDir, home } = await freshDirs();
      await writeFile(skiffAuthPath(home), JSON.stringify({ auths: { [proxy.host]: { auth: Buffer.from(`${registry.user}:${registry.password}`).toString("base64") } } }));
      const image = await pullImage(`${proxy.host}/private/app:v1`, { cacheDir, home, env: noEnv });
      expect(image.layers).toHaveLength(3);
      expect(proxy.storageRequests).toHaveLength(4); // config + 3 layers
      expect(proxy.storageRequests.map((r) => r.authorization)).toEqual([undefined, undefined, undefined, undefined]);
      await expectCleanCache(cacheDir);
    } finally {
      await proxy.stop();
    }
  });
});

describe("a registry with token auth", () => {
  let registry: TestRegistry;
  let ref: string;
  beforeAll(async () => {
    registry = await startRegistry({ auth: "token" });
    ref = await pushLayout(registry, multi, "private/multi");
  });
  afterAll(() => registry?.stop());

  test("anonymous gets a token without access: ERR_SKIFF_AUTH", () => expectLoginNeeded(ref, registry.host));

  test("with credentials: one token for the pull scope serves every request", async () => {
    const { cacheDir, home } = await freshDirs();
    const saved = await login(registry.host, registry.user, registry.password, { home, env: noEnv });
    expect(saved.verified).toBe(true);
    const requests = registry.tokenServer!.requests;
    requests.length = 0;
    const counted = countingFetch();
    const image = await pullImage(ref, { cacheDir, home, env: noEnv, fetch: counted.fetch });
    expect(image.indexDigest).toBe(multi.indexDigest);
    expect(requests).toEqual([{ scopes: ["repository:private/multi:pull"], account: registry.user, granted: true }]);
    // One 401 to learn the challenge, the token, then HEAD, GET index, GET manifest, config, 2 layers.
    expect(counted.calls).toHaveLength(1 + 1 + 6);
    await expectCleanCache(cacheDir);
  });

  test("wrong password: the token service refuses, ERR_SKIFF_AUTH", async () => {
    const { home } = await freshDirs();
    await expect(login(registry.host, registry.user, "nope", { home, env: noEnv })).rejects.toMatchObject({ code: "ERR_SKIFF_AUTH" });
  });
});
