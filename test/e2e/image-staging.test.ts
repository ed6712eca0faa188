/**
 * An `image import` and an `image pull` SIGKILLed mid-way leave staging in
 * the cache (an unpacked tree, a partial blob download): `system df`
 * counts it as left by a killed command, and the next `image ls` (or
 * import, or pull) removes it. The kill comes from outside, once the test
 * sees tens of MB staged. The pull is held half-way through its big layer
 * by a proxy, so the kill lands mid-download every time. No QEMU: the CLI,
 * a loopback registry and files.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { diskBytes } from "../../src/util/fs.js";
import { startFaultProxy, type FaultProxy } from "../vm/fault-proxy.js";
import { collect, Harness } from "../vm/harness.js";
import { buildOciLayout, type BuiltLayout } from "../vm/oci-layout.js";
import { pushLayout, startRegistry, type TestRegistry } from "../vm/registry.js";

const MiB = 1024 * 1024;
const h = new Harness();
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "skiff-staging-"));
});

afterAll(async () => {
  await h.cleanup();
  await rm(work, { recursive: true, force: true });
});

/** A cache of its own per test, so what is staged in it is this test's alone. */
async function freshCache(): Promise<{ env: Record<string, string>; dir: string }> {
  const dir = await mkdtemp(join(work, "cache-"));
  return { dir, env: { SKIFF_CACHE: dir } };
}

/** Everything in the cache an unfinished import or pull writes: build trees and temp files, downloads. */
async function stagedBytes(cache: string): Promise<number> {
  const tmp = await diskBytes(join(cache, "tmp"));
  const ingest = await diskBytes(join(cache, "blobs", ".ingest"));
  const images = (await readdir(join(cache, "images")).catch(() => [] as string[])).filter((n) => n.startsWith("."));
  let temps = 0;
  for (const name of images) temps += await diskBytes(join(cache, "images", name));
  return tmp + ingest + temps;
}

/** Names left in the staging places (empty directories themselves are fine). */
async function stagedNames(cache: string): Promise<string[]> {
  const list = async (dir: string) => (await readdir(dir).catch(() => [] as string[])).map((n) => `${dir}/${n}`);
  const images = (await list(join(cache, "images"))).filter((p) => p.split("/").pop()!.startsWith("."));
  return [...(await list(join(cache, "tmp"))), ...(await list(join(cache, "blobs", ".ingest"))), ...images];
}

interface StagingUsage {
  count: number;
  bytes: number;
  reclaimableCount: number;
  reclaimableBytes: number;
}

async function dfStaging(env: Record<string, string>): Promise<StagingUsage> {
  return (JSON.parse(await h.ok(["system", "df", "--json"], { env })) as { staging: StagingUsage }).staging;
}

/** Start `args`, SIGKILL it once `cache` holds at least `bytes` of staging; false if it ended first. */
async function killWhenStaged(args: string[], env: Record<string, string>, cache: string, bytes: number): Promise<boolean> {
  const child = h.spawn(args, { env });
  const done = collect(child, { timeoutMs: 120_000 });
  let exited = false;
  child.on("exit", () => (exited = true));
  while (!exited && (await stagedBytes(cache)) < bytes) await new Promise((r) => setTimeout(r, 5));
  if (!exited) child.kill("SIGKILL");
  const result = await done;
  return result.code === 128 + 9;
}

/** After the kill: df counts the staging as reclaimable, `image ls` removes it, df shows none. */
async function expectSweptByNextCommand(env: Record<string, string>, cache: string, atLeast: number): Promise<void> {
  const before = await dfStaging(env);
  expect(before.count).toBeGreaterThan(0);
  expect(before.reclaimableCount).toBe(before.count);
  expect(before.reclaimableBytes).toBeGreaterThanOrEqual(atLeast);
  expect(await h.ok(["system", "df"], { env })).toMatch(/Staging \(unfinished imports, pulls\)\s+\d+\s+[\d.]+ MiB \([\d.]+ MiB left by killed commands\)/);
  await h.ok(["image", "ls"], { env });
  expect(await stagedNames(cache)).toEqual([]);
  expect(await dfStaging(env)).toEqual({ count: 0, bytes: 0, reclaimableCount: 0, reclaimableBytes: 0 });
}

