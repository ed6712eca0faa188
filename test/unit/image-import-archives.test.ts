/** `skiff image import` of `docker save` archives and OCI image layouts (directory and tar). */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SkiffError } from "../../src/errors.js";
import { importImage } from "../../src/image/import/import.js";
import { appLayers, dockerSaveTar, expectedConfig, imageConfig, layoutTar, ociLayout, writeLayout } from "./fixtures/image-archives.js";
import { cat, gzip, inode, ls, makeTar, sha256 } from "./fixtures/tar-fixtures.js";

let work: string;
let cacheDir: string;
let layers: Buffer[];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "skiff-import-test-"));
  cacheDir = join(work, "cache");
  layers = await appLayers();
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** The app image's tree, whatever archive it came in. */
function expectAppImage(basePath: string): void {
  expect(ls(basePath, "/etc")).toEqual(["os-release"]);
  expect(cat(basePath, "/etc/os-release")).toBe("ID=app\n");
  expect(inode(basePath, "/app")).toMatchObject({ mode: 0o755, uid: 0 });
  expect(inode(basePath, "/srv/data")).toMatchObject({ mode: 0o600, uid: 1000, gid: 1000 });
}

function expectCleanCache(): void {
  expect(readdirSync(join(cacheDir, "tmp"))).toEqual([]);
  expect(readdirSync(join(cacheDir, "images")).filter((n) => n.startsWith("."))).toEqual([]);
}

describe("importImage: docker save", () => {
  it("imports a classic docker save tar, named by its tag and its config digest", async () => {
    const tar = await dockerSaveTar(layers);
    const path = join(work, "app.tar");
    writeFileSync(path, tar);
    const result = await importImage(path, { cacheDir });
    expect(result).toMatchObject({ kind: "docker-save", name: "example/app:1.0", ref: "example/app:1.0", built: true, config: expectedConfig });
    const empty = await makeTar([]);
    expect(result.digest).toBe(sha256(imageConfig([...layers, empty, empty].map(sha256))));
    expectAppImage(result.basePath);
    expectCleanCache();
  });

  it("imports the same archive gzipped (decompressed once into the cache's tmp) without building again", async () => {
    const path = join(work, "app.tar.gz");
    writeFileSync(path, gzip(await dockerSaveTar(layers)));
    const result = await importImage(path, { cacheDir, name: "mine" });
    expect(result.kind).toBe("docker-save");
    expect(result.built).toBe(false); // same config digest as app.tar
    expectCleanCache();
  });

  it("refuses a layer that does not match its diff_id, leaving nothing", async () => {
    const tar = await dockerSaveTar(layers, "example/tampered:1");
    // Change one byte of a file's content inside the first layer.tar: tar checksums cover headers only.
    const at = tar.indexOf(Buffer.from("ID=app"));
    tar[at] = "X".charCodeAt(0);
    const path = join(work, "tampered.tar");
    writeFileSync(path, tar);
    const cache = join(work, "cache-tampered");
    const err = await importImage(path, { cacheDir: cache }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SkiffError);
    expect(err).toMatchObject({ code: "ERR_SKIFF_DIGEST_MISMATCH" });
    expect(readdirSync(join(cache, "tmp"))).toEqual([]);
    expect(readdirSync(join(cache, "images"))).toEqual([]);
  });

  // skopeo comes with ./setup.sh; without it this fails rather than passing nothing.
  it("reads what skopeo writes (docker-archive and oci-archive)", async () => {
    const layoutDir = join(work, "skopeo-src");
    writeLayout(await ociLayout(layers, "1.0", { zstd: false }), layoutDir); // docker-archive cannot hold zstd
    const dockerArchive = join(work, "skopeo-docker.tar");
    const ociArchive = join(work, "skopeo-oci.tar");
    const opts = { stdio: "ignore" as const };
    execFileSync("skopeo", ["copy", "--override-arch", "amd64", `oci:${layoutDir}:1.0`, `docker-archive:${dockerArchive}:example/skopeo:2`], opts);
    execFileSync("skopeo", ["copy", "--override-arch", "amd64", `oci:${layoutDir}:1.0`, `oci-archive:${ociArchive}:example/skopeo:3`], opts);
    const fromDocker = await importImage(dockerArchive, { cacheDir });
    expect(fromDocker).toMatchObject({ kind: "docker-save", name: "docker.io/example/skopeo:2", config: expectedConfig });
    expectAppImage(fromDocker.basePath);
    const fromOci = await importImage(ociArchive, { cacheDir });
    expect(fromOci).toMatchObject({ kind: "oci-layout", name: "example/skopeo:3", config: expectedConfig });
    expectAppImage(fromOci.basePath);
  });
});

describe("importImage: OCI image layouts", () => {
  it("imports a layout directory: the amd64 image of a nested multi-platform index, named by its manifest digest", async () => {
    const layout = await ociLayout(layers);
    const dir = join(work, "layout-app");
    writeLayout(layout, dir);
    const result = await importImage(dir, { cacheDir });
    expect(result).toMatchObject({ kind: "oci-layout", digest: layout.manifestDigest, name: "layout-app:1.0", config: expectedConfig, built: true });
    expectAppImage(result.basePath);
    expectCleanCache();
  });

  it("imports the same layout as a tar, reusing the base", async () => {
    const layout = await ociLayout(layers);
    const path = join(work, "layout-app.tar");
    writeFileSync(path, await layoutTar(layout));
    const result = await importImage(path, { cacheDir, name: "other-name" });
    expect(result).toMatchObject({ kind: "oci-layout", digest: layout.manifestDigest, built: false });
  });

  it("chooses another platform when asked, and refuses one the layout does not have", async () => {
    const layout = await ociLayout(layers, "2.0");
    const dir = join(work, "layout-arm");
    writeLayout(layout, dir);
    const arm = await importImage(dir, { cacheDir, platform: { os: "linux", architecture: "arm64" } });
    expect(arm.digest).not.toBe(layout.manifestDigest);
    const err = await importImage(dir, { cacheDir, platform: { os: "linux", architecture: "s390x" } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ERR_SKIFF_PLATFORM" });
  });

  it("refuses a blob that does not match its digest", async () => {
    const layout = await ociLayout(layers, "3.0");
    // Swap the amd64 config for another one under the old name.
    const config = imageConfig(layers.map(sha256));
    const name = `blobs/sha256/${sha256(config).slice(7)}`;
    layout.files.set(name, Buffer.from(config.toString().replace("amd64", "AMD64")));
    const dir = join(work, "layout-bad");
    writeLayout(layout, dir);
    const err = await importImage(dir, { cacheDir }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ERR_SKIFF_DIGEST_MISMATCH" });
    expect((err as SkiffError).message).toContain(name);
  });

  it("says clearly when a file is not an archive at all", async () => {
    const path = join(work, "notes.txt");
    writeFileSync(path, "hello, this is not a tar\n".repeat(100));
    const err = await importImage(path, { cacheDir }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ERR_SKIFF_BAD_ARCHIVE" });
    expect((err as SkiffError).message).toContain("notes.txt cannot be imported");
    expect(readFileSync(path, "utf8")).toContain("hello");
    const missing = await importImage(join(work, "nope.tar"), { cacheDir }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: "ERR_SKIFF_FILE_NOT_FOUND" });
  });
});
