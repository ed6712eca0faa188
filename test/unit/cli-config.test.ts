/** `skiff config` and `skiff config schema` as a user runs them (the built, bundled CLI): YAML by default, JSON with --format json. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { runCli } from "./fixtures/cli.js";

const dir = mkdtempSync(join(tmpdir(), "skiff-cli-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("skiff config", { timeout: 30_000 }, () => {
  it("config schema prints skiff.yml's JSON Schema as YAML, and as JSON with --format json", () => {
    const yaml = runCli(["config", "schema"]);
    expect(yaml).toMatchObject({ code: 0, stderr: "" });
    expect(yaml.stdout).toMatch(/^\$schema: /);
    const json = runCli(["config", "schema", "--format", "json"]);
    expect(json.code).toBe(0);
    expect(parse(yaml.stdout)).toEqual(JSON.parse(json.stdout));
  });

  it("config prints the project as skiff read it, as YAML", () => {
    const file = join(dir, "skiff.yml");
    writeFileSync(file, 'version: "1"\nservices:\n  web:\n    image: base\n    memory: 512m\n');
    const r = runCli(["config", "-f", file]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(parse(r.stdout)).toMatchObject({ files: [file], services: [{ name: "web", image: "base" }] });
  });
});
