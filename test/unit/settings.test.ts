/** The user settings file: where it is, what it may say (errors at file:line:column), and that flags win over it. */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { mirrorHosts } from "../../src/image/registry/pull.js";
import { insecureRegistriesEnv, registryMirrorsEnv, loadSettings, settingsPath, settingsTemplate, withSettings } from "../../src/cli/settings.js";
import { parseSettings } from "../../src/cli/settings-schema.js";
import { checkFromSnapshotFlags, createOptionsFrom } from "../../src/cli/machine-options.js";
import type { MachineFlags } from "../../src/cli/spec-flags.js";
import { skiffPaths } from "../../src/store/paths.js";
import { spawnSync } from "node:child_process";
import { chmod, mkdir } from "node:fs/promises";
import { cliPath, runCli } from "./fixtures/cli.js";
import { errorOf } from "./fixtures/errors.js";

const noFlags: MachineFlags = { env: [], network: [], dns: [], publish: [], volume: [], egress: [] };

describe("settings file", () => {
  it("lives under XDG_CONFIG_HOME, else ~/.config; a relative XDG_CONFIG_HOME is ignored", () => {
    expect(settingsPath({ XDG_CONFIG_HOME: "/cfg" }, "/home/u")).toBe("/cfg/skiff/config.yml");
    expect(settingsPath({}, "/home/u")).toBe("/home/u/.config/skiff/config.yml");
    expect(settingsPath({ XDG_CONFIG_HOME: "rel" }, "/home/u")).toBe("/home/u/.config/skiff/config.yml");
  });

  it("reads every setting; the template written by init sets nothing", async () => {
    const text = "memory: 512m\ncpus: 2\nnetwork: none\nregistry-mirrors: [https://mirror.gcr.io]\ninsecure-registries:\n  - registry.lan:5000\n";
    expect(parseSettings(text, "c.yml")).toEqual({
      memory: "512m",
      cpus: 2,
      network: ["none"],
      "registry-mirrors": ["https://mirror.gcr.io"],
      "insecure-registries": ["registry.lan:5000"],
    });
    expect(parseSettings(settingsTemplate, "c.yml")).toEqual({});
    expect(await loadSettings("/nonexistent/skiff/config.yml")).toEqual({});
  });

  it.each([
    ["memory: 512m\nmemroy: 1g\n", "ERR_SKIFF_CONFIG", "c.yml:2:1"],
    ["cpus: two\n", "ERR_SKIFF_CONFIG", "c.yml:1:7"],
    ["memory: lots\n", "ERR_SKIFF_BAD_MEMORY", "c.yml:1:9"],
    ["cpus: 1000\n", "ERR_SKIFF_BAD_CPUS", "c.yml:1:7"],
    ["memory: [1\n", "ERR_SKIFF_CONFIG", "c.yml:2:1"],
  ])("refuses %j with its place", (text, code, place) => {
    expect(() => parseSettings(text, "c.yml")).toThrow(expect.objectContaining({ code, place }));
  });

  it("fills --memory, --cpus and --network only where the command line gave none", () => {
    const settings = { memory: "512m", cpus: 2, network: ["none"] };
    expect(createOptionsFrom("alpine", [], noFlags, settings)).toMatchObject({ memoryMiB: 512, cpus: 2, network: { mode: "none" } });
    const given = createOptionsFrom("alpine", [], { ...noFlags, memory: "1g", cpus: "1", network: ["user"] }, settings);
    expect(given).toMatchObject({ memoryMiB: 1024, cpus: 1, network: { mode: "user" } });
    expect(withSettings(noFlags, {})).toEqual(noFlags);
  });

  it("adds its insecure registries to SKIFF_INSECURE_REGISTRIES", () => {
    expect(insecureRegistriesEnv({ "insecure-registries": ["a:5000", "b"] }, { SKIFF_INSECURE_REGISTRIES: "c" })).toBe("c,a:5000,b");
    expect(insecureRegistriesEnv({ "insecure-registries": ["a:5000"] }, {})).toBe("a:5000");
    expect(insecureRegistriesEnv({}, {})).toBeUndefined();
  });

  it("run as another user under a HOME it cannot enter (setpriv, sudo -u), there are no settings, not an error", async () => {
    const dir = await mkdtemp(join(tmpdir(), "skiff-settings-"));
    try {
      await mkdir(join(dir, "cfg", "skiff"), { recursive: true });
      await writeFile(join(dir, "cfg", "skiff", "config.yml"), "cpus: 2\n");
      await chmod(dir, 0o700);
      const env = { ...process.env, XDG_CONFIG_HOME: join(dir, "cfg") };
      const r = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, cliPath, "settings", "show"], { env, encoding: "utf8" });
      expect(r.stderr).toBe("");
      expect(r.stdout).toContain("(nothing set");
      // Its owner still reads it.
      expect(runCli(["settings", "show"], { XDG_CONFIG_HOME: join(dir, "cfg") }).stdout).toContain("cpus: 2");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("adds its registry mirrors after SKIFF_REGISTRY_MIRRORS's; mirrors are http(s) hosts", () => {
    expect(registryMirrorsEnv({ "registry-mirrors": ["https://m1", "http://m2:5000"] }, { SKIFF_REGISTRY_MIRRORS: "https://m0" })).toBe("https://m0,https://m1,http://m2:5000");
    expect(registryMirrorsEnv({}, {})).toBeUndefined();
    expect(mirrorHosts(["https://mirror.gcr.io", "http://10.0.0.5:5000/", " mirror.lan ", ""])).toEqual([
      { host: "mirror.gcr.io", insecure: false },
      { host: "10.0.0.5:5000", insecure: true },
      { host: "mirror.lan", insecure: false },
    ]);
    expect(() => mirrorHosts(["ftp://m"])).toThrow(/must be http\(s\):\/\/HOST/);
    expect(() => mirrorHosts(["https://m/some/path"])).toThrow(/must be http\(s\):\/\/HOST/);
  });

  it("skiff settings init writes the template once; show prints it and its errors", { timeout: 30_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), "skiff-settings-"));
    try {
      const env = { XDG_CONFIG_HOME: dir };
      const file = join(dir, "skiff", "config.yml");
      expect(runCli(["settings", "init"], env)).toMatchObject({ code: 0, stdout: `${file}\n` });
      expect(await readFile(file, "utf8")).toBe(settingsTemplate);
      expect(runCli(["settings", "init"], env)).toMatchObject({ code: 2, stderr: expect.stringContaining("ERR_SKIFF_USAGE") });
      await writeFile(file, "cpus: 2\nnetwork: none\n");
      expect(runCli(["settings", "show"], env)).toMatchObject({ code: 0, stdout: `# ${file}\ncpus: 2\nnetwork: none\n` });
      await writeFile(file, "cpus: 2\ncpu: 4\n");
      const bad = runCli(["--json", "settings", "show"], env);
      expect(bad.code).toBe(2);
      expect(JSON.parse(bad.stderr).error).toMatchObject({ code: "ERR_SKIFF_CONFIG", place: `${file}:2:1` });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("cache directory", () => {
  it("is under XDG_CACHE_HOME (else ~/.cache) for a user, in the home for root or an explicit SKIFF_HOME", () => {
    expect(skiffPaths({ env: { XDG_CACHE_HOME: "/xc" }, uid: 1000, userHome: "/home/u" }).cache).toBe("/xc/skiff");
    expect(skiffPaths({ env: {}, uid: 1000, userHome: "/home/u" }).cache).toBe("/home/u/.cache/skiff");
    expect(skiffPaths({ env: { XDG_CACHE_HOME: "rel" }, uid: 1000, userHome: "/home/u" }).cache).toBe("/home/u/.cache/skiff");
    expect(skiffPaths({ env: { XDG_CACHE_HOME: "/xc" }, uid: 0 }).cache).toBe("/var/lib/skiff/cache");
    expect(skiffPaths({ env: { SKIFF_HOME: "/h", XDG_CACHE_HOME: "/xc" }, uid: 1000 }).cache).toBe("/h/cache");
    expect(skiffPaths({ env: { SKIFF_CACHE: "/c" }, uid: 1000, userHome: "/home/u" }).cache).toBe("/c");
  });
});

describe("run --from", () => {
  it("refuses a machine flag, naming it, rather than ignoring it", () => {
    for (const [flags, flag] of [
      [{ memory: "1g" }, "--memory"],
      [{ cpus: "2" }, "--cpus"],
      [{ env: ["A=1"] }, "--env"],
      [{ volume: ["data:/data"] }, "--volume"],
      [{ network: ["lan"] }, "--network"],
      [{ cold: true }, "--cold"],
    ] as const) {
      const err = errorOf(() => checkFromSnapshotFlags({ ...noFlags, ...flags }));
      expect(err).toMatchObject({ code: "ERR_SKIFF_USAGE", place: flag });
      expect(err.message).toBe(`run --from cannot take ${flag}: a VM restored from a snapshot is the snapshot's machine`);
      expect(err.hint).toContain("skiff snapshot inspect");
    }
  });

  it("takes what a restore uses: a name, published ports, --rm", () => {
    expect(() => checkFromSnapshotFlags({ ...noFlags, name: "r", publish: ["8080:80"], rm: true })).not.toThrow();
  });
});
