import { chmod, chown, lstat, mkdir, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { lockFileNames, lockPath, removeLockFiles, tryLock } from "../../src/store/lock.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

// Each test gets a fresh directory: the lock module checks a home once per process.
let base: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ home: base, cleanup } = await makeTempHome());
});
afterEach(() => cleanup());

const modeOf = async (path: string) => (await stat(path)).mode & 0o7777;

describe("the locks directory", () => {
  it("makes a missing home 0700, and its locks directory 0700", async () => {
    const home = join(base, "a", "home");
    const lock = await tryLock("names", { home });
    await lock!.release();
    expect(await modeOf(join(base, "a"))).toBe(0o700);
    expect(await modeOf(home)).toBe(0o700);
    expect(await modeOf(join(home, "locks"))).toBe(0o700);
    expect(await modeOf(lockPath(home, "names"))).toBe(0o600);
  });

  it("leaves a home others may read alone, and tightens a looser locks directory", async () => {
    await chmod(base, 0o755);
    await mkdir(join(base, "locks"), { mode: 0o755 });
    await chmod(join(base, "locks"), 0o777);
    const lock = await tryLock("names", { home: base });
    await lock!.release();
    expect(await modeOf(base)).toBe(0o755);
    expect(await modeOf(join(base, "locks"))).toBe(0o700);
  });

  for (const [mode, who] of [
    [0o770, "group"],
    [0o1777, "group and others"],
  ] as const) {
    it(`refuses a home writable by ${who}, and leaves its mode`, async () => {
      await chmod(base, mode);
      await expect(tryLock("names", { home: base })).rejects.toMatchObject({
        code: "ERR_SKIFF_UNSAFE_HOME",
        message: expect.stringContaining(`writable by ${who}`),
        hint: expect.stringContaining(`chmod go-w ${base}`),
      });
      expect(await modeOf(base)).toBe(mode);
    });
  }

  it("refuses a home that belongs to another user", async () => {
    await chown(base, 65534, 65534);
    await expect(tryLock("names", { home: base })).rejects.toMatchObject({
      code: "ERR_SKIFF_UNSAFE_HOME",
      message: expect.stringContaining("belongs to uid 65534"),
    });
  });

  it("refuses a locks directory that is a symlink or another user's", async () => {
    const elsewhere = join(base, "elsewhere");
    await mkdir(elsewhere, { mode: 0o700 });
    const home = join(base, "h1");
    await mkdir(home, { mode: 0o700 });
    await symlink(elsewhere, join(home, "locks"));
    await expect(tryLock("names", { home })).rejects.toMatchObject({ code: "ERR_SKIFF_UNSAFE_HOME", message: expect.stringContaining("not a directory") });

    const other = join(base, "h2");
    await mkdir(join(other, "locks"), { recursive: true, mode: 0o700 });
    await chown(join(other, "locks"), 65534, 65534);
    await expect(tryLock("names", { home: other })).rejects.toMatchObject({ code: "ERR_SKIFF_UNSAFE_HOME", message: expect.stringContaining("uid 65534") });
  });

  it("refuses a lock file that another user owns", async () => {
    await mkdir(join(base, "locks"), { mode: 0o700 });
    await writeFile(lockPath(base, "names"), "");
    await chown(lockPath(base, "names"), 65534, 65534);
    await expect(tryLock("names", { home: base })).rejects.toMatchObject({ code: "ERR_SKIFF_UNSAFE_HOME", message: expect.stringContaining("lock file") });
  });

  it("finds the home again after it was removed and made anew", async () => {
    const home = join(base, "again");
    await (await tryLock("names", { home }))!.release();
    await cleanup();
    await mkdir(base, { mode: 0o700 });
    const lock = await tryLock("names", { home });
    expect(lock).toBeDefined();
    await lock!.release();
    expect((await lstat(join(home, "locks"))).isDirectory()).toBe(true);
  });
});

describe("removeLockFiles", () => {
  it("deletes the files of free locks only, and the names come back on use", async () => {
    const held = await tryLock("held", { home: base });
    await (await tryLock("free", { home: base }))!.release();
    expect((await lockFileNames(base)).sort()).toEqual(["free", "held"]);

    expect(removeLockFiles(["free", "held", "never"], { home: base })).toEqual(["free"]);
    expect(await lockFileNames(base)).toEqual(["held"]);
    // The holder still holds: a new file of its name must not hand the lock out again.
    expect(await tryLock("held", { home: base })).toBeUndefined();
    await held!.release();

    const again = await tryLock("free", { home: base });
    expect(again).toBeDefined();
    expect(await tryLock("free", { home: base })).toBeUndefined();
    await again!.release();
  });
});
