import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { configFragment, missingOptions } from "../../src/kernel/config.js";
import { builtKernelAt, builtKernelFile, defaultBuiltKernel, isKernelName, listBuiltKernels, resolveKernelRef, setDefaultKernel } from "../../src/kernel/built.js";
import { checkKernel } from "../../src/kernel/override.js";
import { findKernelSource } from "../../src/kernel/build.js";

describe("kernel config fragment", () => {
  it("asks for what a microvm guest needs, built in", () => {
    const fragment = configFragment();
    for (const o of ["VIRTIO_MMIO", "VIRTIO_BLK", "VIRTIO_NET", "VIRTIO_CONSOLE", "EXT4_FS", "9P_FS", "PVH", "NF_TABLES", "SERIAL_8250_CONSOLE"]) {
      expect(fragment).toContain(`CONFIG_${o}=y\n`);
    }
    expect(fragment).not.toMatch(/=m$/m);
  });

  it("names the options a .config lacks, and none when it has them all", () => {
    const fragment = "CONFIG_A=y\nCONFIG_NR=64\n# why\nCONFIG_B=y\n";
    expect(missingOptions("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_NR=64\n", fragment)).toEqual(["B"]);
    expect(missingOptions("CONFIG_A=y\nCONFIG_B=y\nCONFIG_NR=32\n", fragment)).toEqual(["NR"]);
    expect(missingOptions("CONFIG_B=y\nCONFIG_NR=64\nCONFIG_A=y\n", fragment)).toEqual([]);
  });
});

describe("built kernels", () => {
  let cache: string;
  let home: string;
  const put = (id: string, builtAt: string) => {
    const dir = join(cache, "kernels", "built", id);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "vmlinux"), "\x7fELF");
    writeFileSync(join(dir, "kernel.json"), JSON.stringify({ id, version: "6.1.192-skiff", source: "/usr/src/x", sizeBytes: 4, builtAt, buildSeconds: 300, jobs: 2 }));
  };
  beforeEach(() => {
    cache = mkdtempSync(join(tmpdir(), "skiff-kernels-"));
    home = join(cache, "home");
    mkdirSync(home);
    put("aaaa11112222", "2026-12-01T00:00:00.000Z");
    put("aaaa33334444", "2026-12-02T00:00:00.000Z");
    mkdirSync(join(cache, "kernels", "built", ".build-cccc-1"), { recursive: true });
    mkdirSync(join(cache, "kernels", "built", "dddd00000000"), { recursive: true }); // no kernel.json: a build cut short
  });
  afterEach(() => rmSync(cache, { recursive: true, force: true }));

  it("lists complete builds only, newest first", () => {
    expect(listBuiltKernels(cache).map((k) => k.id)).toEqual(["aaaa33334444", "aaaa11112222"]);
  });

  it("resolves debian, skiff (the newest), ids and unique prefixes, and paths", () => {
    expect(resolveKernelRef("debian", cache)).toEqual({ kind: "debian" });
    expect(resolveKernelRef("/boot/vmlinux", cache)).toEqual({ kind: "path", path: "/boot/vmlinux" });
    const skiff = resolveKernelRef("skiff", cache);
    expect(skiff.kind === "built" && skiff.kernel.id).toBe("aaaa33334444");
    const byPrefix = resolveKernelRef("aaaa1", cache);
    expect(byPrefix.kind === "built" && byPrefix.path).toBe(builtKernelFile(cache, "aaaa11112222"));
  });

  it("refuses an ambiguous prefix, an unknown id and a word that is no kernel, with the place", () => {
    expect(() => resolveKernelRef("aaa", cache)).toThrow(/not a kernel/);
    expect(() => resolveKernelRef("aaaa", cache)).toThrow(expect.objectContaining({ code: "ERR_SKIFF_USAGE", message: expect.stringContaining("names 2 built kernels") }));
    expect(() => resolveKernelRef("ffff", cache, "--kernel")).toThrow(expect.objectContaining({ code: "ERR_SKIFF_KERNEL_NOT_FOUND", place: "--kernel" }));
    expect(() => resolveKernelRef("linux", cache)).toThrow(expect.objectContaining({ code: "ERR_SKIFF_KERNEL_NOT_FOUND" }));
    const empty = mkdtempSync(join(tmpdir(), "skiff-kernels-"));
    try {
      expect(() => resolveKernelRef("skiff", empty)).toThrow(expect.objectContaining({ code: "ERR_SKIFF_KERNEL_NOT_FOUND", hint: "run `skiff kernel build`" }));
    } finally {
      rmSync(empty, { recursive: true });
    }
  });

  it("tells a built kernel's vmlinux from any other file", () => {
    expect(builtKernelAt(builtKernelFile(cache, "aaaa11112222"), cache)?.id).toBe("aaaa11112222");
    expect(builtKernelAt(builtKernelFile(cache, "dddd00000000"), cache)).toBeUndefined();
    expect(builtKernelAt("/boot/vmlinux", cache)).toBeUndefined();
  });

  it("keeps a default that new VMs boot, and drops it when that kernel is gone", async () => {
    expect(defaultBuiltKernel(home, cache)).toBeUndefined();
    await setDefaultKernel(home, listBuiltKernels(cache)[1]);
    expect(defaultBuiltKernel(home, cache)?.id).toBe("aaaa11112222");
    const choice = { cacheDir: cache, home, useDefault: true };
    expect(await checkKernel(undefined, choice)).toEqual({ path: builtKernelFile(cache, "aaaa11112222") });
    expect(await checkKernel({ args: ["x=1"] }, { ...choice, useDefault: false })).toEqual({ args: ["x=1"] });
    expect(await checkKernel({ path: "debian" }, choice)).toBeUndefined();
    expect(await checkKernel({ path: "skiff", args: ["x=1"] }, choice)).toEqual({ path: builtKernelFile(cache, "aaaa33334444"), args: ["x=1"] });
    rmSync(join(cache, "kernels", "built", "aaaa11112222"), { recursive: true });
    expect(defaultBuiltKernel(home, cache)).toBeUndefined();
    await setDefaultKernel(home, undefined);
    expect(await checkKernel(undefined, choice)).toBeUndefined();
  });

  it("refuses a kernel file that is not there, naming it", async () => {
    await expect(checkKernel({ path: "/nonexistent/vmlinux" }, { cacheDir: cache, home, useDefault: true })).rejects.toMatchObject({
      code: "ERR_SKIFF_FILE_NOT_FOUND",
      message: "kernel file cannot be opened: /nonexistent/vmlinux (ENOENT)",
      place: "kernel",
    });
  });

  it("keeps kernel names in project files as written", () => {
    expect(["debian", "skiff", "aaaa", "aaaa11112222"].every(isKernelName)).toBe(true);
    expect(["./vmlinux", "vmlinux", "/boot/x", "aaa"].some(isKernelName)).toBe(false);
  });

  it("says where the source comes from when there is none", () => {
    expect(() => findKernelSource(cache)).toThrow(expect.objectContaining({ code: "ERR_SKIFF_KERNEL_MISSING", hint: expect.stringContaining("apt-get install linux-source") }));
    writeFileSync(join(cache, "linux-source-6.1.tar.xz"), "");
    writeFileSync(join(cache, "linux-source-6.10.tar.xz"), "");
    expect(findKernelSource(cache)).toBe(join(cache, "linux-source-6.10.tar.xz"));
  });
});
