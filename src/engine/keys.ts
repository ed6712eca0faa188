/**
 * Per-VM SSH keys, made on the host when the VM is created: a client key
 * (OpenSSH format, used by skiff and by `ssh` through `skiff ssh-config`)
 * and the guest's ed25519 host key in dropbear's format, whose public half is
 * pinned in the VM's known_hosts so nothing ever trusts on first use.
 *
 * Made with Node's crypto and written in each tool's format here, not by
 * ssh-keygen and dropbearkey: three processes per VM created (~90 ms).
 * test/unit/vm-keys.test.ts has ssh-keygen and dropbearkey read them back.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { open, readFile, rm, writeFile } from "node:fs/promises";
import type { VmPaths } from "../store/vmdir.js";

export interface VmKeys {
  clientPublicKey: string;
  hostPublicKey: string;
}

/** An ed25519 key pair: the 32-byte seed and the 32-byte public key. */
function ed25519(): { seed: Buffer; pub: Buffer } {
  const jwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
  return { seed: Buffer.from(jwk.d!, "base64url"), pub: Buffer.from(jwk.x!, "base64url") };
}

/** SSH's wire encoding: a uint32 length, then the bytes. */
function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

const keyType = "ssh-ed25519";

/** "ssh-ed25519 AAAA…" */
export function publicKeyLine(pub: Buffer): string {
  return `${keyType} ${Buffer.concat([sshString(keyType), sshString(pub)]).toString("base64")}`;
}

/** OpenSSH's private key file (openssh-key-v1, unencrypted), as `ssh-keygen -N ""` writes it. */
export function openSshPrivateKey(key: { seed: Buffer; pub: Buffer }, comment: string): string {
  const publicBlob = Buffer.concat([sshString(keyType), sshString(key.pub)]);
  const check = randomBytes(4);
  let secret = Buffer.concat([check, check, sshString(keyType), sshString(key.pub), sshString(Buffer.concat([key.seed, key.pub])), sshString(comment)]);
  // Padded to the cipher's block size (8 for "none") with 1, 2, 3, …
  const pad = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([Buffer.from("openssh-key-v1\0", "latin1"), sshString("none"), sshString("none"), sshString(""), uint32(1), sshString(publicBlob), sshString(secret)]);
  const lines = body.toString("base64").match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/** dropbear's ed25519 key file: the type, then the seed and the public key as one 64-byte string. */
export function dropbearPrivateKey(key: { seed: Buffer; pub: Buffer }): Buffer {
  return Buffer.concat([sshString(keyType), sshString(Buffer.concat([key.seed, key.pub]))]);
}

/** A new file only its owner reads (the key files), failing if one is there. */
async function writeSecret(path: string, data: string | Buffer): Promise<void> {
  const file = await open(path, "wx", 0o600);
  try {
    await file.writeFile(data);
  } finally {
    await file.close();
  }
}

export async function generateVmKeys(paths: VmPaths, comment: string): Promise<VmKeys> {
  await rm(paths.sshKey, { force: true });
  await rm(paths.hostKey, { force: true });
  const client = ed25519();
  const clientPublicKey = `${publicKeyLine(client.pub)} ${comment}`;
  await writeSecret(paths.sshKey, openSshPrivateKey(client, comment));
  await writeFile(paths.sshPublicKey, `${clientPublicKey}\n`, { mode: 0o644 });
  const host = ed25519();
  await writeSecret(paths.hostKey, dropbearPrivateKey(host));
  const hostPublicKey = publicKeyLine(host.pub);
  await writeFile(paths.hostPublicKey, `${hostPublicKey} ${comment}\n`, { mode: 0o644 });
  // `skiff ssh-config` sets HostKeyAlias to the comment ("skiff-NAME"): OpenSSH pins this key.
  await writeFile(paths.knownHosts, `${comment} ${hostPublicKey}\n`, { mode: 0o644 });
  return { clientPublicKey, hostPublicKey };
}

/** The host key as an OpenSSH public key line ("ssh-ed25519 AAAA…"). */
export async function readHostPublicKey(paths: VmPaths): Promise<string> {
  return (await readFile(paths.hostPublicKey, "utf8")).trim().split(" ").slice(0, 2).join(" ");
}
