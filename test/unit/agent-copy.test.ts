/**
 * copyTo/copyFrom against the fake guest, whose busybox is the host's own:
 * "guest" paths here are host paths, so both ends can be inspected.
 */
import { execFileSync } from "node:child_process";
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { connectAgent, type AgentConnection } from "../../src/guest/agent.js";
import { FakeGuest, skiffFailure } from "./fixtures/agent-fake-guest.js";

let root: string;
let guest: FakeGuest;
let conn: AgentConnection;
let src: string;
let dest: string;
let n = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "skiff-copy-"));
  guest = await FakeGuest.start({ dir: join(root, "vm") });
  conn = await connectAgent({
    socketPaths: guest.socketPaths,
    lockPrefix: "vm-copy",
    home: root,
    privateKeyPath: guest.privateKeyPath,
    hostPublicKey: guest.hostPublicKey,
    vmName: "copy",
  });
  src = join(root, "src");
  await mkdir(join(src, "tree", "sub"), { recursive: true });
  await writeFile(join(src, "run.sh"), "#!/bin/sh\necho hi\n");
  await chmod(join(src, "run.sh"), 0o751);
  await writeFile(join(src, "-odd name"), "odd\n");
  await writeFile(join(src, "tree", "a"), "a\n");
  await chmod(join(src, "tree", "a"), 0o640);
  await writeFile(join(src, "tree", "sub", "b"), "b\n");
  await chmod(join(src, "tree", "sub"), 0o700);
  await symlink("a", join(src, "tree", "link"));
});
afterAll(async () => {
  await conn.close();
  await guest.close();
  await rm(root, { recursive: true, force: true });
});
beforeEach(async () => {
  dest = join(root, `dest${n++}`);
  await mkdir(dest);
});

async function modeOf(path: string): Promise<string> {
  return ((await stat(path)).mode & 0o7777).toString(8);
}


describe.each([
  ["copyTo", (from: string, to: string) => conn.copyTo(from, to)],
  ["copyFrom", (from: string, to: string) => conn.copyFrom(from, to)],
] as const)("%s", (_name, copy) => {
  it("puts a file inside an existing directory, keeping its mode", async () => {
    await copy(join(src, "run.sh"), dest);
    expect(await readFile(join(dest, "run.sh"), "utf8")).toBe("#!/bin/sh\necho hi\n");
    expect(await modeOf(join(dest, "run.sh"))).toBe("751");
  });

  it("creates a file under a new name, and overwrites an existing file", async () => {
    await copy(join(src, "run.sh"), join(dest, "renamed"));
    await copy(join(src, "-odd name"), join(dest, "renamed"));
    expect(await readFile(join(dest, "renamed"), "utf8")).toBe("odd\n");
    expect(await readdir(dest)).toEqual(["renamed"]); // no staging left behind
  });

  it("copies a directory inside an existing one, or under a new name, and merges into an existing copy", async () => {
    await copy(join(src, "tree"), dest);
    await copy(join(src, "tree"), join(dest, "other"));
    await writeFile(join(dest, "tree", "extra"), "kept\n");
    await copy(join(src, "tree"), dest);
    for (const dir of ["tree", "other"]) {
      expect((await readdir(join(dest, dir))).sort()).toEqual(dir === "tree" ? ["a", "extra", "link", "sub"] : ["a", "link", "sub"]);
      expect(await readFile(join(dest, dir, "sub", "b"), "utf8")).toBe("b\n");
      expect(await modeOf(join(dest, dir, "a"))).toBe("640");
      expect(await modeOf(join(dest, dir, "sub"))).toBe("700");
    }
  });

  it("needs the destination's parent to exist", async () => {
    const err = await skiffFailure(copy(join(src, "run.sh"), join(dest, "missing", "x")));
    expect(err.code).toBe("ERR_SKIFF_FILE_NOT_FOUND");
    expect(err.message).toContain(join(dest, "missing"));
  });

  it("refuses a directory onto a file and a file onto a directory", async () => {
    await writeFile(join(dest, "file"), "x");
    expect((await skiffFailure(copy(join(src, "tree"), join(dest, "file")))).code).toBe("ERR_SKIFF_BAD_PATH");
    await mkdir(join(dest, "run.sh"));
    await mkdir(join(dest, "box"));
    // "box" exists, so the file goes inside it; "box/run.sh" would be a directory.
    await mkdir(join(dest, "box", "run.sh"));
    expect((await skiffFailure(copy(join(src, "run.sh"), join(dest, "box")))).code).toBe("ERR_SKIFF_BAD_PATH");
  });
});

