import { describe, expect, it } from "vitest";
import { renderGuestConfig, guestConfigArchive } from "../../src/guest/initramfs.js";

describe("guest config", () => {
  const config = {
    hostname: "web-1",
    agentPorts: 8,
    env: { FOO: "bar", EMPTY: "" },
    network: {
      nics: [
        { name: "eth0", network: "user", driver: "user" as const, mac: "52:54:00:00:00:01", address: "10.0.2.15/24" },
        { name: "eth1", network: "lan", driver: "private" as const, mac: "52:54:00:00:00:02", address: "10.90.0.2/24" },
      ],
      gateway: "10.0.2.2",
      dns: ["10.0.2.3", "192.0.2.53"],
      hosts: "127.0.0.1\tlocalhost\n10.90.0.2\tweb-1\n10.90.0.3\tdb\n",
    },
    authorizedKey: "ssh-ed25519 AAAA test",
    hostKey: Buffer.from("key"),
  };

  it("renders the key=value file skiff-init reads", () => {
    expect(renderGuestConfig(config)).toBe(
      "hostname=web-1\nagent.ports=8\n" +
        "nic.0=52:54:00:00:00:01 eth0 10.0.2.15/24\nnic.1=52:54:00:00:00:02 eth1 10.90.0.2/24\n" +
        "gateway=10.0.2.2\ndns=10.0.2.3 192.0.2.53\n",
    );
  });

  it("leaves the network out when the VM has none", () => {
    expect(renderGuestConfig({ ...config, network: { nics: [], dns: [], hosts: "" } })).toBe("hostname=web-1\nagent.ports=8\n");
  });

  it("carries env, key and host key as files of a cpio archive", () => {
    const archive = guestConfigArchive(config).toString("latin1");
    expect(archive).toContain("skiff/env");
    expect(archive).toContain("FOO=bar\0EMPTY=\0");
    expect(archive).toContain("skiff/root/.ssh/authorized_keys");
    expect(archive).toContain("ssh-ed25519 AAAA test\n");
    expect(archive).toContain("skiff/hosts");
    expect(archive).toContain("10.90.0.3\tdb\n");
  });
  it("tells init the mounts, target last (it may hold spaces), and the supervised main command as an exec request", () => {
    const text = renderGuestConfig({
      ...config,
      network: { nics: [], dns: [], hosts: "" },
      mounts: [
        { fs: "9p", source: "skiff0", target: "/src", readOnly: false },
        { fs: "ext4", source: "skiff-vol0", target: "/var/lib/my data", readOnly: true },
      ],
      main: { restart: "on-failure", request: { argv: ["sh", "-c", "echo hi; exit 3"], user: "app", cwd: "/" } },
    });
    const lines = text.trimEnd().split("\n");
    expect(lines.slice(2, 5)).toEqual(["mount.0=9p skiff0 rw /src", "mount.1=ext4 skiff-vol0 ro /var/lib/my data", "main.restart=on-failure"]);
    const exec = lines[5]!;
    expect(exec.startsWith("main.exec=skiff-exec:")).toBe(true);
    const records = Buffer.from(exec.slice("main.exec=skiff-exec:".length), "base64").toString("utf8").split("\0");
    expect(records).toEqual(["u=app", "w=/", "a=sh", "a=-c", "a=echo hi; exit 3"]);
  });

  it("refuses a mount target with a newline", () => {
    expect(() => renderGuestConfig({ ...config, mounts: [{ fs: "9p", source: "skiff0", target: "/a\nb", readOnly: false }] })).toThrow(/mount/);
  });
});
