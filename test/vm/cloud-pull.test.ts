/**
 * `skiff image pull URL` for cloud images, through the built CLI against an
 * HTTP server on loopback: a small raw disk (it need not boot) served plain,
 * as .xz and as .zst, and zstd under a name that does not say so. Each is
 * decompressed, its format found with `qemu-img info`, and cached by URL so
 * a second pull asks the server nothing; a truncated or corrupt compressed
 * file is a coded error that leaves nothing in the cache. Also: `--disk`
 * below the image's size is refused before a VM is made. No QEMU guest: it
 * is in the VM suite because it runs the CLI and real xz/zstd/qemu-img.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveFiles, type FileServer } from "./file-server.js";
import { Harness } from "./harness.js";

const h = new Harness();
/** A cache of this file's own: the cloud cache is keyed by URL, and the server's port changes every run. */
const cache = join(h.home, "cache");
const env = { SKIFF_CACHE: cache };
let server: FileServer;
let base = "";
let disk: Buffer;

interface Pulled {
  path: string;
  format: string;
  virtualSize: number;
  digest: string;
  downloaded: boolean;
}

const sha256 = (b: Buffer): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

function compress(tool: "xz" | "zstd", data: Buffer): Buffer {
  const r = spawnSync(tool, ["-c", "-q"], { input: data, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${tool} failed: ${r.stderr.toString()}`);
  return r.stdout;
}

async function pull(path: string): Promise<Pulled> {
  return JSON.parse(await h.ok(["--json", "image", "pull", `${base}${path}`], { env })) as Pulled;
}

/** What the cloud cache holds: every file, temporary ones included. */
function cacheFiles(): string[] {
  const dir = join(cache, "cloud");
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

beforeAll(async () => {
  // 4 MiB with structure (so it compresses) and some noise (so a flipped byte matters); no partition table: raw.
  disk = Buffer.alloc(4 << 20);
  for (let i = 0; i < disk.length; i += 4096) disk.write(`skiff raw test disk, block ${i / 4096}\n`, i);
  createHash("sha256").update("seed").digest().copy(disk, 1 << 20);
  const xz = compress("xz", disk);
  const zst = compress("zstd", disk);
  const corrupt = Buffer.from(xz);
  for (let i = 0; i < 16; i++) corrupt[Math.floor(corrupt.length / 2) + i] ^= 0xff;
  server = await serveFiles();
  base = server.base;
  server.routes.set("/disk.raw", disk);
  server.routes.set("/disk.raw.xz", xz);
  server.routes.set("/disk.raw.zst", zst);
  server.routes.set("/download?id=7", zst);
  server.routes.set("/short.raw.xz", xz.subarray(0, Math.floor(xz.length / 2)));
  server.routes.set("/short.raw.zst", zst.subarray(0, Math.floor(zst.length / 2)));
  server.routes.set("/corrupt.raw.xz", corrupt);
});

afterAll(async () => {
  await h.cleanup();
  await server?.close();
});

describe("image pull of cloud image URLs", () => {
  it.each([
    ["raw", "/disk.raw"],
    [".xz", "/disk.raw.xz"],
    [".zst", "/disk.raw.zst"],
    ["zstd found by its magic, not its name", "/download?id=7"],
  ])("%s: decompressed, detected as raw, cached by URL", async (_what, path) => {
    const first = await pull(path);
    expect(first.downloaded).toBe(true);
    expect(first.format).toBe("raw");
    expect(first.virtualSize).toBe(disk.length);
    expect(first.path).toMatch(/\/cloud\/[0-9a-f]{64}\.raw$/);
    expect(first.digest).toBe(sha256(disk));
    expect(readFileSync(first.path).equals(disk)).toBe(true);

    const asked = server.requests.length;
    const again = await pull(path);
    expect(again).toEqual({ ...first, downloaded: false });
    expect(server.requests.length).toBe(asked);
  });

  it.each([
    ["a truncated .xz", "/short.raw.xz"],
    ["a truncated .zst", "/short.raw.zst"],
    ["an .xz with corrupt bytes", "/corrupt.raw.xz"],
  ])("%s is a clear error and leaves the cache clean", async (_what, path) => {
    const before = cacheFiles();
    const r = await h.run(["--json", "image", "pull", `${base}${path}`], { env });
    expect(r.code).toBe(2);
    const { error } = JSON.parse(r.stderr) as { error: { code: string; message: string; place: string; hint: string } };
    expect(error.code).toBe("ERR_SKIFF_BAD_ARCHIVE");
    expect(error.message).toContain(`${base}${path}`);
    expect(error.place).toBe("REF");
    expect(error.hint).toMatch(/\S/);
    expect(cacheFiles()).toEqual(before);
  });

  it("--disk smaller than the image's disk is refused before anything is made", async () => {
    const r = await h.run(["--json", "run", "-d", "--image-url", `${base}/disk.raw`, "--disk", "1M", "--name", "small"], { env });
    expect(r.code).toBe(2);
    const { error } = JSON.parse(r.stderr) as { error: { code: string; message: string; place: string } };
    expect(error).toMatchObject({ code: "ERR_SKIFF_USAGE", place: "--disk", message: "disk 1 MiB is smaller than the image's disk (4 MiB)" });
    expect(JSON.parse(await h.ok(["--json", "ps", "-a"], { env }))).toEqual([]);
  });

  it("prints the cached path without --json", async () => {
    const out = await h.ok(["image", "pull", `${base}/disk.raw.xz`], { env });
    expect(out).toMatch(/^\/\S+\/cloud\/[0-9a-f]{64}\.raw\n$/);
  });
});

