/**
 * Per-VM SSH keys, made on the host when the VM is created: a client key
 * (OpenSSH format, used by skiff and by `ssh` through `skiff ssh-config`)
 * and the guest's ed25519 host key in dropbear's format, whose public half is
 * pinned in the VM's known_hosts so nothing ever trusts on first use.
 */
import { readFile, rm, writeFile } from "node:fs/promises";
import type { Runner } from "../process/runner.js";
import type { VmPaths } from "../store/vmdir.js";

export interface VmKeys {
  clientPublicKey: string;
  hostPublicKey: string;
}

export async function generateVmKeys(paths: VmPaths, runner: Runner, comment: string): Promise<VmKeys> {
  await rm(paths.sshKey, { force: true });
  await rm(paths.hostKey, { force: true });
  await runner.run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", paths.sshKey], {
    check: true,
    debianPackage: "openssh-client",
  });
  await runner.run("dropbearkey", ["-t", "ed25519", "-f", paths.hostKey], { check: true, debianPackage: "dropbear-bin" });
  const printed = await runner.run("dropbearkey", ["-y", "-f", paths.hostKey], { check: true, debianPackage: "dropbear-bin" });
  const hostLine = printed.stdout.split("\n").find((l) => l.startsWith("ssh-ed25519 "));
  if (hostLine === undefined) throw new Error("dropbearkey printed no ssh-ed25519 public key");
  const hostPublicKey = hostLine.split(" ").slice(0, 2).join(" ");
  await writeFile(paths.hostPublicKey, `${hostPublicKey} ${comment}\n`, { mode: 0o644 });
  // `skiff ssh-config` sets HostKeyAlias to the comment ("skiff-NAME"): OpenSSH pins this key.
  await writeFile(paths.knownHosts, `${comment} ${hostPublicKey}\n`, { mode: 0o644 });
  const clientPublicKey = (await readFile(paths.sshPublicKey, "utf8")).trim();
  return { clientPublicKey, hostPublicKey };
}

/** The host key as an OpenSSH public key line ("ssh-ed25519 AAAA…"). */
export async function readHostPublicKey(paths: VmPaths): Promise<string> {
  return (await readFile(paths.hostPublicKey, "utf8")).trim().split(" ").slice(0, 2).join(" ");
}
