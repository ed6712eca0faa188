/**
 * How much memory a VM needs to boot at all, worked out from its kernel and
 * its initramfs, as Pontoon's doctor does: a VM given less dies in its own
 * boot ("System is deadlocked on memory") instead of failing with a hint.
 *
 * The estimate is three parts:
 * - kernel: what the kernel image occupies in guest RAM while it boots. For
 *   an ELF vmlinux (PVH, skiff's default) the span of its PT_LOAD segments
 *   (text, data, percpu, init sections, bss and brk: all resident until the
 *   init sections are freed at the end of boot); for a bzImage its setup
 *   header's `init_size`, which is the kernel's own statement of the linear
 *   memory it needs to start. Debian 6.1: 58 MiB of a 66 MB vmlinux file.
 * - initramfs peak: while the kernel unpacks it, the archive QEMU loaded and
 *   the files unpacked from it sit in RAM together; the unpacked files stay
 *   (skiff-init runs from them). skiff's archive is an uncompressed cpio, so
 *   the peak is twice its size: 2 x 11.7 MiB.
 * - headroom: the rest of the kernel's boot (struct pages, page tables,
 *   slab, percpu areas, the modules skiff-init loads) and then skiff-init,
 *   dropbear and one exec. Calibrated by booting `skiff run --rm --memory N
 *   base true` under TCG on 2026-12-03, Debian 6.1.0-57 and skiff's 11.7 MiB
 *   initramfs (user networking): 138 MiB boots and execs (4 of 4), 137 and
 *   136 do not (the agent never answers, or the kernel panics), 128 panics.
 *   138 - 58 - 23.3 = 56.7 MiB were needed; 62 leaves a margin of ~5 MiB, so
 *   the estimate for that kernel is 144 MiB (which boots every time). The
 *   other initramfs variants bear out the factor of two: without network
 *   modules (9.7 MiB) 134 boots and 133 does not (estimate 140); with the
 *   9p modules too (12.4 MiB) 140 boots and 139 does not (estimate 145).
 */
import { open, stat } from "node:fs/promises";
import { SkiffError } from "../errors.js";

export const bootHeadroomMiB = 62;

/**
 * The same headroom for a kernel skiff built (kernel/config.ts): no modules
 * to load, fewer drivers and subsystems to set up, and (below 128 MiB) two
 * agent ports instead of eight (spec/machine.ts: agentPortCount; 4 MiB of
 * guest RAM each). Calibrated as above on 2026-12-04 with `run --rm --cold
 * --kernel skiff -m N base sh -c 'echo ok'`, 6.1.192-skiff (18.1 MiB) and
 * its 7 MiB initramfs: 52 MiB boots (3 of 3), 50 once in 3, 49 and 48 panic.
 * 52 - 18.1 - 14.1 = 19.8 MiB were needed; 25 leaves ~5 MiB, so the
 * estimate is 58 MiB and a 64 MiB VM boots with room to run.
 */
export const builtKernelHeadroomMiB = 25;

const MiB = 2 ** 20;

export interface BootMemoryInput {
  /** Bytes the kernel occupies in guest RAM while booting (kernelBootBytes). */
  kernelBytes: number;
  /** The initrd as QEMU loads it. */
  initramfsBytes: number;
  /** The files unpacked from it (the same as initramfsBytes for an uncompressed cpio). */
  initramfsUnpackedBytes: number;
}

export interface BootMemoryEstimate {
  kernelMiB: number;
  /** Archive + unpacked files, both in RAM while unpacking. */
  initramfsPeakMiB: number;
  headroomMiB: number;
  /** The least --memory that boots, whole MiB (rounded up). */
  totalMiB: number;
}

