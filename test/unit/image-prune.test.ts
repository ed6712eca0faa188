/**
 * `image ls` and `image prune` on the cache alone (bases are files with a
 * record beside them; no VM needed): one name per image as with Docker's
 * tags, cloud images listed, prune takes dangling images, -a every unused one.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { listImageSummaries, pruneImages, removeImage, type ImageContext } from "../../src/engine/images.js";
import { imagePath, imagesDir, writeImageRecord } from "../../src/image/cache.js";
import { defaultRunner } from "../../src/process/runner.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

let home: string;
let cleanup: () => Promise<void>;
let vms: { name: string; imageDigest: string | undefined; dir: string }[];
let ctx: ImageContext;

beforeEach(async () => {
  ({ home, cleanup } = await makeTempHome());
  vms = [];
  ctx = { cacheDir: join(home, "cache"), home, runner: defaultRunner, vms: () => Promise.resolve(vms) };
  await mkdir(imagesDir(ctx.cacheDir), { recursive: true });
});
afterEach(() => cleanup());

const digest = (c: string) => `sha256:${c.repeat(64)}`;

/** A base as an import leaves it: the ext4 (any bytes will do for the listing) and its record. */
async function base(c: string, name: string, createdAt: string, builtin = false) {
  await writeFile(imagePath(ctx.cacheDir, digest(c)), "ext4");
  await writeImageRecord(ctx.cacheDir, { name, digest: digest(c), builtin, createdAt });
}

/** A cloud image as `image pull URL` leaves it. */
async function cloud(c: string, source: string, fetchedAt: string) {
  const dir = join(ctx.cacheDir, "cloud");
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${c.repeat(64)}.qcow2`), "qcow2");
  await writeFile(join(dir, `${c.repeat(64)}.json`), JSON.stringify({ source, format: "qcow2", virtualSize: 2 << 30, digest: digest(c), fetchedAt }));
}

const rows = async () => (await listImageSummaries(ctx)).map((i) => [i.name ?? "<none>", i.digest.slice(7, 8), i.kind, i.dangling]);

describe("image ls", () => {
  it("gives a name to one image only: the newest import keeps it, the older one is <none> and dangling", async () => {
    await base("a", "rootfs", "2026-01-01T00:00:00.000Z");
    await base("b", "rootfs", "2026-01-02T00:00:00.000Z");
    await base("c", "busybox", "2026-01-01T00:00:00.000Z", true);
    expect(await rows()).toEqual([
      ["rootfs", "b", "base", false],
      ["<none>", "a", "base", true],
      ["busybox", "c", "base", false],
    ]);
  });

  it("lists cloud images under their file name, with the URL as reference", async () => {
    await cloud("d", "https://cloud.example.org/images/debian-12-generic-amd64.qcow2", "2026-02-01T00:00:00.000Z");
    const [image] = await listImageSummaries(ctx);
    expect(image).toMatchObject({ name: "debian-12-generic-amd64.qcow2", kind: "cloud", refs: ["https://cloud.example.org/images/debian-12-generic-amd64.qcow2"], dangling: false });
    await removeImage(ctx, "debian-12-generic-amd64.qcow2");
    expect(await listImageSummaries(ctx)).toEqual([]);
  });
});

describe("image prune", () => {
  beforeEach(async () => {
    await base("a", "rootfs", "2026-01-01T00:00:00.000Z");
    await base("b", "rootfs", "2026-01-02T00:00:00.000Z");
    await base("c", "busybox", "2026-01-01T00:00:00.000Z", true);
    await base("e", "old", "2025-12-01T00:00:00.000Z");
    await cloud("d", "https://cloud.example.org/debian.qcow2", "2026-02-01T00:00:00.000Z");
  });

  it("removes only dangling images", async () => {
    const r = await pruneImages(ctx);
    expect(r.removed).toEqual([digest("a")]);
    expect((await rows()).map((r) => r[0])).toEqual(["debian.qcow2", "rootfs", "busybox", "old"]);
  });

  it("keeps a dangling image a VM uses", async () => {
    vms = [{ name: "web", imageDigest: digest("a"), dir: join(home, "vms", "x") }];
    expect((await pruneImages(ctx)).removed).toEqual([]);
  });

  it("-a removes every image no VM uses, named and cloud ones too", async () => {
    vms = [{ name: "web", imageDigest: digest("e"), dir: join(home, "vms", "x") }];
    const r = await pruneImages(ctx, { all: true });
    expect(r.removed.sort()).toEqual(["busybox", "debian.qcow2", "rootfs", digest("a")].sort());
    expect(await rows()).toEqual([["old", "e", "base", false]]);
  });
});
