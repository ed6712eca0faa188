/**
 * The library's errors name option fields (`memory`, `networks[0].ip`);
 * the CLI prints the flag that fills the field in the command that ran
 * (src/cli/flag-places.ts). Every field the library can put in `place` for
 * an option a CLI command passes on must come out as one of that
 * command's flags or arguments.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { afterAll, describe, expect, it } from "vitest";
import { makeContext } from "../../src/cli/context.js";
import { cliPlace } from "../../src/cli/flag-places.js";
import { buildProgram } from "../../src/cli/program.js";
import { runCli } from "./fixtures/cli.js";

const program = buildProgram(makeContext({ debug: false, json: false }));

function command(path: string): Command {
  let cmd: Command = program;
  for (const name of path.split(" ")) {
    const next = cmd.commands.find((c) => c.name() === name);
    if (next === undefined) throw new Error(`no command ${path}`);
    cmd = next;
  }
  return cmd;
}

/** What a command accepts: its flags (its groups' too) and its arguments as the CLI spells them. */
function accepted(cmd: Command): Set<string> {
  const out = new Set<string>();
  for (let c: Command | null = cmd; c?.parent != null; c = c.parent) {
    for (const o of c.options) for (const f of [o.long, o.short]) if (f !== undefined) out.add(f);
    for (const a of c.registeredArguments) out.add(a.name().toUpperCase());
  }
  return out;
}

const machine = ["image", "name", "memory", "cpus", "env", "networks", "networks[0]", "networks[1].ip", "mounts", "mounts[2]", "network.forwards", "publish", "egress", "restart", "imageUrl", "disk", "userDataPath", "platform", "user", "workingDir", "kernel"];

/** The places the library produces for options each command passes on (grep `place` under src/ outside the front ends). */
const reachable: [command: string, fields: string[]][] = [
  ["run", [...machine, "snapshot", "autoRemove"]],
  ["create", machine],
  ["exec", ["env", "timeout", "user"]],
  ["stop", ["timeout"]],
  ["restart", ["timeout"]],
  ["kill", ["signal"]],
  ["snapshot create", ["name"]],
  ["snapshot gc", ["keep"]],
  ["restore", ["name", "snapshot"]],
  ["snapshot inspect", ["snapshot"]],
  ["snapshot rm", ["snapshot"]],
  ["fork", ["count", "name", "prefix"]],
  ["network create", ["name", "driver", "subnet", "gateway", "masquerade", "internal", "bridgeName"]],
  ["network tcpdump", ["count", "filter"]],
  ["port-forward", ["forward"]],
  ["volume create", ["name", "sizeBytes"]],
  ["image pull", ["ref", "platform"]],
  ["image import", ["name", "platform"]],
  ["image bootstrap", ["mirror"]],
  ["layer build", ["aptMirror"]],
  ["up", ["projectName", "files"]],
  ["compose up", ["projectName", "files"]],
  ["compose logs", ["projectName", "files"]],
  ["mcp", ["projectName"]],
  ["kernel build", ["source"]],
  ["kernel use", ["kernel"]],
  ["kernel rm", ["kernel"]],
];

/** Fields the library names that no CLI flag fills (project files, the API and the SDK only), and ones that are no option. */
// labels: only Skiff.setLabels names it (the API's sandbox deadline); no command changes an existing VM's labels.
// path: AgentConnection's stat/readFile/writeFile (the API's file routes); `skiff cp` names its own arguments.
const noFlag = new Set(["argv", "command", "kernel.args", "layers", "sshUser", "memoryMiB", "options", "init", "labels", "path"]);

