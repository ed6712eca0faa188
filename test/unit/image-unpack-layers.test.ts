/** Layer application into a staging directory: the OCI changeset rules, links, nodes, owners, path safety. */
import { lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyLayers, type LayerSource } from "../../src/image/unpack/apply.js";
import { gzip, makeTar, sha256, zstd } from "./fixtures/tar-fixtures.js";
import { changesetLayers } from "./fixtures/changeset-layers.js";

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "skiff-unpack-test-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});


describe("applyLayers", () => {
  it("applies layers in order with whiteouts, opaque dirs, links, nodes, owners and modes", async () => {
    const outside = join(work, "outside");
    mkdirSync(outside);
    writeFileSync(join(outside, "victim"), "original");
    const root = join(work, "root-native");
    mkdirSync(root);
    const layers = await changesetLayers(join(work, "layers-native"), outside);
    const result = await applyLayers(layers, root, { ownership: "native" });

    const at = (p: string) => join(root, p);
    const read = (p: string) => readFileSync(at(p), "utf8");
    // Whiteouts: a file, and a whole tree, of lower layers.
    expect(readdirSync(at("etc")).sort()).toEqual(["hostname"]);
    expect(read("etc/hostname")).toBe("new\n");
    expect(() => lstatSync(at("gone"))).toThrow(/ENOENT/);
    expect(readdirSync(at("usr")).sort()).toEqual(["bin"]);
    // Opaque directory: lower contents gone, this layer's entries kept whether before or after the marker.
    expect(readdirSync(at("data")).sort()).toEqual(["late", "new"]);
    // Hard links to an earlier layer's file and within a layer.
    expect(lstatSync(at("usr/bin/tool2")).ino).toBe(lstatSync(at("usr/bin/tool")).ino);
    expect(lstatSync(at("usr/bin/tool")).nlink).toBe(2);
    expect(lstatSync(at("srv/y")).ino).toBe(lstatSync(at("srv/x")).ino);
    // A parent symlink is followed inside the root (merged /usr): bin/viabin lands in usr/bin.
    expect(lstatSync(at("bin")).isSymbolicLink()).toBe(true);
    expect(read("usr/bin/viabin")).toBe("via bin");
    // Modes with setuid and sticky bits; directory times from the tar.
    expect(lstatSync(at("usr/bin/su")).mode & 0o7777).toBe(0o4755);
    expect(lstatSync(at("tmp")).mode & 0o7777).toBe(0o1777);
    expect(lstatSync(at("etc")).mtime.toISOString()).toBe("2024-06-01T00:00:00.000Z");
    expect(lstatSync(at("home/user")).mtime.toISOString()).toBe("2024-06-01T00:00:00.000Z");
    // As root (the suite runs as root, as setup does) owners and nodes are real, not fixups.
    expect(lstatSync(at("usr/bin/su"))).toMatchObject({ uid: 1000, gid: 1000 });
    expect(lstatSync(at("home/user"))).toMatchObject({ uid: 1000, gid: 1000 });
    const dev = lstatSync(at("dev/null"));
    expect(dev.isCharacterDevice()).toBe(true);
    expect([Math.floor(dev.rdev / 256), dev.rdev % 256]).toEqual([1, 3]);
    expect(lstatSync(at("run/fifo")).isFIFO()).toBe(true);
    expect([...result.fixups.keys()]).toEqual(["/usr/bin/ping"]); // xattrs only
    expect(result.fixups.get("/usr/bin/ping")?.xattrs?.map(([name]) => name).sort()).toEqual(["security.capability", "user.note"]);
  });

  it("never writes outside the root, through symlinks or .. names", async () => {
    const outside = join(work, "outside2");
    mkdirSync(outside);
    writeFileSync(join(outside, "victim"), "original");
    const root = join(work, "root-escape");
    mkdirSync(root);
    const layers = await changesetLayers(join(work, "layers-escape"), outside);
    await applyLayers(layers, root);
    // Nothing new outside, and the victim behind a replaced symlink is untouched.
    expect(readdirSync(outside)).toEqual(["victim"]);
    expect(readFileSync(join(outside, "victim"), "utf8")).toBe("original");
    // The writes landed where a chroot would have put them.
    expect(readFileSync(join(root, outside, "pwned"), "utf8")).toBe("pwned");
    expect(readFileSync(join(root, outside, "pwned2"), "utf8")).toBe("pwned2");
    expect(readFileSync(join(root, "dotdot"), "utf8")).toBe("clamped");
    expect(lstatSync(join(root, "outlink")).isFile()).toBe(true);
    expect(readFileSync(join(root, "outlink"), "utf8")).toBe("replaced");
    expect(readdirSync(work).sort()).toEqual(expect.not.arrayContaining(["dotdot", "pwned"]));
  });

  it("lets a whiteout hide only lower layers: what its own layer wrote stays, before or after it", async () => {
    const lower = await makeTar([
      { name: "x/", type: "directory" },
      { name: "x/old", body: "old" },
      { name: "y", body: "lower y" },
    ]);
    const upper = await makeTar([
      { name: "x/new", body: "new" },
      { name: ".wh.x", body: "" },
      { name: ".wh.y", body: "" },
      { name: "y", body: "upper y" },
    ]);
    const layers = [lower, upper].map((tar, i) => {
      const path = join(work, `wh-${i}.tar`);
      writeFileSync(path, tar);
      return { path, mediaType: "application/vnd.oci.image.layer.v1.tar" };
    });
    const root = join(work, "root-wh");
    mkdirSync(root);
    await applyLayers(layers, root);
    expect(readdirSync(join(root, "x"))).toEqual(["new"]);
    expect(readFileSync(join(root, "y"), "utf8")).toBe("upper y");
  });

  it("reads uncompressed, gzip and zstd layers whatever the media type claims", async () => {
    const tar = await makeTar([{ name: "hello", body: "hi" }]);
    const variants: [string, Buffer][] = [
      ["plain", tar],
      ["gz", gzip(tar)],
      ["zst", zstd(tar)],
    ];
    for (const [suffix, bytes] of variants) {
      const path = join(work, `sniff.${suffix}`);
      writeFileSync(path, bytes);
      const root = join(work, `root-sniff-${suffix}`);
      mkdirSync(root);
      // A media type that lies: the magic number decides.
      const layer: LayerSource = { path, mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha256(bytes), diffId: sha256(tar) };
      await applyLayers([suffix === "gz" ? { ...layer, mediaType: "application/vnd.oci.image.layer.v1.tar" } : layer], root);
      expect(readFileSync(join(root, "hello"), "utf8")).toBe("hi");
    }
  });

  it("an uncompressed layer's diff_id is its digest: a config that says otherwise, or changed bytes, fail", async () => {
    const tar = await makeTar([{ name: "hello", body: "hi" }]);
    const path = join(work, "plain-diffid.tar");
    writeFileSync(path, tar);
    const layer: LayerSource = { path, mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(tar), diffId: sha256(Buffer.from("other")) };
    mkdirSync(join(work, "root-diffid-a"));
    mkdirSync(join(work, "root-diffid-b"));
    await expect(applyLayers([layer], join(work, "root-diffid-a"))).rejects.toMatchObject({
      code: "ERR_SKIFF_DIGEST_MISMATCH",
      message: expect.stringContaining("the image config says"),
    });
    const changed = await makeTar([{ name: "hello", body: "ho" }]);
    writeFileSync(path, changed);
    await expect(applyLayers([{ ...layer, diffId: sha256(tar) }], join(work, "root-diffid-b"))).rejects.toMatchObject({
      code: "ERR_SKIFF_DIGEST_MISMATCH",
      message: expect.stringContaining("its bytes hash to"),
    });
  });
});
