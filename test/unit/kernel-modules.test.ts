import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { configForcesSignatures, keepModuleSignatures, parseModulesDep, resolveModules, withoutSignature } from "../../src/kernel/modules.js";

const dep = [
  "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko",
  "kernel/lib/crc16.ko:",
  "kernel/fs/mbcache.ko:",
  "kernel/fs/jbd2/jbd2.ko:",
  "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
  "kernel/drivers/virtio/virtio_ring.ko:",
  "kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
  "kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
  "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
  "kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko",
  "kernel/net/core/failover.ko:",
].join("\n");

describe("resolveModules", () => {
  const index = parseModulesDep(dep);

  it("puts every dependency before its user, once", () => {
    const { paths } = resolveModules(index, ["virtio_mmio", "virtio_net", "ext4"]);
    expect(paths).toEqual([
      "kernel/drivers/virtio/virtio_ring.ko",
      "kernel/drivers/virtio/virtio.ko",
      "kernel/drivers/virtio/virtio_mmio.ko",
      "kernel/net/core/failover.ko",
      "kernel/drivers/net/net_failover.ko",
      "kernel/drivers/net/virtio_net.ko",
      "kernel/fs/jbd2/jbd2.ko",
      "kernel/fs/mbcache.ko",
      "kernel/lib/crc16.ko",
      "kernel/fs/ext4/ext4.ko",
    ]);
  });

  it("treats - and _ alike and reports unknown modules", () => {
    const { paths, notFound } = resolveModules(index, ["virtio_rng", "nonexistent"]);
    expect(paths.at(-1)).toBe("kernel/drivers/char/hw_random/virtio-rng.ko");
    expect(notFound).toEqual(["nonexistent"]);
  });
});

describe("module signatures", () => {
  /** A module body with a PKCS#7-style trailer: the signature, struct module_signature, the marker. */
  const signed = (body: Buffer, sig: Buffer): Buffer => {
    const info = Buffer.alloc(12);
    info.writeUInt8(2, 2); // id_type PKEY_ID_PKCS7
    info.writeUInt32BE(sig.length, 8);
    return Buffer.concat([body, sig, info, Buffer.from("~Module signature appended~\n", "latin1")]);
  };
  const body = Buffer.from("\x7fELF module body", "latin1");

  it("cuts the appended signature and its trailer, and leaves a module without one as it is", () => {
    expect(withoutSignature(signed(body, Buffer.alloc(681, 7)))).toEqual(body);
    expect(withoutSignature(body)).toBe(body);
    expect(withoutSignature(Buffer.alloc(0)).length).toBe(0);
  });

  it("leaves the bytes alone when the trailer claims more than the file holds", () => {
    const bad = signed(body, Buffer.alloc(8));
    bad.writeUInt32BE(1 << 30, bad.length - 28 - 4);
    expect(withoutSignature(bad)).toBe(bad);
  });

  it("strips a real Debian module down to a loadable ELF file", () => {
    const dir = "/lib/modules";
    const version = existsSync(dir) ? readdirSync(dir).find((v) => existsSync(join(dir, v, "kernel/fs/ext4/ext4.ko"))) : undefined;
    if (version === undefined) return; // a host without Debian's kernel modules: the cases above stand
    const file = readFileSync(join(dir, version, "kernel/fs/ext4/ext4.ko"));
    const stripped = withoutSignature(file);
    expect(stripped.length).toBeLessThan(file.length);
    expect(stripped.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    expect(stripped.includes("~Module signature appended~")).toBe(false);
  });

  it("keeps them when the kernel or its command line enforces them", () => {
    const config = configForcesSignatures("CONFIG_MODULE_SIG=y\n# CONFIG_MODULE_SIG_FORCE is not set\n");
    expect(keepModuleSignatures([], config)).toBe(false);
    expect(keepModuleSignatures(["quiet", "module.sig_enforce=0"], config)).toBe(false);
    expect(keepModuleSignatures(["module.sig_enforce=1"], config)).toBe(true);
    expect(keepModuleSignatures(["module.sig_enforce"], config)).toBe(true);
    expect(keepModuleSignatures(["lockdown=integrity"], config)).toBe(true);
    expect(keepModuleSignatures([], configForcesSignatures("CONFIG_MODULE_SIG=y\nCONFIG_MODULE_SIG_FORCE=y\n"))).toBe(true);
    expect(keepModuleSignatures([], configForcesSignatures(undefined))).toBe(true);
  });
});
