/**
 * readProcFile: /proc files (which say they hold 0 bytes) read whole
 * through one scratch buffer, which grows for a file that fills it and
 * still reads small ones right afterwards.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { readProcFile } from "../../src/process/proc-file.js";

it("reads a /proc file whole, as readFileSync does", () => {
  expect(readProcFile("/proc/self/stat")).toMatch(new RegExp(`^${process.pid} \\(`));
  const status = readProcFile("/proc/self/status");
  expect(status).toMatch(/^Name:/);
  expect(status).toMatch(/\nUid:\s+\d+/);
  expect(readProcFile("/proc/self/cmdline", "utf8").split("\0")[0]).toBe(readFileSync("/proc/self/cmdline", "utf8").split("\0")[0]);
});

it("grows for a file larger than its buffer, and reads a small one right after", async () => {
  const dir = await mkdtemp(join(tmpdir(), "skiff-proc-file-"));
  try {
    const big = join(dir, "big");
    const text = Array.from({ length: 3000 }, (_, i) => `line ${i}: ${"é".repeat(i % 7)}`).join("\n");
    writeFileSync(big, text);
    expect(Buffer.byteLength(text)).toBeGreaterThan(3 * 8 * 1024);
    expect(readProcFile(big, "utf8")).toBe(text);
    expect(readProcFile("/proc/self/stat")).toMatch(new RegExp(`^${process.pid} \\(`));
    writeFileSync(join(dir, "empty"), "");
    expect(readProcFile(join(dir, "empty"))).toBe("");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it("throws as fs does for a process that is gone", () => {
  expect(() => readProcFile("/proc/999999999/stat")).toThrow(expect.objectContaining({ code: "ENOENT" }));
});