describe("fields as the CLI's flags", () => {
  it("maps fields to the flags of the command that ran", () => {
    expect(cliPlace("memory", command("run"))).toBe("--memory");
    expect(cliPlace("projectName", command("up"))).toBe("--project-name");
    expect(cliPlace("keep", command("snapshot gc"))).toBe("--keep");
    expect(cliPlace("bridgeName", command("network create"))).toBe("--bridge-name");
    expect(cliPlace("networks[1].ip", command("run"))).toBe("--ip");
    expect(cliPlace("mounts[0]", command("create"))).toBe("--volume");
    expect(cliPlace("network.forwards", command("run"))).toBe("--publish");
  });

  it("uses the command's own flag where one field has several (name, snapshot, count)", () => {
    expect(cliPlace("name", command("run"))).toBe("--name");
    expect(cliPlace("name", command("network create"))).toBe("NAME");
    expect(cliPlace("snapshot", command("run"))).toBe("--from");
    expect(cliPlace("snapshot", command("restore"))).toBe("SNAPSHOT");
    expect(cliPlace("prefix", command("fork"))).toBe("--name");
    expect(cliPlace("count", command("network tcpdump"))).toBe("--count");
    expect(cliPlace("image", command("run"))).toBe("IMAGE");
    // -f/-p of `skiff compose` serve its verbs.
    expect(cliPlace("files", command("compose logs"))).toBe("--file");
  });

  it("leaves what is no field of the command as it is", () => {
    for (const place of ["skiff.yml:3:5", "--memory", "web", "SKIFF_KERNEL", "/etc/skiff/settings.yml"]) expect(cliPlace(place, command("run"))).toBe(place);
    // A field the command has no flag for: `stop` takes no --memory.
    expect(cliPlace("memory", command("stop"))).toBe("memory");
    expect(cliPlace("networks", command("volume create"))).toBe("networks");
    expect(cliPlace("memory", undefined)).toBe("memory");
  });

  it.each(reachable)("skiff %s: every field the library names is a flag or argument of it", (path, fields) => {
    const cmd = command(path);
    const flags = accepted(cmd);
    const unmapped = fields.map((field) => ({ field, shown: cliPlace(field, cmd) })).filter((f) => !flags.has(f.shown));
    expect(unmapped).toEqual([]);
  });

  it("every field-named place in the library is in that table, or known to have no flag", () => {
    const src = join(import.meta.dirname, "..", "..", "src");
    const frontEnds = new Set(["cli", "project", "server", "api", "mcp", "sdk"]);
    const files = (readdirSync(src, { recursive: true }) as string[]).filter((f) => f.endsWith(".ts") && !frontEnds.has(f.split("/")[0]!));
    const found = new Set<string>();
    for (const file of files) {
      for (const line of readFileSync(join(src, file), "utf8").split("\n")) {
        if (/^\s*(\/\/|\*)/.test(line)) continue;
        // What is given as a place: `place: "keep"`, `place = "memory"`, `place ?? "egress"`, `place: x ? "image" : "imageUrl"` (not a file's placeOf(…)).
        for (const m of line.matchAll(/\bplace\s*(?::|=(?![=>])|\?\?)([^,;})(]*)(?=[,;})]|$)/g)) {
          for (const lit of m[1]!.matchAll(/"([^"]*)"/g)) if (/^[a-z][A-Za-z]*(\.[a-z][A-Za-z]*)*$/.test(lit[1]!)) found.add(lit[1]!);
        }
      }
    }
    const covered = new Set(reachable.flatMap(([, fields]) => fields.map((f) => f.replace(/\[\d+\]/g, ""))));
    expect(found.size).toBeGreaterThan(20);
    expect([...found].filter((f) => !covered.has(f) && !noFlag.has(f)).sort()).toEqual([]);
  });
});

describe("the built CLI prints flags for the library's fields", { timeout: 30_000 }, () => {
  const home = mkdtempSync(join(tmpdir(), "skiff-flag-places-"));
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it("skiff run --memory 1q: (--memory), as text and as JSON", () => {
    const plain = runCli(["run", "--memory", "1q", "base"], { SKIFF_HOME: home });
    expect(plain.code).toBe(2);
    expect(plain.stderr).toMatch(/^skiff: error ERR_SKIFF_BAD_MEMORY \(--memory\): invalid memory size "1q"/);
    const json = runCli(["--json", "run", "--memory", "1q", "base"], { SKIFF_HOME: home });
    expect(JSON.parse(json.stderr)).toMatchObject({ error: { code: "ERR_SKIFF_BAD_MEMORY", place: "--memory" } });
  });

  it("skiff network create --masquerade without the bridge driver: the engine's field shown as the flag", () => {
    const r = runCli(["network", "create", "n1", "--masquerade"], { SKIFF_HOME: home });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("skiff: error ERR_SKIFF_USAGE (--masquerade): masquerade, internal and a bridge name are for the bridge driver\n");
  });
});
