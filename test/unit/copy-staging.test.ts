/**
 * The journal of cp's staging directories: a live copy's stays, a dead
 * process's goes with the next sweep, and nothing but a staging directory
 * is ever removed. (A really killed `skiff cp`: test/e2e/security-cp.test.ts.)
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeStaging, sweepStaging } from "../../src/guest/copy/staging.js";
import { processStartTime } from "../../src/process/pid.js";

let home: string;
let parent: string;

beforeAll(async () => {
  const root = await mkdtemp(join(tmpdir(), "skiff-staging-"));
  home = join(root, "home");
  parent = join(root, "dest");
  mkdirSync(parent);
});
afterAll(async () => {
  await rm(join(home, ".."), { recursive: true, force: true });
});

/** A journal entry as a process that has since died left it (the pid of a child that exited). */
function deadEntry(path: string): string {
  const child = spawnSync("true");
  const name = `${child.pid}-${processStartTime(process.pid)}-deadbeef0000`;
  writeFileSync(join(home, "cp-staging", name), path);
  return name;
}

describe("cp staging", () => {
  it("is journaled while it exists, and discard removes both", async () => {
    const staging = await makeStaging(home, parent);
    expect(staging.path.startsWith(join(parent, ".skiff-cp-"))).toBe(true);
    expect(readdirSync(join(home, "cp-staging"))).toHaveLength(1);
    // A live copy's staging survives a sweep.
    expect(await sweepStaging(home)).toEqual([]);
    expect(existsSync(staging.path)).toBe(true);
    await staging.discard();
    expect(existsSync(staging.path)).toBe(false);
    expect(readdirSync(join(home, "cp-staging"))).toEqual([]);
  });

  it("a dead process's staging is swept, whatever it holds", async () => {
    const left = join(parent, ".skiff-cp-1-abc");
    mkdirSync(join(left, "dir", "deeper"), { recursive: true });
    writeFileSync(join(left, "dir", "file"), "half a copy");
    deadEntry(left);
    expect(await sweepStaging(home)).toEqual([left]);
    expect(readdirSync(parent)).toEqual([]);
    expect(readdirSync(join(home, "cp-staging"))).toEqual([]);
  });

  it("removes nothing that is not named like a staging directory", async () => {
    const precious = join(parent, "precious");
    mkdirSync(precious);
    deadEntry(precious);
    deadEntry("");
    expect(await sweepStaging(home)).toEqual([]);
    expect(existsSync(precious)).toBe(true);
    expect(readdirSync(join(home, "cp-staging"))).toEqual([]);
  });

  it("without a journal there is nothing to do", async () => {
    expect(await sweepStaging(join(home, "elsewhere"))).toEqual([]);
  });
});
