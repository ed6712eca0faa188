/**
 * What starting the built CLI loads (docs/benchmarks.md, "CLI start"):
 * `--version` and `--help` commander and the command table only; `ps` the
 * records, the process table and zod/mini (not zod's classic API), not SSH,
 * images, projects, QEMU's command line, node:child_process or node:net. A
 * resolve hook notes every file Node loads, and process.moduleLoadList
 * Node's own modules, required or imported; the bundle's dist/cli-chunks/modules.json says which modules
 * each of its files holds (without the bundle, the files are the modules).
 */
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VmStore } from "../../src/store/store.js";
import { cliPath } from "./fixtures/cli.js";
import { machineSpec } from "./fixtures/spec.js";

const dist = join(import.meta.dirname, "..", "..", "dist");
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "skiff-cli-start-"));
  writeFileSync(
    join(work, "hooks.mjs"),
    `import { appendFileSync } from "node:fs";
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(process.env.SKIFF_TEST_LOADED, r.url + "\\n");
  return r;
}
`,
  );
  writeFileSync(
    join(work, "register.mjs"),
    `import { appendFileSync } from "node:fs";
import { register } from "node:module";
register("./hooks.mjs", import.meta.url);
process.on("exit", () => {
  const builtins = process.moduleLoadList.filter((m) => m.startsWith("NativeModule ")).map((m) => "node:" + m.slice("NativeModule ".length));
  appendFileSync(process.env.SKIFF_TEST_LOADED, builtins.join("\\n") + "\\n");
});
`,
  );
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * Every module `skiff ARGS` loads: "engine/skiff.js" (skiff's, under dist/),
 * "zod" (a package), "node:net"; and a package's files by their path from
 * node_modules ("node_modules/zod/v4/mini/schemas.js").
 */
function modulesLoaded(args: string[], home = join(work, `home-${args.join("_")}`), run = "1"): Set<string> {
  const out = join(work, `loaded-${args.join("_")}-${run}`);
  // Output to a file: a pipe would be a net.Socket, and load node:net whatever skiff does.
  const log = join(work, `output-${args.join("_")}-${run}`);
  const fd = openSync(log, "w");
  const r = spawnSync(process.execPath, ["--import", join(work, "register.mjs"), cliPath, ...args], {
    stdio: ["ignore", fd, fd],
    env: { ...process.env, SKIFF_HOME: home, SKIFF_TEST_LOADED: out },
  });
  closeSync(fd);
  expect(r.status, readFileSync(log, "utf8")).toBe(0);
  const chunks = join(dist, "cli-chunks", "modules.json");
  const bundle = existsSync(chunks) ? (JSON.parse(readFileSync(chunks, "utf8")) as Record<string, string[]>) : {};
  const modules = new Set<string>();
  const add = (path: string) => {
    const at = path.lastIndexOf("node_modules/");
    if (at < 0) return modules.add(path);
    modules.add(path.slice(at));
    const [scope, name] = path.slice(at + "node_modules/".length).split("/");
    return modules.add(scope!.startsWith("@") ? `${scope}/${name}` : scope!);
  };
  for (const url of new Set(readFileSync(out, "utf8").split("\n").filter((l) => l !== ""))) {
    if (url.startsWith("node:")) modules.add(url);
    else if (url.startsWith("file:")) {
      const path = fileURLToPath(url);
      const inDist = relative(dist, path);
      if (!inDist.startsWith("..")) (bundle[inDist] ?? [inDist]).forEach(add);
      else add(path);
    }
  }
  return modules;
}

const packages = (loaded: Set<string>) => [...loaded].filter((m) => !m.startsWith("node:") && !m.startsWith("node_modules/") && !m.endsWith(".js")).sort();

describe("starting the CLI", { timeout: 30_000 }, () => {
  it("--version and --help load commander and the command table, no other package and no engine", () => {
    for (const args of [["--version"], ["--help"], ["run", "--help"]]) {
      const loaded = modulesLoaded(args);
      expect(packages(loaded), args.join(" ")).toEqual(["commander"]);
      for (const heavy of ["node:child_process", "node:net", "node:dgram", "node:crypto", "node:http", "engine/skiff.js", "store/store.js"]) {
        expect(loaded.has(heavy), `${args.join(" ")} loads ${heavy}`).toBe(false);
      }
      expect(loaded.has("cli/commands/run.js"), "the command table").toBe(true);
    }
  });

  it("ps loads the records (zod/mini) and the process table, not SSH, images, projects, networks' set-up or QEMU's command line", async () => {
    const home = join(work, "home-ps");
    const store = new VmStore({ home });
    for (const name of ["a", "b", "c"]) await store.commit((await store.create(machineSpec(name), { image: { digest: "sha256:abc" } })).id);
    const loaded = modulesLoaded(["ps", "-a"], home);
    expect(packages(loaded)).toEqual(["commander", "zod"]);
    // The records' schemas are zod/mini's: zod's classic API builds its schemas slower (src/store/record-schema.ts).
    const zod = [...loaded].filter((m) => m.startsWith("node_modules/zod/"));
    expect(zod.filter((m) => m.startsWith("node_modules/zod/v4/classic/")), "zod's classic API").toEqual([]);
    expect(zod.filter((m) => m.startsWith("node_modules/zod/v4/mini/")), "zod/mini").not.toEqual([]);
    expect(loaded.has("engine/skiff.js")).toBe(true);
    expect(loaded.has("process/procs.js")).toBe(true);
    for (const heavy of [
      ...["guest/agent.js", "engine/create.js", "engine/launch.js", "engine/images.js", "qemu/args.js", "config/load.js", "project/project.js", "engine/networks.js", "network/store.js"],
      ...["node:child_process", "node:net", "node:dgram", "node:dns/promises", "node:http", "node:zlib"],
    ]) {
      expect(loaded.has(heavy), `ps loads ${heavy}`).toBe(false);
    }
  });

  it("ps of records it has checked before loads no zod, and checks a changed one again", async () => {
    const home = join(work, "home-ps-again");
    const store = new VmStore({ home });
    const vms = [];
    for (const name of ["a", "b", "c"]) {
      vms.push(await store.create(machineSpec(name), { image: { digest: "sha256:abc" } }));
      await store.commit(vms.at(-1)!.id);
    }
    // JSON: the table's CREATED column is an age, which may tick between the two runs.
    const json = ["ps", "-a", "--format", "json"];
    const output = (args: string[], run: string) => readFileSync(join(work, `output-${args.join("_")}-${run}`), "utf8");
    expect(packages(modulesLoaded(json, home, "1"))).toEqual(["commander", "zod"]);
    expect(packages(modulesLoaded(json, home, "2"))).toEqual(["commander"]);
    expect(output(json, "2")).toBe(output(json, "1"));
    expect((JSON.parse(output(json, "2")) as { name: string }[]).map((vm) => vm.name)).toEqual(["a", "b", "c"]);
    // One byte changed: checked again, and found broken.
    const config = JSON.parse(readFileSync(vms[1]!.paths.config, "utf8")) as { spec: { cpus: unknown } };
    config.spec.cpus = "2";
    writeFileSync(vms[1]!.paths.config, JSON.stringify(config));
    expect(packages(modulesLoaded(["ps", "-a"], home, "3"))).toEqual(["commander", "zod"]);
    expect(output(["ps", "-a"], "3")).toMatch(/VM b is broken: config\.json: spec\.cpus: expected a number, got a string/);
  });
});
