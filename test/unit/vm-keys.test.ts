/**
 * A VM's keys, made in Node (engine/keys.ts), are what OpenSSH's and
 * dropbear's own tools read: ssh-keygen derives the same public key and
 * signs with the private one, verified against the public line; dropbearkey
 * reads the host key's public half back.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { generateVmKeys } from "../../src/engine/keys.js";
import { vmPaths } from "../../src/store/vmdir.js";

const dir = mkdtempSync(join(tmpdir(), "skiff-keys-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("generateVmKeys", () => {
  it("writes an OpenSSH client key and a dropbear host key that their tools accept", async () => {
    const paths = vmPaths(dir, "0123456789ab");
    execFileSync("mkdir", ["-p", paths.dir]);
    const keys = await generateVmKeys(paths, "skiff-web");
    expect(keys.clientPublicKey).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43} skiff-web$/);
    expect(readFileSync(paths.sshPublicKey, "utf8")).toBe(`${keys.clientPublicKey}\n`);
    expect(statSync(paths.sshKey).mode & 0o777).toBe(0o600);
    expect(statSync(paths.hostKey).mode & 0o777).toBe(0o600);

    // ssh-keygen reads the private key and finds the same public key in it.
    expect(execFileSync("ssh-keygen", ["-y", "-f", paths.sshKey], { encoding: "utf8" }).trim()).toBe(keys.clientPublicKey);
    // It signs with it, and the signature checks out against the public line: the seed is the public key's.
    const data = join(dir, "data");
    writeFileSync(data, "signed by a VM key\n");
    execFileSync("ssh-keygen", ["-q", "-Y", "sign", "-f", paths.sshKey, "-n", "skiff-test", data]);
    const allowed = join(dir, "allowed");
    writeFileSync(allowed, `vm ${keys.clientPublicKey}\n`);
    execFileSync("ssh-keygen", ["-Y", "verify", "-f", allowed, "-I", "vm", "-n", "skiff-test", "-s", `${data}.sig`], { input: readFileSync(data) });

    // dropbear's own tool reads the host key back to the public key pinned in known_hosts.
    const printed = execFileSync("dropbearkey", ["-y", "-f", paths.hostKey], { encoding: "utf8" });
    expect(printed).toContain(keys.hostPublicKey);
    expect(readFileSync(paths.knownHosts, "utf8")).toBe(`skiff-web ${keys.hostPublicKey}\n`);
  });

  it("makes new keys each time", async () => {
    const paths = vmPaths(dir, "ba9876543210");
    execFileSync("mkdir", ["-p", paths.dir]);
    const a = await generateVmKeys(paths, "skiff-a");
    const b = await generateVmKeys(paths, "skiff-a");
    expect(b.clientPublicKey).not.toBe(a.clientPublicKey);
    expect(b.hostPublicKey).not.toBe(a.hostPublicKey);
  });
});
