/**
 * `skiff ssh-config` blocks work from a shell without skiff's environment:
 * the ProxyCommand names the home (and a moved cache) it was made for,
 * quoted for the shell and escaped for ssh's % tokens.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { proxyEnv, sshConfigBlock } from "../../src/cli/commands/ssh.js";

describe("ssh-config", () => {
  it("writes SKIFF_HOME into the ProxyCommand", () => {
    const block = sshConfigBlock({ name: "web", dir: "/h/vms/abc", skiffArgv: ["/usr/bin/node", "/opt/skiff/dist/cli/main.js"], env: { SKIFF_HOME: "/h" } });
    expect(block).toBe(
      [
        "Host web skiff-web",
        "  HostName web",
        "  User root",
        "  ProxyCommand env SKIFF_HOME=/h /usr/bin/node /opt/skiff/dist/cli/main.js proxy web",
        "  IdentityFile /h/vms/abc/id_ed25519",
        "  IdentitiesOnly yes",
        "  UserKnownHostsFile /h/vms/abc/known_hosts",
        "  HostKeyAlias skiff-web",
        "  StrictHostKeyChecking yes",
        "",
      ].join("\n"),
    );
  });

  it("passes SKIFF_CACHE only when it was set", () => {
    const skiff = { home: "/h", cacheDir: "/c" };
    expect(proxyEnv(skiff, {})).toEqual({ SKIFF_HOME: "/h" });
    expect(proxyEnv(skiff, { SKIFF_CACHE: "c" })).toEqual({ SKIFF_HOME: "/h", SKIFF_CACHE: "/c" });
  });

  it("quotes odd paths for the shell and escapes % for ssh; a clean shell runs it as written", () => {
    const home = "/tmp/my home/it's 100%";
    const argv = [process.execPath, "-e", "console.log(JSON.stringify([process.env.SKIFF_HOME, process.env.SKIFF_CACHE, process.argv.slice(1)]))"];
    const block = sshConfigBlock({ name: "web", dir: `${home}/vms/abc`, skiffArgv: argv, env: { SKIFF_HOME: home, SKIFF_CACHE: "/var/cache/sk iff" } });
    expect(block).toContain(`  IdentityFile "/tmp/my home/it's 100%%/vms/abc/id_ed25519"`);
    const line = block.split("\n").find((l) => l.startsWith("  ProxyCommand "))!;
    expect(line).toContain(`SKIFF_HOME='/tmp/my home/it'\\''s 100%%'`);
    // What ssh does: undo %% and run the line with the user's shell, here with an empty environment.
    const command = line.slice("  ProxyCommand ".length).replaceAll("%%", "%");
    const r = spawnSync("/bin/sh", ["-c", `exec ${command}`], { encoding: "utf8", env: {} });
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual([home, "/var/cache/sk iff", ["proxy", "web"]]);
  });
});
