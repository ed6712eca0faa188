/** Layers → the cached ext4 base, checked inode by inode with debugfs; failures leave nothing behind. */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SkiffError } from "../../src/errors.js";
import { imageRecordPath } from "../../src/image/cache.js";
import type { OwnershipMode } from "../../src/image/unpack/applier.js";
import { type BaseSource, buildImageBase } from "../../src/image/unpack/build.js";
import { defaultRunner, type Runner } from "../../src/process/runner.js";
import { changesetLayers } from "./fixtures/changeset-layers.js";
import { cat, debugfs, gzip, inode, ls, makeTar, sha256 } from "./fixtures/tar-fixtures.js";

let work: string;
const calls: string[] = [];
const runner: Runner = {
  run(cmd, args, opts) {
    calls.push(cmd);
    return defaultRunner.run(cmd, args, opts);
  },
};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "skiff-build-test-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const config = { entrypoint: ["/usr/bin/tool"], cmd: ["--serve"], env: { PATH: "/usr/bin:/bin", A: "b" }, workingDir: "/srv", user: "1000:1000", exposedPorts: ["80/tcp"], labels: {} };

function source(digestSeed: string, layers: BaseSource["layers"]): BaseSource {
  return { digest: sha256(Buffer.from(digestSeed)), name: `test/${digestSeed}`, ref: `example.test/${digestSeed}:1`, layers, config };
}

/** Nothing half-made: no staging directory, no temp ext4, no script; and after a failure no base at all. */
function expectNoLeftovers(cacheDir: string, opts: { failed: boolean }): void {
  expect(readdirSync(join(cacheDir, "tmp"))).toEqual([]);
  const images = readdirSync(join(cacheDir, "images"));
  expect(images.filter((n) => n.startsWith("."))).toEqual([]);
  if (opts.failed) expect(images).toEqual([]);
}

describe.each<OwnershipMode>(["native", "fixup"])("buildImageBase (%s ownership)", (ownership) => {
  // Native ownership needs root (lchown, mknod), as the suite does (setup.sh runs as root); fixup mode is what a rootless build does.

  it("builds a read-only ext4 holding exactly what the layers say", async () => {
    const cacheDir = join(work, `cache-${ownership}`);
    const outside = join(work, `outside-${ownership}`);
    mkdirSync(outside, { recursive: true });
    const layers = await changesetLayers(join(work, `layers-${ownership}`), outside);
    const image = source(`changeset-${ownership}`, layers);
    const built = await buildImageBase({ cacheDir, image, runner, ownership });
    expect(built).toMatchObject({ digest: image.digest, name: image.name, built: true, ref: image.ref, config });
    expect(statSync(built.basePath).mode & 0o777).toBe(process.getuid?.() === 0 ? 0o440 : 0o400);
    expect(built.sizeBytes).toBe(1024 ** 3);
    const img = built.basePath;

    expect(ls(img, "/etc")).toEqual(["hostname"]);
    expect(cat(img, "/etc/hostname")).toBe("new\n");
    expect(ls(img, "/")).not.toContain("gone");
    expect(ls(img, "/data")).toEqual(["late", "new"]);
    expect(ls(img, "/usr")).toEqual(["bin"]);
    expect(inode(img, "/usr/bin/su")).toMatchObject({ uid: 1000, gid: 1000, mode: 0o4755, type: "regular" });
    expect(inode(img, "/home/user")).toMatchObject({ uid: 1000, gid: 1000, mode: 0o750, type: "directory" });
    expect(inode(img, "/tmp")).toMatchObject({ uid: 0, gid: 0, mode: 0o1777 });
    expect(inode(img, "/usr/bin/tool")).toMatchObject({ links: 2, mode: 0o755, uid: 0 });
    expect(inode(img, "/srv/x").links).toBe(2);
    expect(inode(img, "/srv")).toMatchObject({ uid: 0, gid: 0, mode: 0o755 }); // made for srv/x, no entry of its own
    expect(inode(img, "/dev/null")).toMatchObject({ type: "character special", device: [1, 3], mode: 0o666, uid: 0 });
    expect(inode(img, "/run/fifo")).toMatchObject({ type: "FIFO", mode: 0o644 });
    expect(inode(img, "/bin")).toMatchObject({ type: "symlink" });
    expect(debugfs(img, "stat /bin")).toContain('Fast link dest: "usr/bin"');
    expect(inode(img, "/")).toMatchObject({ uid: 0, gid: 0, mode: 0o755 });
    const xattrs = debugfs(img, "ea_list /usr/bin/ping");
    expect(xattrs).toContain("security.capability (20) = 01 00 00 02 00 20 00 00");
    expect(xattrs).toContain('user.note (5) = "hello"');
    // The escapes stayed inside.
    expect(readdirSync(outside)).toEqual([]);
    expect(cat(img, `${outside}/pwned`)).toBe("pwned");
    expect(cat(img, "/outlink")).toBe("replaced");
    execFileSync("e2fsck", ["-fn", img], { stdio: "ignore" });

    const record = JSON.parse(readFileSync(imageRecordPath(cacheDir, image.digest), "utf8")) as Record<string, unknown>;
    expect(record).toMatchObject({ name: image.name, ref: image.ref, digest: image.digest, builtin: false, config, layoutVersion: 1, sizeBytes: 1024 ** 3 });
    expectNoLeftovers(cacheDir, { failed: false });
  });

  it("does nothing for a digest already built", async () => {
    const cacheDir = join(work, `cache-${ownership}`);
    const image = source(`changeset-${ownership}`, []);
    const before = calls.length;
    const again = await buildImageBase({ cacheDir, image, runner, ownership });
    expect(again.built).toBe(false);
    expect(calls.length).toBe(before);
  });
});

