/** `skiff image import` of plain root filesystems: tarballs in every compression, and directories. */
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, linkSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importedRuntimeConfig } from "../../src/image/import/choose.js";
import { importImage } from "../../src/image/import/import.js";
import { cat, gzip, inode, ls, makeTar, zstd } from "./fixtures/tar-fixtures.js";

let work: string;
let cacheDir: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "skiff-import-rootfs-test-"));
  cacheDir = join(work, "cache");
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function rootfsTar(): Promise<Buffer> {
  return makeTar([
    { name: "./", type: "directory" },
    { name: "./bin/", type: "directory" },
    { name: "./bin/sh", body: "#!fake shell\n", mode: 0o755 },
    { name: "./etc/", type: "directory" },
    { name: "./etc/os-release", body: "ID=rootfs\n" },
    { name: "./home/", type: "directory" },
    { name: "./home/user/", type: "directory", uid: 1000, gid: 1000, mode: 0o700 },
  ]);
}

describe("importImage: root filesystem tarballs", () => {
  const compressions: [string, (b: Buffer) => Buffer][] = [
    ["tar", (b) => b],
    ["tar.gz", gzip],
    ["tar.zst", zstd],
    ["tar.xz", (b) => execFileSync("xz", ["-c", "-0"], { input: b })],
  ];

  it.each(compressions)("imports a .%s as one layer that runs /bin/sh, named after the file", async (suffix, compress) => {
    const path = join(work, `alpine-mini.${suffix}`);
    writeFileSync(path, compress(await rootfsTar()));
    const result = await importImage(path, { cacheDir });
    expect(result).toMatchObject({ kind: "rootfs-archive", name: "alpine-mini", built: true, config: importedRuntimeConfig });
    expect(result.config?.cmd).toEqual(["/bin/sh"]);
    expect(cat(result.basePath, "/etc/os-release")).toBe("ID=rootfs\n");
    expect(inode(result.basePath, "/home/user")).toMatchObject({ uid: 1000, gid: 1000, mode: 0o700 });
    expect(inode(result.basePath, "/bin/sh").mode).toBe(0o755);
  });

  it("does not build the same file twice", async () => {
    const path = join(work, "alpine-mini.tar");
    const again = await importImage(path, { cacheDir, name: "renamed" });
    expect(again).toMatchObject({ kind: "rootfs-archive", built: false });
  });
});

describe("importImage: directories", () => {
  function makeRootfs(dir: string): void {
    mkdirSync(join(dir, "bin"), { recursive: true });
    mkdirSync(join(dir, "etc"));
    mkdirSync(join(dir, "var/empty"), { recursive: true });
    writeFileSync(join(dir, "bin/busybox"), "#!fake busybox\n");
    chmodSync(join(dir, "bin/busybox"), 0o4755);
    linkSync(join(dir, "bin/busybox"), join(dir, "bin/hard"));
    symlinkSync("busybox", join(dir, "bin/sh"));
    writeFileSync(join(dir, "etc/os-release"), "ID=dir\n");
    mkdirSync(join(dir, "tmp"));
    chmodSync(join(dir, "tmp"), 0o1777);
    execFileSync("mkfifo", [join(dir, "var/fifo")]);
    chownSync(join(dir, "var/empty"), 1000, 1000);
    execFileSync("mknod", [join(dir, "var/zero"), "c", "1", "5"]);
    utimesSync(join(dir, "etc/os-release"), 1_700_000_000, 1_700_000_000);
    chmodSync(dir, 0o700); // the image root is 0755 whatever the directory's own mode
  }

  it("copies a directory as the root filesystem, links, modes, owners and nodes included", async () => {
    const dir = join(work, "my-root");
    makeRootfs(dir);
    const result = await importImage(dir, { cacheDir });
    expect(result).toMatchObject({ kind: "rootfs-directory", name: "my-root", built: true });
    const img = result.basePath;
    expect(ls(img, "/")).toEqual(expect.arrayContaining(["bin", "etc", "tmp", "var"]));
    expect(inode(img, "/")).toMatchObject({ mode: 0o755, uid: 0, gid: 0 });
    expect(inode(img, "/bin/busybox")).toMatchObject({ mode: 0o4755, links: 2 });
    expect(inode(img, "/bin/sh").type).toBe("symlink");
    expect(inode(img, "/tmp").mode).toBe(0o1777);
    expect(inode(img, "/var/fifo").type).toBe("FIFO");
    expect(inode(img, "/var/empty")).toMatchObject({ uid: 1000, gid: 1000 });
    expect(inode(img, "/var/zero")).toMatchObject({ type: "character special", device: [1, 5] });
    expect(cat(img, "/etc/os-release")).toBe("ID=dir\n");
  });

  it("names a directory by its content: unchanged → cache hit, changed → a new base", async () => {
    const dir = join(work, "my-root");
    const same = await importImage(dir, { cacheDir });
    expect(same.built).toBe(false);
    writeFileSync(join(dir, "etc/os-release"), "ID=dir2\n");
    const changed = await importImage(dir, { cacheDir });
    expect(changed.built).toBe(true);
    expect(changed.digest).not.toBe(same.digest);
    expect(cat(changed.basePath, "/etc/os-release")).toBe("ID=dir2\n");
  });
});
