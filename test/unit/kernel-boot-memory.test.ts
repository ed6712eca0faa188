import { describe, expect, it } from "vitest";
import { bootHeadroomMiB, checkBootMemory, estimateBootMemory, kernelBootBytes } from "../../src/kernel/boot-memory.js";
import { errorOf } from "./fixtures/errors.js";

const MiB = 2 ** 20;

/** An ELF64 header and program headers as `readelf -l` shows them (type, paddr, memsz). */
function elfHead(segments: [type: number, paddr: number, memsz: number][]): Buffer {
  const head = Buffer.alloc(64 + 56 * segments.length);
  head.writeUInt32BE(0x7f454c46, 0);
  head[4] = 2; // ELFCLASS64
  head[5] = 1; // little-endian
  head.writeBigUInt64LE(64n, 32); // e_phoff
  head.writeUInt16LE(56, 54); // e_phentsize
  head.writeUInt16LE(segments.length, 56);
  segments.forEach(([type, paddr, memsz], i) => {
    const at = 64 + 56 * i;
    head.writeUInt32LE(type, at);
    head.writeBigUInt64LE(BigInt(paddr), at + 24);
    head.writeBigUInt64LE(BigInt(memsz), at + 40);
  });
  return head;
}

/** Debian's linux-image-6.1.0-57-amd64 vmlinux (PVH), `readelf -lW`: four PT_LOADs and a NOTE. */
const debianVmlinux = elfHead([
  [1, 0x1000000, 0x18eacdc],
  [1, 0x2a00000, 0x644000],
  [1, 0x3044000, 0x035000], // .data..percpu: virtual address 0, physical inside the image
  [1, 0x3079000, 0x1987000],
  [4, 0x24c1990, 0x1f8],
]);
/** skiff's base initramfs for that kernel with the network modules: an uncompressed cpio. */
const debianInitramfsBytes = 12_230_764;

describe("kernelBootBytes", () => {
  it("is a vmlinux's PT_LOAD span: 58 MiB of Debian 6.1's 66 MB file", () => {
    expect(kernelBootBytes(debianVmlinux)).toBe(58 * MiB);
  });

  it("is a bzImage's init_size (Debian 6.1's vmlinuz: 63.6 MiB)", () => {
    const head = Buffer.alloc(0x270);
    head.write("HdrS", 0x202, "latin1");
    head.writeUInt16LE(0x020f, 0x206);
    head.writeUInt32LE(0x03f98000, 0x260);
    expect(kernelBootBytes(head)).toBe(0x03f98000);
    // Before boot protocol 2.10 there is no init_size to read.
    head.writeUInt16LE(0x0209, 0x206);
    expect(kernelBootBytes(head)).toBeUndefined();
  });

  it("is undefined for what it cannot read (no estimate, so no refusal)", () => {
    expect(kernelBootBytes(Buffer.from("not a kernel"))).toBeUndefined();
    expect(kernelBootBytes(elfHead([[4, 0, 0x100]]))).toBeUndefined();
    // Program headers past the bytes read.
    expect(kernelBootBytes(debianVmlinux.subarray(0, 100))).toBeUndefined();
  });
});

describe("estimateBootMemory", () => {
  const debian = estimateBootMemory({
    kernelBytes: kernelBootBytes(debianVmlinux)!,
    initramfsBytes: debianInitramfsBytes,
    initramfsUnpackedBytes: debianInitramfsBytes,
  });

  it("adds the kernel, the initramfs twice (archive and unpacked files) and the headroom, rounded up", () => {
    expect(debian).toEqual({ kernelMiB: 58, initramfsPeakMiB: 23.3, headroomMiB: bootHeadroomMiB, totalMiB: 144 });
  });

  it("is above the floor measured on this kernel (138 MiB boots, 137 does not) with a margin, and below the sizes people give", () => {
    expect(debian.totalMiB).toBeGreaterThanOrEqual(138 + 4);
    for (const mib of [160, 192, 256]) expect(() => checkBootMemory(mib, debian, "the Debian kernel 6.1.0-57-amd64")).not.toThrow();
    expect(() => checkBootMemory(144, debian, "k")).not.toThrow();
  });

  it.each([
    // skiff's base initramfs for Debian 6.1 without NICs, with user networking, with 9p shares too; the least --memory that booted.
    ["no network modules", 10_197_268, 134],
    ["network modules", 12_230_764, 138],
    ["network and 9p modules", 13_019_580, 140],
  ])("is 4 to 8 MiB above the floor measured with the initramfs with %s", (_, initramfsBytes, floorMiB) => {
    const e = estimateBootMemory({ kernelBytes: 58 * MiB, initramfsBytes, initramfsUnpackedBytes: initramfsBytes });
    expect(e.totalMiB).toBeGreaterThanOrEqual(floorMiB + 4);
    expect(e.totalMiB).toBeLessThanOrEqual(floorMiB + 8);
  });

  it("grows with a compressed initramfs's unpacked size", () => {
    const compressed = estimateBootMemory({ kernelBytes: 58 * MiB, initramfsBytes: 4 * MiB, initramfsUnpackedBytes: 12 * MiB });
    expect(compressed.initramfsPeakMiB).toBe(16);
    expect(compressed.totalMiB).toBe(58 + 16 + bootHeadroomMiB);
  });
});

describe("checkBootMemory", () => {
  it("refuses less than the estimate at the memory field, naming the minimum", () => {
    const estimate = { kernelMiB: 58, initramfsPeakMiB: 23.3, headroomMiB: bootHeadroomMiB, totalMiB: 144 };
    const err = errorOf(() => checkBootMemory(128, estimate, "the Debian kernel 6.1.0-57-amd64"));
    expect(err.code).toBe("ERR_SKIFF_BAD_MEMORY");
    expect(err.place).toBe("memory");
    expect(err.message).toBe("128 MiB is too little for the Debian kernel 6.1.0-57-amd64 to boot: it needs at least 144 MiB");
    expect(err.hint).toContain("this kernel needs at least 144 MiB to boot (kernel 58 MiB + initramfs 23.3 MiB while unpacking + 62 MiB headroom");
    expect(err.hint).toContain("give the VM 144 MiB of memory or more");
    expect(errorOf(() => checkBootMemory(143, estimate, "k", "services.web.memory")).place).toBe("services.web.memory");
  });
});
