// The floor boot figures are measured against: raw QEMU booting the kernel
// skiff boots to an /init that powers off at once, with no skiff code on the
// way (bench/run.mjs, bench/snapshots.ts). Plain JavaScript, so that node
// (run.mjs) and vite-node (the TypeScript benches) both load it.
import { spawnSync } from "node:child_process";

/**
 * A newc archive, enough for a few files: a tiny twin of src/guest/cpio.ts
 * kept here so the baseline shares no skiff code.
 * @param {{ name: string; mode: number; data?: Buffer }[]} entries
 * @returns {Buffer}
 */
export function cpio(entries) {
  const parts = [];
  let ino = 1;
  const hex = (n) => n.toString(16).padStart(8, "0");
  const rec = (name, mode, data) => {
    const nb = Buffer.from(name + "\0");
    const head = Buffer.from("070701" + [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nb.length, 0].map(hex).join(""));
    parts.push(head, nb, Buffer.alloc((4 - ((head.length + nb.length) % 4)) % 4), data, Buffer.alloc((4 - (data.length % 4)) % 4));
  };
  for (const e of entries) rec(e.name, e.mode, e.data ?? Buffer.alloc(0));
  rec("TRAILER!!!", 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

/**
 * Archive entries for an /init that powers the machine off with the static
 * busybox at `busybox` (a path in the guest); appended to another archive,
 * its /init replaces that one's.
 * @param {string} busybox
 */
export function powerOffInit(busybox) {
  return [
    { name: "dev", mode: 0o040755 },
    { name: "dev/console", mode: 0o020600 },
    { name: "init", mode: 0o100755, data: Buffer.from(`#!${busybox} sh\n${busybox} poweroff -f\n`) },
  ];
}

/**
 * QEMU's argv for the floor: skiff's machine type, one vCPU, 256 MiB, its
 * kernel and acceleration (from Skiff.hostFacts()), the given initrd.
 * @param {{ accel: { accel: string }; vmlinuxPath: string; tscKhz?: number }} facts
 * @param {string} initrd
 */
export function rawBootArgs(facts, initrd) {
  return [
    "-M", "microvm,x-option-roms=off,pit=off,pic=off,isa-serial=on,rtc=on,acpi=on", "-nodefaults", "-no-user-config",
    "-display", "none", "-no-reboot", "-accel", facts.accel.accel, "-cpu", facts.accel.accel === "kvm" ? "host" : "max",
    "-smp", "1", "-m", "256M", "-kernel", facts.vmlinuxPath, "-initrd", initrd,
    "-append", `console=ttyS0 quiet panic=-1 tsc_early_khz=${facts.tscKhz ?? 0}`, "-serial", "null", "-device", "virtio-rng-device",
  ];
}

/**
 * Boot the floor once; its wall time in ms.
 * @param {{ qemuBinary: string; accel: { accel: string }; vmlinuxPath: string; tscKhz?: number }} facts
 * @param {string} initrd
 * @returns {number}
 */
export function rawBoot(facts, initrd) {
  const t = performance.now();
  const r = spawnSync(facts.qemuBinary, rawBootArgs(facts, initrd), { encoding: "utf8" });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`raw QEMU boot exited ${r.status}: ${r.stderr}${r.error ? String(r.error) : ""}`);
  return ms;
}
