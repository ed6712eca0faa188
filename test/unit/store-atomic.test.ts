import { spawnSync } from "node:child_process";
import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readJson, readJsonIfExists, removeAbandonedTemps, writeJsonAtomic } from "../../src/store/atomic.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ home: dir, cleanup } = await makeTempHome());
});
afterAll(() => cleanup());

describe("atomic JSON", () => {
  it("writes, replaces and reads back, leaving no temp file", async () => {
    const path = join(dir, "a.json");
    await writeJsonAtomic(path, { n: 1 });
    await writeJsonAtomic(path, { n: 2, s: "x" });
    expect(await readJson(path)).toEqual({ n: 2, s: "x" });
    expect(await readdir(dir)).toEqual(["a.json"]);
  });

  it("applies the requested mode", async () => {
    const path = join(dir, "secret.json");
    await writeJsonAtomic(path, {}, { mode: 0o600 });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it("reports a missing file as not found, or undefined if asked", async () => {
    await expect(readJson(join(dir, "none.json"))).rejects.toMatchObject({ code: "ERR_SKIFF_FILE_NOT_FOUND" });
    expect(await readJsonIfExists(join(dir, "none.json"))).toBeUndefined();
  });

  it("names a corrupt file instead of throwing a bare SyntaxError", async () => {
    const path = join(dir, "bad.json");
    await writeFile(path, '{"half":');
    await expect(readJson(path)).rejects.toMatchObject({
      code: "ERR_SKIFF_STATE_CORRUPT",
      message: expect.stringContaining(path),
    });
  });

  it("fails cleanly when the directory does not exist", async () => {
    await expect(writeJsonAtomic(join(dir, "no", "x.json"), {})).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("removes the temp files of writers that died, and only those", async () => {
    const sub = join(dir, "temps");
    await mkdir(sub);
    const dead = spawnSync("true").pid!;
    await writeFile(join(sub, `.net.json.tmp-${dead}-0a1b2c3d`), "{");
    await writeFile(join(sub, `.mine.json.tmp-${process.pid}-0a1b2c3d`), "{");
    await writeFile(join(sub, "net.json"), "{}");
    await writeFile(join(sub, `.other.tmp-${dead}`), "");
    expect(await removeAbandonedTemps(sub)).toEqual([join(sub, `.net.json.tmp-${dead}-0a1b2c3d`)]);
    expect((await readdir(sub)).sort()).toEqual([`.mine.json.tmp-${process.pid}-0a1b2c3d`, `.other.tmp-${dead}`, "net.json"]);
  });
});
