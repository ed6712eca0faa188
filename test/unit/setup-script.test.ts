import { execFileSync, spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../", import.meta.url));

describe("setup.sh and .ci/run", () => {
  for (const script of ["setup.sh", ".ci/run"]) {
    it(`${script} is valid bash and executable`, () => {
      const result = spawnSync("bash", ["-n", script], { cwd: root, encoding: "utf8" });
      expect(result.stderr).toBe("");
      expect(result.status).toBe(0);
      expect(() => accessSync(`${root}${script}`, constants.X_OK)).not.toThrow();
    });
  }

  it("setup.sh --help works and an unknown flag is a usage error", () => {
    expect(execFileSync("./setup.sh", ["--help"], { cwd: root, encoding: "utf8" })).toContain("--quiet");
    const bad = spawnSync("./setup.sh", ["--bogus"], { cwd: root, encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("unknown argument: --bogus");
  });
});
