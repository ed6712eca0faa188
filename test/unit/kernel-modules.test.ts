import { describe, expect, it } from "vitest";
import { parseModulesDep, resolveModules } from "../../src/kernel/modules.js";

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
