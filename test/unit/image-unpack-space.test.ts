/**
 * A full disk during a build: the cache sits on a small tmpfs (mounting
 * it needs root, as the whole suite does). The error is ERR_SKIFF_NO_SPACE and the
 * cache keeps nothing of the attempt.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SkiffError } from "../../src/errors.js";
import { buildImageBase } from "../../src/image/unpack/build.js";
import { gzip, makeTar, sha256 } from "./fixtures/tar-fixtures.js";

let work: string;
const mounts: string[] = [];

function mountTmpfs(dir: string, size: string): void {
  mkdirSync(dir, { recursive: true });
  // mode=0700: a tmpfs is 1777 by default, and skiff refuses a cache others can write.
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir], { stdio: ["ignore", "ignore", "pipe"] });
  mounts.push(dir);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "skiff-space-test-"));
  // Needs root to mount a tmpfs, as the whole suite does: a failure here fails these tests.
  mountTmpfs(join(work, "probe"), "1m");
});
afterAll(async () => {
  for (const dir of mounts.reverse()) execFileSync("umount", [dir]);
  await rm(work, { recursive: true, force: true });
});

const config = { entrypoint: [], cmd: ["/bin/sh"], env: {}, exposedPorts: [], labels: {} };

async function buildOnTmpfs(name: string, size: string, payload: number) {
  const cacheDir = join(work, name);
  mountTmpfs(cacheDir, size);
  // Random bytes do not compress: the layer file is small-ish, what it unpacks to is `payload`.
  const tar = await makeTar([{ name: "etc/os-release", body: "ID=test\n" }, { name: "blob", body: randomBytes(payload) }]);
  const layer = gzip(tar);
  const path = join(work, `${name}.tar.gz`); // outside the tmpfs: only the build's writes count
  writeFileSync(path, layer);
  const image = { digest: sha256(Buffer.from(name)), name, layers: [{ path, mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha256(layer) }], config };
  const err = await buildImageBase({ cacheDir, image }).catch((e: unknown) => e);
  return { cacheDir, err };
}

describe("a full disk during a build", () => {
  it("while unpacking a layer is ERR_SKIFF_NO_SPACE, and the staging directory is gone", async () => {
    const { cacheDir, err } = await buildOnTmpfs("unpack", "2m", 4 * 1024 ** 2);
    expect(err).toBeInstanceOf(SkiffError);
    expect(err).toMatchObject({ code: "ERR_SKIFF_NO_SPACE" });
    expect((err as SkiffError).message).toContain(cacheDir);
    expect((err as SkiffError).hint).toMatch(/skiff image prune/);
    expect(readdirSync(join(cacheDir, "tmp"))).toEqual([]);
    expect(readdirSync(join(cacheDir, "images"))).toEqual([]);
  });

  it("while writing the ext4 is ERR_SKIFF_NO_SPACE too, with no temp file left", async () => {
    // The tree (3 MiB) fits; the tree plus its copy in the ext4 does not.
    const { cacheDir, err } = await buildOnTmpfs("mkfs", "5m", 3 * 1024 ** 2);
    expect(err).toMatchObject({ code: "ERR_SKIFF_NO_SPACE" });
    expect(((err as SkiffError).cause as Error).message).toMatch(/^mke2fs .*No space left on device/s);
    expect(readdirSync(join(cacheDir, "tmp"))).toEqual([]);
    expect(readdirSync(join(cacheDir, "images"))).toEqual([]);
  });
});
