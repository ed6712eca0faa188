import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeCpio } from "../../src/guest/cpio.js";

describe("writeCpio", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("writes newc records padded to 4 bytes and ends with the trailer", () => {
    const archive = writeCpio([{ type: "file", path: "/a", data: Buffer.from("xyz") }]);
    expect(archive.subarray(0, 6).toString()).toBe("070701");
    expect(archive.length % 4).toBe(0);
    expect(archive.includes(Buffer.from("TRAILER!!!\0"))).toBe(true);
  });

  it("is unpacked by GNU cpio with contents, modes and symlinks intact", () => {
    dir = mkdtempSync(join(tmpdir(), "cpio-"));
    const archive = writeCpio([
      { type: "dir", path: "/skiff", mode: 0o750 },
      { type: "file", path: "/skiff/hello", data: Buffer.from("hello\n"), mode: 0o755 },
      { type: "file", path: "/skiff/odd", data: Buffer.from("12345"), mode: 0o600 },
      { type: "symlink", path: "/skiff/link", target: "hello" },
    ]);
    writeFileSync(join(dir, "a.cpio"), archive);
    execFileSync("sh", ["-c", "mkdir out && cd out && cpio -id --quiet < ../a.cpio"], { cwd: dir });
    const out = join(dir, "out");
    expect(readFileSync(join(out, "skiff/hello"), "utf8")).toBe("hello\n");
    expect(readFileSync(join(out, "skiff/odd"), "utf8")).toBe("12345");
    expect(statSync(join(out, "skiff/hello")).mode & 0o777).toBe(0o755);
    expect(statSync(join(out, "skiff/odd")).mode & 0o777).toBe(0o600);
    expect(readlinkSync(join(out, "skiff/link"))).toBe("hello");
  });

  it("gives equal archives for equal entries", () => {
    const entries = [{ type: "file" as const, path: "x", data: Buffer.from("1") }];
    expect(writeCpio(entries).equals(writeCpio(entries))).toBe(true);
  });
});