describe("a killed image import", () => {
  let tarball: string;
  beforeAll(async () => {
    // 50 MB of random files in many small ones: unpacking it takes long enough to be caught half-way.
    const root = join(work, "rootfs");
    await mkdir(join(root, "data"), { recursive: true });
    await mkdir(join(root, "etc"));
    await writeFile(join(root, "etc", "os-release"), "ID=staging-test\n");
    for (let i = 0; i < 400; i++) await writeFile(join(root, "data", `f${i}`), randomBytes(128 * 1024));
    tarball = join(work, "rootfs.tar");
    execFileSync("tar", ["-C", root, "-cf", tarball, "."]);
  });

  /** SIGKILL an import of the tarball once 10 MB are staged. */
  async function killImportMidway(cache: { env: Record<string, string>; dir: string }): Promise<void> {
    // The kill is timed by what the test sees staged; if the import outran the look, once more from the start.
    let killed = false;
    for (let attempt = 0; attempt < 3 && !killed; attempt++) {
      await rm(join(cache.dir, "images"), { recursive: true, force: true });
      killed = await killWhenStaged(["image", "import", tarball, "--name", "big"], cache.env, cache.dir, 10 * MiB);
    }
    expect(killed).toBe(true);
  }

  it("leaves staging that df counts and the next `image ls` removes; the same import then works", async () => {
    const cache = await freshCache();
    await killImportMidway(cache);
    await expectSweptByNextCommand(cache.env, cache.dir, 10 * MiB);
    await h.ok(["image", "import", tarball, "--name", "big"], { env: cache.env });
    expect(await h.ok(["image", "ls"], { env: cache.env })).toContain("big");
    expect(await stagedNames(cache.dir)).toEqual([]);
  });

  it("and the next import removes it before it stages its own", async () => {
    const cache = await freshCache();
    await killImportMidway(cache);
    const small = join(work, "small.tar");
    execFileSync("tar", ["-C", join(work, "rootfs"), "-cf", small, "./etc"]);
    await h.ok(["image", "import", small, "--name", "small"], { env: cache.env });
    expect(await stagedNames(cache.dir)).toEqual([]);
  });
});

describe("a killed image pull", () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let layout: BuiltLayout;
  beforeAll(async () => {
    registry = await startRegistry();
    const files = Array.from({ length: 50 }, (_, i) => ({ type: "file" as const, path: `data/f${i}`, content: randomBytes(MiB) }));
    layout = await buildOciLayout(join(work, "layout"), {
      tag: "v1",
      images: [{ layers: [{ compression: "none", entries: [{ type: "dir", path: "data" }, ...files] }], config: { Cmd: ["/bin/sh"] } }],
    });
    await pushLayout(registry, layout, "staging/big");
    proxy = await startFaultProxy(registry.host);
  }, 120_000);
  afterAll(async () => {
    await proxy?.stop();
    await registry?.stop();
  });

  it("a live pull's staging is counted as in use, and left alone by the sweep", async () => {
    const cache = await freshCache();
    const layer = layout.images[0]!.layers[0]!.digest;
    proxy.fault = (method, path) => (method === "GET" && path.endsWith(layer) ? "stall" : undefined);
    const child = h.spawn(["image", "pull", `${proxy.host}/staging/big:v1`], { env: cache.env });
    const done = collect(child, { timeoutMs: 120_000 });
    try {
      while ((await stagedBytes(cache.dir)) < 20 * MiB) await new Promise((r) => setTimeout(r, 20));
      const staged = await stagedNames(cache.dir);
      await h.ok(["image", "ls"], { env: cache.env });
      expect(await stagedNames(cache.dir)).toEqual(staged);
      const usage = await dfStaging(cache.env);
      expect(usage.count).toBe(staged.length);
      expect(usage.reclaimableCount).toBe(0);
    } finally {
      child.kill("SIGKILL");
      await done;
    }
    await h.ok(["image", "ls"], { env: cache.env });
    expect(await stagedNames(cache.dir)).toEqual([]);
  });

  it("half-way through a 50 MB layer leaves staging that df counts and the next `image ls` removes; the pull then works", async () => {
    const cache = await freshCache();
    const layer = layout.images[0]!.layers[0]!.digest;
    // The proxy sends half of the layer and then nothing: the pull is caught mid-download, every time.
    proxy.fault = (method, path) => (method === "GET" && path.endsWith(layer) ? "stall" : undefined);
    const killed = await killWhenStaged(["image", "pull", `${proxy.host}/staging/big:v1`], cache.env, cache.dir, 20 * MiB);
    expect(killed).toBe(true);
    expect((await readdir(join(cache.dir, "blobs", ".ingest"))).length).toBe(1);
    await expectSweptByNextCommand(cache.env, cache.dir, 20 * MiB);
    proxy.fault = () => undefined;
    await h.ok(["image", "pull", `${proxy.host}/staging/big:v1`], { env: cache.env });
    expect(await stagedNames(cache.dir)).toEqual([]);
  });
});