describe("copy errors name the missing side", () => {
  it("a missing host source", async () => {
    const err = await skiffFailure(conn.copyTo(join(src, "nope"), dest));
    expect(err.code).toBe("ERR_SKIFF_FILE_NOT_FOUND");
    expect(err.message).toBe(`no such file or directory on the host: ${join(src, "nope")}`);
  });

  it("a missing guest source", async () => {
    const err = await skiffFailure(conn.copyFrom("/nonexistent/thing", dest));
    expect(err.code).toBe("ERR_SKIFF_FILE_NOT_FOUND");
    expect(err.message).toBe("no such file or directory in VM copy: /nonexistent/thing");
  });

  it("a file copied to a directory path that does not exist", async () => {
    expect((await skiffFailure(conn.copyTo(join(src, "run.sh"), `${join(dest, "nodir")}/`))).code).toBe("ERR_SKIFF_FILE_NOT_FOUND");
    expect((await skiffFailure(conn.copyFrom(join(src, "run.sh"), `${join(dest, "nodir")}/`))).code).toBe("ERR_SKIFF_FILE_NOT_FOUND");
  });
});

describe("copyFrom unpacks the guest's archive as untrusted data", () => {
  let special: string;

  beforeAll(async () => {
    // What a guest's root can make: setuid-root files, device nodes, fifos (the suite runs as root).
    special = join(root, "special");
    await mkdir(special);
    await writeFile(join(special, "suid"), "#!/bin/sh\n");
    await chown(join(special, "suid"), 1234, 1234); // before chmod: chown clears setuid
    await chmod(join(special, "suid"), 0o4755);
    execFileSync("mknod", ["-m", "666", join(special, "null"), "c", "1", "3"]);
    execFileSync("mkfifo", ["-m", "600", join(special, "pipe")]);
  });

  it("clears setuid bits, skips device nodes and fifos, and gives the files to the caller", async () => {
    const report = await conn.copyFrom(special, dest);
    expect(report).toEqual({ skipped: { devices: 1, fifos: 1, other: 0 }, setidCleared: 1 });
    expect(await readdir(join(dest, "special"))).toEqual(["suid"]);
    const suid = await stat(join(dest, "special", "suid"));
    expect(suid.mode & 0o7777).toBe(0o755);
    expect(suid.uid).toBe(process.getuid!());
  });

  it("-a keeps owners, setuid bits, device nodes and fifos", async () => {
    const report = await conn.copyFrom(special, dest, { archive: true });
    expect(report).toEqual({ skipped: { devices: 0, fifos: 0, other: 0 }, setidCleared: 0 });
    const suid = await lstat(join(dest, "special", "suid"));
    expect(suid.mode & 0o7777).toBe(0o4755);
    expect(suid.uid).toBe(1234);
    expect((await lstat(join(dest, "special", "null"))).isCharacterDevice()).toBe(true);
    expect((await lstat(join(dest, "special", "pipe"))).isFIFO()).toBe(true);
  });

  it("a file copy leaves no staging directory and no journal entry behind", async () => {
    await conn.copyFrom(join(special, "suid"), join(dest, "renamed"));
    expect(await readdir(dest)).toEqual(["renamed"]);
    expect(await readdir(join(root, "cp-staging"))).toEqual([]);
  });
});

describe("copyTo", () => {
  it("-a keeps the host file's owner and setuid bit", async () => {
    const file = join(root, "owned");
    await writeFile(file, "x");
    await chown(file, 2345, 3456);
    await chmod(file, 0o4750);
    await conn.copyTo(file, dest, { archive: true });
    expect(await lstat(join(dest, "owned"))).toMatchObject({ uid: 2345, gid: 3456 });
    expect(await modeOf(join(dest, "owned"))).toBe("4750");
    await conn.copyTo(file, join(dest, "as-root"));
    expect(await lstat(join(dest, "as-root"))).toMatchObject({ uid: 0, gid: 0 });
  });

  it("removes temporary directories of killed copies whose shell is gone, and only those", async () => {
    // A dead shell's (a pid above pid_max never lives) and a live one's (pid 1).
    await mkdir(join(dest, ".skiff-cp.99999999.AbCdEf"));
    await mkdir(join(dest, ".skiff-cp.1.GhIjKl"));
    await conn.copyTo(join(src, "run.sh"), dest);
    expect((await readdir(dest)).sort()).toEqual([".skiff-cp.1.GhIjKl", "run.sh"]);
  });
});