export function estimateBootMemory(input: BootMemoryInput, headroomMiB = bootHeadroomMiB): BootMemoryEstimate {
  const kernelMiB = input.kernelBytes / MiB;
  const initramfsPeakMiB = (input.initramfsBytes + input.initramfsUnpackedBytes) / MiB;
  return {
    kernelMiB: round1(kernelMiB),
    initramfsPeakMiB: round1(initramfsPeakMiB),
    headroomMiB,
    totalMiB: Math.ceil(kernelMiB + initramfsPeakMiB + headroomMiB),
  };
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

/**
 * The RAM a kernel image occupies while booting, from its first 4 KiB: an
 * ELF64 vmlinux's PT_LOAD span (lowest physical address to highest end), or
 * a bzImage's `init_size` (boot protocol 2.10+, at 0x260). Undefined for
 * anything else (a format skiff cannot read: no estimate, no refusal).
 */
export function kernelBootBytes(head: Buffer): number | undefined {
  if (head.length >= 64 && head.readUInt32BE(0) === 0x7f454c46 && head[4] === 2 && head[5] === 1) {
    const phoff = Number(head.readBigUInt64LE(32));
    const phentsize = head.readUInt16LE(54);
    const phnum = head.readUInt16LE(56);
    let low = Infinity;
    let high = 0;
    for (let i = 0; i < phnum; i++) {
      const at = phoff + i * phentsize;
      if (at + 56 > head.length) return undefined;
      if (head.readUInt32LE(at) !== 1) continue; // PT_LOAD
      const paddr = Number(head.readBigUInt64LE(at + 24));
      const memsz = Number(head.readBigUInt64LE(at + 40));
      low = Math.min(low, paddr);
      high = Math.max(high, paddr + memsz);
    }
    return high > low ? high - low : undefined;
  }
  // bzImage: "HdrS" at 0x202, protocol version at 0x206.
  if (head.length >= 0x264 && head.toString("latin1", 0x202, 0x206) === "HdrS" && head.readUInt16LE(0x206) >= 0x020a) {
    return head.readUInt32LE(0x260);
  }
  return undefined;
}

/** kernelBootBytes of a kernel file. */
export async function readKernelBootBytes(path: string): Promise<number | undefined> {
  const file = await open(path, "r");
  try {
    const head = Buffer.alloc(4096);
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    return kernelBootBytes(head.subarray(0, bytesRead));
  } finally {
    await file.close();
  }
}

/**
 * The estimate for a kernel file and the initrd QEMU will load; undefined
 * when the kernel's format cannot be read. skiff's initrd is an uncompressed
 * cpio: what unpacks is as large as the archive.
 */
export async function bootMemoryOf(kernelPath: string, initramfsPath: string, headroomMiB = bootHeadroomMiB): Promise<BootMemoryEstimate | undefined> {
  const kernelBytes = await readKernelBootBytes(kernelPath);
  if (kernelBytes === undefined) return undefined;
  const initramfsBytes = (await stat(initramfsPath)).size;
  return estimateBootMemory({ kernelBytes, initramfsBytes, initramfsUnpackedBytes: initramfsBytes }, headroomMiB);
}

/** "kernel 58 MiB + initramfs 23.3 MiB while unpacking + 62 MiB headroom", for hints and doctor. */
export function describeBootMemory(e: BootMemoryEstimate): string {
  return `kernel ${e.kernelMiB} MiB + initramfs ${e.initramfsPeakMiB} MiB while unpacking + ${e.headroomMiB} MiB headroom for the rest of boot, skiff-init, dropbear and an exec`;
}

/** ERR_SKIFF_BAD_MEMORY at `place` when `memoryMiB` is below what `kernel` (a name for the message) needs to boot. */
export function checkBootMemory(memoryMiB: number, estimate: BootMemoryEstimate, kernel: string, place = "memory"): void {
  if (memoryMiB >= estimate.totalMiB) return;
  throw new SkiffError("ERR_SKIFF_BAD_MEMORY", `${memoryMiB} MiB is too little for ${kernel} to boot: it needs at least ${estimate.totalMiB} MiB`, {
    place,
    hint: `this kernel needs at least ${estimate.totalMiB} MiB to boot (${describeBootMemory(estimate)}); give the VM ${estimate.totalMiB} MiB of memory or more`,
    details: { memoryMiB, minimumMiB: estimate.totalMiB },
  });
}
