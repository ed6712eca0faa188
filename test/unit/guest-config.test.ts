import { describe, expect, it } from "vitest";
import { renderGuestConfig, guestConfigArchive } from "../../src/guest/initramfs.js";

describe("guest config", () => {
  const config = {
    hostname: "web-1",
    agentPorts: 8,
    env: { FOO: "bar", EMPTY: "" },
    network: { address: "10.0.2.15/24", gateway: "10.0.2.2", dns: "10.0.2.3" },
    authorizedKey: "ssh-ed25519 AAAA test",
    hostKey: Buffer.from("key"),
  };

  it("renders the key=value file skiff-init reads", () => {
    expect(renderGuestConfig(config)).toBe(
      "hostname=web-1\nagent.ports=8\nnet.address=10.0.2.15/24\nnet.gateway=10.0.2.2\ndns=10.0.2.3\n",
    );
  });

  it("leaves the network out when the VM has none", () => {
    const { network: _n, ...rest } = config;
    expect(renderGuestConfig(rest)).toBe("hostname=web-1\nagent.ports=8\n");
  });

  it("carries env, key and host key as files of a cpio archive", () => {
    const archive = guestConfigArchive(config).toString("latin1");
    expect(archive).toContain("skiff/env");
    expect(archive).toContain("FOO=bar\nEMPTY=\n");
    expect(archive).toContain("skiff/root/.ssh/authorized_keys");
    expect(archive).toContain("ssh-ed25519 AAAA test\n");
  });
});