describe("concurrent builds", () => {
  it("of one digest build it once and all get the same base", async () => {
    const cacheDir = join(work, "cache-race");
    const tar = await makeTar([{ name: "hello", body: "hi" }]);
    const path = join(work, "race.tar");
    writeFileSync(path, tar);
    const image = source("race", [{ path, mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(tar) }]);
    const before = calls.filter((c) => c === "mke2fs").length;
    const all = await Promise.all([1, 2, 3].map(() => buildImageBase({ cacheDir, image, runner })));
    expect(new Set(all.map((b) => b.basePath)).size).toBe(1);
    expect(all.filter((b) => b.built)).toHaveLength(1);
    expect(calls.filter((c) => c === "mke2fs").length - before).toBe(1);
  });
});

describe("failures leave the cache clean", () => {
  async function failing(name: string, layer: Buffer, opts: { digest?: string; mediaType?: string } = {}): Promise<SkiffError> {
    const cacheDir = join(work, `cache-fail-${name}`);
    const path = join(work, `bad-${name}`);
    writeFileSync(path, layer);
    const good = await makeTar([{ name: "ok", body: "fine" }]);
    const goodPath = join(work, `good-${name}`);
    writeFileSync(goodPath, good);
    const layers = [
      { path: goodPath, mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(good) },
      { path, mediaType: opts.mediaType ?? "application/vnd.oci.image.layer.v1.tar+gzip", digest: opts.digest ?? sha256(layer) },
    ];
    const err = await buildImageBase({ cacheDir, image: source(name, layers), runner }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SkiffError);
    expectNoLeftovers(cacheDir, { failed: true });
    return err as SkiffError;
  }

  const bigTar = () => makeTar([{ name: "big", body: Buffer.alloc(256 * 1024, 7) }, { name: "after", body: "x" }]);

  it("a corrupt tar is ERR_SKIFF_BAD_ARCHIVE naming the layer", async () => {
    const tar = await bigTar();
    tar[100] = tar[100]! ^ 0xff; // the first header's mode: its checksum no longer adds up
    const err = await failing("corrupt", tar, { mediaType: "application/vnd.oci.image.layer.v1.tar" });
    expect(err.code).toBe("ERR_SKIFF_BAD_ARCHIVE");
    expect(err.message).toContain(sha256(tar));
    expect(err.message).toMatch(/Invalid tar header/);
  });

  it("a truncated gzip is ERR_SKIFF_BAD_ARCHIVE", async () => {
    const gz = gzip(await bigTar());
    const cut = gz.subarray(0, Math.floor(gz.length / 2));
    const err = await failing("truncated", cut);
    expect(err.code).toBe("ERR_SKIFF_BAD_ARCHIVE");
    expect(err.message).toContain(sha256(cut));
    expect(err.message).toMatch(/unexpected end of file/i);
  });

  it("a tar cut short mid-file is ERR_SKIFF_BAD_ARCHIVE", async () => {
    const tar = await bigTar();
    const err = await failing("short", tar.subarray(0, 100_000), { mediaType: "application/vnd.oci.image.layer.v1.tar" });
    expect(err.code).toBe("ERR_SKIFF_BAD_ARCHIVE");
  });

  it("a layer whose bytes do not match its digest is ERR_SKIFF_DIGEST_MISMATCH", async () => {
    const gz = gzip(await bigTar());
    const err = await failing("mismatch", gz, { digest: sha256(Buffer.from("something else")) });
    expect(err.code).toBe("ERR_SKIFF_DIGEST_MISMATCH");
  });
});
