/**
 * The extractor of `skiff cp` out of a VM against hand-made hostile tars:
 * nothing lands outside the destination, no link is followed, no setuid bit
 * or device node appears unless -a asks, and a broken archive leaves no
 * half-written file. The suite runs as root (as setup does), which -a needs.
 */
import { execFileSync } from "node:child_process";
import { linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { nameProblem } from "../../src/guest/copy/beneath.js";
import { extractUntrusted, type ExtractReport } from "../../src/guest/copy/extract.js";
import { skiffFailure } from "./fixtures/agent-fake-guest.js";
import { makeTar, type TarItem } from "./fixtures/tar-fixtures.js";

let work: string;
let dest: string;
let outside: string;
let n = 0;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "skiff-extract-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});
beforeEach(() => {
  const case_ = join(work, `case${n++}`);
  dest = join(case_, "dest");
  outside = join(case_, "outside");
  mkdirSync(dest, { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, "victim"), "original\n");
});

async function extract(items: TarItem[], archive = false): Promise<ExtractReport> {
  return extractUntrusted(Readable.from([await makeTar(items)]), { dest, source: "web:/src", archive });
}

const modeOf = (path: string) => lstatSync(path).mode & 0o7777;
const outsideUntouched = () => {
  expect(readdirSync(outside)).toEqual(["victim"]);
  expect(readFileSync(join(outside, "victim"), "utf8")).toBe("original\n");
};

describe("what is made", () => {
  it("files, directories and symlinks with their modes and times, owned by the caller, setuid/setgid cleared and counted", async () => {
    const report = await extract([
      { name: "./", type: "directory", mode: 0o750 },
      { name: "./bin/", type: "directory", mode: 0o2775 },
      { name: "./bin/su", body: "su\n", mode: 0o4755, uid: 1234, gid: 5678 },
      { name: "./bin/sg", body: "sg\n", mode: 0o2711 },
      { name: "./tmp/", type: "directory", mode: 0o1777 },
      { name: "./ro/", type: "directory", mode: 0o555 },
      { name: "./ro/inside", body: "made before ro got its mode\n" },
      { name: "./etc-link", type: "symlink", linkname: "/etc" },
    ]);
    expect(report).toEqual({ skipped: { devices: 0, fifos: 0, other: 0 }, setidCleared: 3 });
    expect(modeOf(join(dest, "bin"))).toBe(0o775);
    expect(modeOf(join(dest, "bin", "su"))).toBe(0o755);
    expect(modeOf(join(dest, "bin", "sg"))).toBe(0o711);
    expect(modeOf(join(dest, "tmp"))).toBe(0o1777);
    expect(modeOf(join(dest, "ro"))).toBe(0o555);
    expect(modeOf(dest)).toBe(0o750);
    expect(readFileSync(join(dest, "ro", "inside"), "utf8")).toBe("made before ro got its mode\n");
    expect(lstatSync(join(dest, "bin", "su"))).toMatchObject({ uid: process.getuid!(), gid: process.getgid!() });
    expect(lstatSync(join(dest, "bin", "su")).mtime.toISOString()).toBe("2024-06-01T00:00:00.000Z");
    expect(lstatSync(join(dest, "bin")).mtime.toISOString()).toBe("2024-06-01T00:00:00.000Z");
    expect(readlinkSync(join(dest, "etc-link"))).toBe("/etc");
  });

  it("skips device nodes and fifos and counts them", async () => {
    const report = await extract([
      { name: "dev/", type: "directory" },
      { name: "dev/null", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666 },
      { name: "dev/sda", type: "block-device", devmajor: 8, devminor: 0, mode: 0o660 },
      { name: "dev/pipe", type: "fifo", mode: 0o644 },
      { name: "dev/file", body: "x" },
    ]);
    expect(report.skipped).toEqual({ devices: 2, fifos: 1, other: 0 });
    expect(readdirSync(join(dest, "dev"))).toEqual(["file"]);
  });

  it("long names (PAX headers) come through", async () => {
    const deep = `${"d".repeat(120)}/${"e".repeat(120)}/${"f".repeat(200)}`;
    await extract([{ name: deep, body: "deep\n" }]);
    expect(readFileSync(join(dest, deep), "utf8")).toBe("deep\n");
  });

  it("what GNU tar makes (a cloud image's own tar): long names, hard links, symlinks", async () => {
    const src = join(dest, "..", "gnu-src");
    const long = "n".repeat(150);
    mkdirSync(join(src, long), { recursive: true });
    writeFileSync(join(src, long, "f"), "gnu\n");
    linkSync(join(src, long, "f"), join(src, "hard"));
    symlinkSync(`${long}/f`, join(src, "soft"));
    const tar = execFileSync("tar", ["-c", "-f", "-", "--format=gnu", "-C", src, "."]);
    await extractUntrusted(Readable.from([tar]), { dest, source: "web:/src" });
    expect(readFileSync(join(dest, long, "f"), "utf8")).toBe("gnu\n");
    expect(lstatSync(join(dest, "hard")).ino).toBe(lstatSync(join(dest, long, "f")).ino);
    expect(readlinkSync(join(dest, "soft"))).toBe(`${long}/f`);
  });

  it("a hard link to a file made earlier in the same archive", async () => {
    await extract([
      { name: "a", body: "shared\n", mode: 0o640 },
      { name: "sub/b", type: "link", linkname: "a" },
    ]);
    expect(lstatSync(join(dest, "sub", "b")).ino).toBe(lstatSync(join(dest, "a")).ino);
    expect(readFileSync(join(dest, "sub", "b"), "utf8")).toBe("shared\n");
  });

  it("merges into existing directories and replaces existing files", async () => {
    mkdirSync(join(dest, "keep"));
    writeFileSync(join(dest, "keep", "old"), "old\n");
    writeFileSync(join(dest, "keep", "new"), "stale\n");
    await extract([{ name: "keep/", type: "directory" }, { name: "keep/new", body: "fresh\n" }]);
    expect(readdirSync(join(dest, "keep")).sort()).toEqual(["new", "old"]);
    expect(readFileSync(join(dest, "keep", "new"), "utf8")).toBe("fresh\n");
  });
});

describe("what is refused", () => {
  it.each([
    ["../x", 'a ".." component'],
    ["a/../../x", 'a ".." component'],
    ["/abs", "an absolute path"],
  ])("%s (%s)", async (name) => {
    const err = await skiffFailure(extract([{ name, body: "evil\n" }]));
    expect(err.code).toBe("ERR_SKIFF_COPY_UNSAFE");
    expect(err.exitCode).toBe(6);
    expect(err.message).toContain(JSON.stringify(name));
    expect(err.message).toContain("web:/src");
    expect(readdirSync(join(dest, ".."))).toEqual(["dest", "outside"]);
    outsideUntouched();
  });

  it("names that are empty or hold a NUL byte", () => {
    expect(nameProblem("")).toBe("its name is empty");
    expect(nameProblem("a\0b")).toBe("its name holds a NUL byte");
    expect(nameProblem("./a/b")).toBeUndefined();
  });

  it("a symlink on disk in a parent component (left by an earlier copy)", async () => {
    mkdirSync(join(dest, "d"));
    symlinkSync(outside, join(dest, "d", "link"));
    const err = await skiffFailure(extract([{ name: "d/link/evil", body: "evil\n" }]));
    expect(err.code).toBe("ERR_SKIFF_COPY_UNSAFE");
    expect(err.message).toContain('"d/link/evil"');
    expect(err.message).toContain(`${join(dest, "d", "link")} is a symbolic link`);
    outsideUntouched();
  });

  it("a symlink made earlier in the same archive, then used as a parent", async () => {
    const err = await skiffFailure(
      extract([
        { name: "link", type: "symlink", linkname: outside },
        { name: "link/victim", body: "evil\n" },
      ]),
    );
    expect(err.code).toBe("ERR_SKIFF_COPY_UNSAFE");
    outsideUntouched();
  });

  it("a symlink at the final path is replaced, never written through", async () => {
    symlinkSync(join(outside, "victim"), join(dest, "file"));
    symlinkSync(outside, join(dest, "dir"));
    await extract([
      { name: "file", body: "new\n" },
      { name: "dir/", type: "directory" },
      { name: "dir/victim", body: "new\n" },
    ]);
    expect(lstatSync(join(dest, "file")).isFile()).toBe(true);
    expect(readFileSync(join(dest, "file"), "utf8")).toBe("new\n");
    expect(lstatSync(join(dest, "dir")).isDirectory()).toBe(true);
    outsideUntouched();
  });

  it("a file is never written through an existing hard link", async () => {
    linkSync(join(outside, "victim"), join(dest, "hard"));
    await extract([{ name: "hard", body: "new\n" }]);
    expect(readFileSync(join(dest, "hard"), "utf8")).toBe("new\n");
    outsideUntouched();
  });

  it.each([
    ["out of the destination", "../outside/victim"],
    ["to an absolute path", "/etc/passwd"],
    ["to a file already on the host", "present"],
    ["to a directory of the archive", "dir"],
  ])("a hard link %s", async (_what, linkname) => {
    writeFileSync(join(dest, "present"), "host file\n");
    const err = await skiffFailure(
      extract([
        { name: "dir/", type: "directory" },
        { name: "h", type: "link", linkname },
      ]),
    );
    expect(err.code).toBe("ERR_SKIFF_COPY_UNSAFE");
    expect(err.message).toContain('"h"');
    expect(readdirSync(dest).sort()).toEqual(["dir", "present"]);
    outsideUntouched();
  });

  it("an entry that would replace the destination itself", async () => {
    const err = await skiffFailure(extract([{ name: "./", type: "symlink", linkname: outside }]));
    expect(err.code).toBe("ERR_SKIFF_COPY_UNSAFE");
    expect(lstatSync(dest).isDirectory()).toBe(true);
  });

  it("a file over a non-empty directory", async () => {
    mkdirSync(join(dest, "full"));
    writeFileSync(join(dest, "full", "x"), "x");
    const err = await skiffFailure(extract([{ name: "full", body: "file\n" }]));
    expect(err.code).toBe("ERR_SKIFF_BAD_PATH");
    expect(readFileSync(join(dest, "full", "x"), "utf8")).toBe("x");
  });
});

describe("a truncated archive", () => {
  it("is an error, and the file it was writing is not left half-made", async () => {
    const tar = await makeTar([
      { name: "whole", body: "complete\n" },
      { name: "big", body: Buffer.alloc(64 * 1024, 7) },
    ]);
    const cut = tar.subarray(0, 512 * 4 + 20 * 1024); // into big's data
    const err = await skiffFailure(extractUntrusted(Readable.from([cut]), { dest, source: "web:/src" }));
    expect(err.code).toBe("ERR_SKIFF_COPY_FAILED");
    expect(err.message).toContain('"big"');
    expect(readdirSync(dest)).toEqual(["whole"]);
  });

  it("garbage is an error", async () => {
    const err = await skiffFailure(extractUntrusted(Readable.from([Buffer.alloc(1024, 0x41)]), { dest, source: "web:/src" }));
    expect(err.code).toBe("ERR_SKIFF_COPY_FAILED");
    expect(readdirSync(dest)).toEqual([]);
  });
});

describe("archive mode (-a)", () => {
  it("keeps owners, setuid/setgid bits, fifos and device nodes", async () => {
    const report = await extract(
      [
        { name: "bin/", type: "directory", mode: 0o2755, uid: 42, gid: 43 },
        { name: "bin/su", body: "su\n", mode: 0o4755, uid: 1234, gid: 5678 },
        { name: "bin/link", type: "symlink", linkname: "su", uid: 7, gid: 8 },
        { name: "null", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666, uid: 0, gid: 5 },
        { name: "pipe", type: "fifo", mode: 0o620, uid: 1000, gid: 1000 },
      ],
      true,
    );
    expect(report).toEqual({ skipped: { devices: 0, fifos: 0, other: 0 }, setidCleared: 0 });
    expect(lstatSync(join(dest, "bin"))).toMatchObject({ uid: 42, gid: 43 });
    expect(modeOf(join(dest, "bin"))).toBe(0o2755);
    expect(lstatSync(join(dest, "bin", "su"))).toMatchObject({ uid: 1234, gid: 5678 });
    expect(modeOf(join(dest, "bin", "su"))).toBe(0o4755);
    expect(lstatSync(join(dest, "bin", "link"))).toMatchObject({ uid: 7, gid: 8 });
    const dev = lstatSync(join(dest, "null"));
    expect(dev.isCharacterDevice()).toBe(true);
    expect([Math.floor(dev.rdev / 256), dev.rdev % 256]).toEqual([1, 3]);
    expect(dev.mode & 0o7777).toBe(0o666);
    expect(lstatSync(join(dest, "pipe")).isFIFO()).toBe(true);
    expect(lstatSync(join(dest, "pipe"))).toMatchObject({ uid: 1000, gid: 1000 });
    expect(modeOf(join(dest, "pipe"))).toBe(0o620);
  });

  it("still refuses to leave the destination", async () => {
    mkdirSync(join(dest, "d"));
    symlinkSync(outside, join(dest, "d", "link"));
    for (const items of [
      [{ name: "../x", body: "evil\n" }],
      [{ name: "d/link/victim", body: "evil\n" }],
      [{ name: "n", type: "character-device", devmajor: 1, devminor: 3 }, { name: "n/x", body: "evil\n" }],
      [{ name: "h", type: "link", linkname: join(outside, "victim") }],
    ] as TarItem[][]) {
      const err = await skiffFailure(extract(items, true));
      expect(["ERR_SKIFF_COPY_UNSAFE", "ERR_SKIFF_BAD_PATH"]).toContain(err.code);
    }
    outsideUntouched();
    expect(statSync(join(dest, "d")).isDirectory()).toBe(true);
  });
});
