import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { composeOverrideNames, discoverProjectFile, discoverProjectFiles, formatOfFile, projectFileNames } from "../../src/config/discover.js";
import { rejectionOf } from "./fixtures/errors.js";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), "skiff-discover-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function touch(...parts: string[]): Promise<string> {
  const file = path.join(root, ...parts);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, "services: {}\n");
  return file;
}

describe("discoverProjectFile", () => {
  it("finds the file in cwd", async () => {
    const file = await touch("skiff.yml");
    expect(await discoverProjectFile(root)).toEqual({ path: file, format: "skiff" });
  });

  it("searches upward from cwd, and the nearest directory wins", async () => {
    await touch("compose.yaml");
    const near = await touch("a", "pontoon.yml");
    await mkdir(path.join(root, "a", "b", "c"), { recursive: true });
    expect(await discoverProjectFile(path.join(root, "a", "b", "c"))).toEqual({ path: near, format: "pontoon" });
    expect(await discoverProjectFile(root)).toEqual({ path: path.join(root, "compose.yaml"), format: "compose" });
  });

  it("takes the names in priority order within one directory", async () => {
    // Create them lowest priority first, checking each time that the newest one wins.
    for (const [name, format] of [...projectFileNames].reverse()) {
      const file = await touch("p", name);
      expect(await discoverProjectFile(path.join(root, "p"))).toEqual({ path: file, format });
    }
  });

  it("ignores a directory with a project file's name", async () => {
    await mkdir(path.join(root, "skiff.yml"));
    const file = await touch("docker-compose.yml");
    expect((await discoverProjectFile(root)).path).toBe(file);
  });

  it("says ERR_SKIFF_PROJECT_NOT_FOUND with the names, and that files can be named, when there is none", async () => {
    // Assumes no project file in tmpdir() or above it (true on a normal host: /tmp, /).
    const err = await rejectionOf(discoverProjectFile(root));
    expect(err.code).toBe("ERR_SKIFF_PROJECT_NOT_FOUND");
    expect(err.hint).toContain("skiff.yml");
    expect(err.hint).toContain("docker-compose.yml");
    expect(err.hint).toContain("name the project's files");
  });
});

describe("discoverProjectFiles", () => {
  it("adds the first compose override file next to a compose file, in compose-go's order", async () => {
    const main = await touch("docker-compose.yml");
    expect(await discoverProjectFiles(root)).toEqual([{ path: main, format: "compose" }]);
    // Create them lowest priority first, checking each time that the newest one wins.
    for (const name of [...composeOverrideNames].reverse()) {
      const override = await touch(name);
      expect(await discoverProjectFiles(root)).toEqual([{ path: main, format: "compose" }, { path: override, format: "compose" }]);
    }
  });

  it("reads no override file for the other formats, nor a directory of that name", async () => {
    await mkdir(path.join(root, "compose.override.yml"));
    const compose = await touch("compose.yaml");
    expect(await discoverProjectFiles(root)).toEqual([{ path: compose, format: "compose" }]);
    const skiff = await touch("skiff.yml");
    expect(await discoverProjectFiles(root)).toEqual([{ path: skiff, format: "skiff" }]);
  });
});

describe("formatOfFile", () => {
  it.each([
    ["VMFile.kdl", "vmfile"],
    ["other.kdl", "vmfile"],
    ["docker-compose.prod.yml", "compose"],
    ["compose.override.yaml", "compose"],
    ["pontoon.yml", "pontoon"],
    ["skiff.yml", "skiff"],
    ["staging.yml", "skiff"],
  ])("%s is %s", (file, format) => expect(formatOfFile(`/x/${file}`)).toBe(format));
});
