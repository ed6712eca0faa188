/** Builds the real base with the host's busybox and e2fsprogs (no QEMU). */
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultRunner, type Runner } from "../../src/process/runner.js";
import { listImages, resolveImage } from "../../src/image/resolve.js";
import { SkiffError } from "../../src/errors.js";

let cache: string;
const savedCache = process.env.SKIFF_CACHE;
const calls: string[] = [];
const countingRunner: Runner = {
  run(cmd, args, opts) {
    calls.push(cmd);
    return defaultRunner.run(cmd, args, opts);
  },
};

beforeAll(async () => {
  cache = await mkdtemp(join(tmpdir(), "skiff-image-test-"));
  process.env.SKIFF_CACHE = cache;
});
afterAll(async () => {
  if (savedCache === undefined) delete process.env.SKIFF_CACHE;
  else process.env.SKIFF_CACHE = savedCache;
  await rm(cache, { recursive: true, force: true });
});

function debugfs(file: string, request: string): string {
  return execFileSync("debugfs", ["-R", request, file], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
}

describe("the base image", () => {
  it("is built once into the cache named by its digest, read-only and sparse", async () => {
    const first = await resolveImage("base", { runner: countingRunner });
    expect(first.basePath).toBe(join(cache, "images", `sha256-${first.digest.slice("sha256:".length)}.ext4`));
    expect(first).toMatchObject({ ref: "base", name: "base", builtin: true, sizeBytes: 1024 ** 3 });
    expect(calls.filter((c) => c === "mke2fs")).toHaveLength(1);
    const st = await stat(first.basePath);
    // Readable by skiff's user and (as root) the jail group only: privately pulled images stay private.
    expect(st.mode & 0o777).toBe(process.getuid?.() === 0 ? 0o440 : 0o400);
    expect(st.blocks * 512).toBeLessThan(16 * 1024 ** 2);

    const second = await resolveImage("base:latest", { runner: countingRunner });
    expect(second).toEqual({ ...first, ref: "base:latest" });
    expect(calls.filter((c) => c === "mke2fs")).toHaveLength(1);
    // Nothing half-made or staged is left behind.
    expect((await readdir(join(cache, "images"))).filter((n) => n.startsWith("."))).toEqual([]);
    expect(await readdir(join(cache, "tmp", "image-base"))).toEqual([]);
  });

  it("builds once when many resolve at the same time", async () => {
    const other = await mkdtemp(join(tmpdir(), "skiff-image-race-"));
    try {
      const before = calls.filter((c) => c === "mke2fs").length;
      const all = await Promise.all([1, 2, 3].map(() => resolveImage("base", { cacheDir: other, runner: countingRunner })));
      expect(new Set(all.map((i) => i.basePath)).size).toBe(1);
      expect(calls.filter((c) => c === "mke2fs").length - before).toBe(1);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it("holds busybox, its applets and the accounts, owned as the manifest says", async () => {
    const { basePath } = await resolveImage("base");
    const bin = debugfs(basePath, "ls -l /bin");
    expect(bin).toMatch(/100755 \(1\)\s+0\s+0\s+\d+ .* busybox/);
    expect(bin).toMatch(/120777 \(7\)\s+0\s+0\s+12 .* sh/);
    expect(debugfs(basePath, "ls -l /home")).toMatch(/40755 \(2\)\s+1000\s+1000 .* user/);
    expect(debugfs(basePath, "ls -l /")).toMatch(/41777 \(2\)\s+0\s+0 .* tmp/);
    expect(debugfs(basePath, "cat /etc/os-release")).toMatch(/^PRETTY_NAME="skiff base \(busybox \d+\.\d+/m);
    expect(debugfs(basePath, "stat /bin/busybox")).toContain("User:     0   Group:     0");
    expect(execFileSync("e2fsck", ["-fn", basePath], { stdio: ["ignore", "ignore", "ignore"] })).toBeDefined();
  });

  it("is listed with its name", async () => {
    const { digest } = await resolveImage("base");
    const images = await listImages(cache);
    expect(images).toHaveLength(1);
    expect(images[0]).toMatchObject({ name: "base", digest, builtin: true, sizeBytes: 1024 ** 3 });
  });
});

describe("resolveImage", () => {
  it("without pulling, an image that is not here is not found, and says where the reference came from", async () => {
    const err = await resolveImage("debian:12", { place: "IMAGE argument", pull: "never", cacheDir: cache }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SkiffError);
    expect(err).toMatchObject({
      code: "ERR_SKIFF_IMAGE_NOT_FOUND",
      message: "image not found locally: debian:12",
      place: "IMAGE argument",
      hint: expect.stringContaining("`skiff image pull debian:12`"),
    });
  });

  it("lists nothing for an empty cache", async () => {
    expect(await listImages(join(cache, "nowhere"))).toEqual([]);
  });
});
