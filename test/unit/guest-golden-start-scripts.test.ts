/**
 * Golden tests of start scripts: the files a layer build writes into the
 * image's /etc/skiff/start.d (src/layer/build.ts, startScriptPath), listed
 * by init's own scan (guest/start-scripts.c) compiled on the host. Init
 * must start every one, in the layers' order.
 */
import { chmodSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkStartOrder, maxStartLayers, startScriptPath } from "../../src/layer/build.js";
import { GoldenHarness } from "./fixtures/guest-golden.js";

let harness: GoldenHarness;
beforeAll(() => {
  harness = GoldenHarness.build();
});
afterAll(() => harness.close());

/** An image's start.d after a build of `layers` (each with a start script), as the build writes it. */
function startDir(layers: readonly string[]): string {
  const dir = mkdtempSync(join(harness.dir, "start.d-"));
  layers.forEach((name, i) => {
    const file = join(dir, posix.basename(startScriptPath(i + 1, name)));
    writeFileSync(file, `#!/bin/sh\n# start script of layer ${name} (skiff)\nexec true\n`);
    chmodSync(file, 0o755);
  });
  return dir;
}

const many = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i));

describe("start.d: layer builds → init's scan", () => {
  it.each([
    ["one layer", ["redis"]],
    ["layers whose names sort against their order", ["zeta", "alpha", "mid"]],
    ["names with dots, dashes, digits and unicode", ["my-app.v2", "9lives", "ünïcødé", "a_b"]],
    ["99 layers, the most two digits number", many(99, (i) => `layer${99 - i}`)],
  ])("%s: every script, in the layers' order", (_what, layers) => {
    const dir = startDir(layers);
    const out = harness.startScripts(dir);
    expect(out.stderr).toBe("");
    expect(out.parsed).toEqual(layers.map((name, i) => posix.basename(startScriptPath(i + 1, name))));
  });

  it("passes over what is no script: hidden, not executable, a directory, a symlink", () => {
    const dir = startDir(["web"]);
    writeFileSync(join(dir, ".hidden"), "#!/bin/sh\n", { mode: 0o755 });
    writeFileSync(join(dir, "05-notes"), "not a script\n", { mode: 0o644 });
    mkdirSync(join(dir, "06-dir"));
    symlinkSync("01-web", join(dir, "07-link"));
    expect(harness.startScripts(dir).parsed).toEqual(["01-web"]);
  });

  it("has none without the directory", () => {
    expect(harness.startScripts(join(harness.dir, "missing")).parsed).toEqual([]);
  });
});

describe("start.d: what the host refuses", () => {
  it("a start script after the 99th layer, which init would run out of order", () => {
    const names = many(100, (i) => `l${i + 1}`);
    // What init would do with it: 100-… runs between 10-… and 11-….
    expect(harness.startScripts(startDir(names)).parsed?.slice(9, 12)).toEqual(["10-l10", "100-l100", "11-l11"]);
    const layers = names.map((name) => ({ name, start: "exec true" }));
    expect(() => checkStartOrder(layers.slice(0, maxStartLayers))).not.toThrow();
    expect(() => checkStartOrder([...layers.slice(0, maxStartLayers).map((l) => ({ name: l.name })), { name: "late", start: undefined }])).not.toThrow();
    expect(() => checkStartOrder(layers)).toThrow(expect.objectContaining({ code: "ERR_SKIFF_USAGE", place: "layers", hint: expect.stringMatching(/first 99/) }));
  });
});
