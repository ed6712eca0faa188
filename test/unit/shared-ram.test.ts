/**
 * The sealed copy of a snapshot's RAM that forks share (src/snapshot/shared-ram.ts, memfd.c):
 * the content whole, holes kept, and no way to change it through any descriptor.
 */
import { closeSync, ftruncateSync, openSync, readlinkSync, readSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedRamFrom } from "../../src/snapshot/shared-ram.js";
import { errorOf } from "./fixtures/errors.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ home: dir, cleanup } = await makeTempHome());
});
afterAll(() => cleanup());

const mib = 1024 * 1024;

describe("sharedRamFrom", () => {
  it("copies the data and keeps the holes, in a memfd sealed against writes and resizes", () => {
    const mem = join(dir, "mem");
    const file = openSync(mem, "w");
    ftruncateSync(file, 8 * mib);
    writeSync(file, Buffer.from("first page"), 0, 10, 0);
    writeSync(file, Buffer.alloc(4096, 0xab), 0, 4096, 5 * mib);
    closeSync(file);

    const ram = sharedRamFrom(mem, "snapshot test");
    try {
      expect(readlinkSync(`/proc/self/fd/${ram.fd}`)).toMatch(/^\/memfd:skiff-ram/);
      const st = statSync(`/proc/self/fd/${ram.fd}`);
      expect(st.size).toBe(8 * mib);
      // Two data extents of the 8 MiB: far less than the whole (tmpfs counts what it holds).
      expect(st.blocks * 512).toBeLessThan(mib);
      const head = Buffer.alloc(10);
      readSync(ram.fd, head, 0, 10, 0);
      expect(head.toString()).toBe("first page");
      const mid = Buffer.alloc(4096);
      readSync(ram.fd, mid, 0, 4096, 5 * mib);
      expect(mid.equals(Buffer.alloc(4096, 0xab))).toBe(true);

      const rw = openSync(`/proc/self/fd/${ram.fd}`, "r+");
      try {
        expect(() => writeSync(rw, Buffer.from("x"), 0, 1, 0)).toThrow(/EPERM/);
        expect(() => ftruncateSync(rw, 0)).toThrow(/EPERM/);
      } finally {
        closeSync(rw);
      }
    } finally {
      ram.close();
      ram.close();
    }
  });

  it("says which snapshot's RAM could not be loaded, with a coded error", () => {
    const err = errorOf(() => sharedRamFrom(join(dir, "absent"), "snapshot 0123456789ab"));
    expect(err).toMatchObject({ code: "ERR_SKIFF_RESTORE_FAILED" });
    expect(err.message).toContain("snapshot 0123456789ab");
    expect(err.message).toContain("ENOENT");
  });
});
