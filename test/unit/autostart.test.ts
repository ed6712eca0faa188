import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { disableAutostart, enableAutostart, listAutostart, unitName, unitText } from "../../src/engine/autostart.js";
import { defaultRunner } from "../../src/process/runner.js";

const cli = join(import.meta.dirname, "..", "..", "dist", "cli", "main.js");

describe("autostart units", () => {
  let dir: string;
  const saved = process.env.SKIFF_SYSTEMD_UNIT_DIR;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "skiff-units-"));
    process.env.SKIFF_SYSTEMD_UNIT_DIR = dir;
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    if (saved === undefined) delete process.env.SKIFF_SYSTEMD_UNIT_DIR;
    else process.env.SKIFF_SYSTEMD_UNIT_DIR = saved;
  });

  it("starts a VM by name after the network, with skiff's home, and stops it at shutdown", () => {
    expect(unitText({ home: "/var/lib/skiff", node: "/usr/bin/node", cli: "/opt/skiff/dist/cli/main.js", target: { kind: "vm", name: "web" }, user: false })).toBe(
      [
        "# Written by skiff autostart; remove with `skiff autostart disable web`.",
        "[Unit]",
        "Description=skiff VM web",
        "After=network-online.target nftables.service",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        'Environment="SKIFF_HOME=/var/lib/skiff"',
        'ExecStart="/usr/bin/node" "/opt/skiff/dist/cli/main.js" "start" "web"',
        'ExecStop="/usr/bin/node" "/opt/skiff/dist/cli/main.js" "stop" "web"',
        "TimeoutStartSec=900",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
      ].join("\n"),
    );
  });

  it("brings a project up in its directory with its files, quoting what systemd would expand", () => {
    const text = unitText({ home: "/h", node: "/n", cli: "/c", target: { kind: "project", name: "shop", dir: "/srv/my shop", files: ["/srv/my shop/skiff.yml", "/srv/100%.yml"] }, user: true });
    expect(text).toContain("WorkingDirectory=/srv/my shop\n");
    expect(text).toContain('ExecStart="/n" "/c" "up" "-d" "-f" "/srv/my shop/skiff.yml" "-f" "/srv/100%%.yml" "-p" "shop"');
    expect(text).toContain("WantedBy=default.target");
    expect(text).not.toContain("network-online");
  });

  it("writes units systemd-analyze verify accepts, lists and removes them, and leaves units it did not write", async () => {
    const home = "/var/lib/skiff-test-home";
    await enableAutostart({ home, runner: defaultRunner, target: { kind: "vm", name: "web" }, node: process.execPath, cli });
    await enableAutostart({ home, runner: defaultRunner, target: { kind: "project", name: "shop", dir: dir, files: [join(dir, "skiff.yml")] }, node: process.execPath, cli });
    await enableAutostart({ home: "/other", runner: defaultRunner, target: { kind: "vm", name: "web" }, node: process.execPath, cli });
    const units = readdirSync(dir).sort();
    expect(units).toHaveLength(3);
    const verify = spawnSync("systemd-analyze", ["verify", ...units.map((u) => join(dir, u))], { encoding: "utf8" });
    expect(verify.stderr).toBe("");
    expect(verify.status).toBe(0);
    expect((await listAutostart(home)).map((u) => [u.kind, u.name])).toEqual([
      ["project", "shop"],
      ["vm", "web"],
    ]);
    expect(await disableAutostart({ home, runner: defaultRunner, target: { kind: "vm", name: "web" } })).toBe(true);
    expect(await disableAutostart({ home, runner: defaultRunner, target: { kind: "vm", name: "web" } })).toBe(false);
    expect(readdirSync(dir)).not.toContain(unitName(home, { kind: "vm", name: "web" }));
    expect(readdirSync(dir)).toContain(unitName("/other", { kind: "vm", name: "web" }));
  });
});
