import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SkiffError } from "../../src/errors.js";
import {
  accelCacheFile,
  accelCacheKey,
  checkKvmDevice,
  findQemu,
  parseQemuVersion,
  probeAccel,
  probeReason,
  readCachedVerdict,
  type AccelVerdict,
} from "../../src/qemu/accel.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "skiff-accel-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/** A stand-in for QEMU: answers --version, otherwise runs `body`. */
async function fakeQemu(body: string): Promise<string> {
  const path = join(dir, "qemu-system-x86_64");
  const script = `#!/bin/sh
if [ "$1" = --version ]; then echo "QEMU emulator version 7.2.22 (fake)"; exit 0; fi
echo $$ > "${dir}/pid"
${body}
`;
  await writeFile(path, script);
  await chmod(path, 0o755);
  return path;
}

/** Options with a readable-writable stand-in for /dev/kvm and a real kernel file to stamp. */
async function options(qemuBinary: string, timeoutMs = 2000) {
  const kvmDevicePath = join(dir, "kvm");
  const kernelPath = join(dir, "vmlinux");
  await writeFile(kvmDevicePath, "");
  await writeFile(kernelPath, "kernel");
  return { qemuBinary, kernelPath, kvmDevicePath, timeoutMs, cacheDir: join(dir, "cache"), hostRelease: "6.1.0-test" };
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

describe("probeAccel", () => {
  it("chooses TCG without probing when /dev/kvm is absent", async () => {
    const qemu = await fakeQemu("exit 99");
    const verdict = await probeAccel({ ...(await options(qemu)), kvmDevicePath: join(dir, "no-kvm") });
    expect(verdict).toMatchObject({ accel: "tcg", kvmDevice: false });
    expect(verdict.reason).toContain("does not exist");
    await expect(readFile(join(dir, "pid"), "utf8")).rejects.toThrow();
  });

  it("chooses KVM when the probe guest shows late-boot output, and caches it", async () => {
    const qemu = await fakeQemu(`echo "[    0.5] Kernel panic - not syncing: VFS: Unable to mount root fs"; exec sleep 30`);
    const opts = await options(qemu);
    const verdict = await probeAccel(opts);
    expect(verdict).toMatchObject({ accel: "kvm", kvmDevice: true });
    expect(verdict.key).toContain("host=6.1.0-test;qemu=7.2.22;kernel=");
    expect(processGone(Number(await readFile(join(dir, "pid"), "utf8")))).toBe(true);
    const cached = JSON.parse(await readFile(join(opts.cacheDir, accelCacheFile), "utf8")) as AccelVerdict;
    expect(cached).toEqual(verdict);
  });

  it("kills a probe that shows no sign of life by the deadline and chooses TCG", async () => {
    const qemu = await fakeQemu(`echo "Decompressing Linux..."; exec sleep 30`);
    const started = Date.now();
    const verdict = await probeAccel(await options(qemu, 300));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(verdict.accel).toBe("tcg");
    expect(verdict.reason).toMatch(/did not come up within 0.3 s/);
    expect(processGone(Number(await readFile(join(dir, "pid"), "utf8")))).toBe(true);
  });

  it("chooses TCG when QEMU dies during the probe, quoting its error", async () => {
    const qemu = await fakeQemu(`echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2; kill -ABRT $$`);
    const verdict = await probeAccel(await options(qemu));
    expect(verdict.accel).toBe("tcg");
    expect(verdict.reason).toBe("KVM present but QEMU ended a probe boot early (signal SIGABRT): error: failed to set MSR 0x10a to 0x69");
  });

  it("reuses a cached verdict with the same key and probes again when the kernel changes", async () => {
    const qemu = await fakeQemu(`echo "Run /init as init process"; exec sleep 30`);
    const opts = await options(qemu);
    const first = await probeAccel(opts);
    await rm(join(dir, "pid"));
    expect(await probeAccel(opts)).toEqual(first);
    await expect(readFile(join(dir, "pid"), "utf8")).rejects.toThrow();

    await writeFile(opts.kernelPath, "another kernel");
    const again = await probeAccel(opts);
    expect(again.key).not.toBe(first.key);
    expect(await readFile(join(dir, "pid"), "utf8")).not.toBe("");
  });

  it("refuses to probe a kernel that does not exist", async () => {
    const qemu = await fakeQemu("exit 0");
    const err = await probeAccel({ ...(await options(qemu)), kernelPath: join(dir, "nope") }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SkiffError);
    expect((err as SkiffError).code).toBe("ERR_SKIFF_KERNEL_MISSING");
  });
});

describe("accel helpers", () => {
  it("builds a key from host kernel, QEMU version and guest kernel", () => {
    expect(accelCacheKey({ hostRelease: "6.1", qemuVersion: "7.2.22", kernelPath: "/k", kernelStamp: "10:20" })).toBe(
      "host=6.1;qemu=7.2.22;kernel=/k@10:20",
    );
  });

  it("ignores a cache with another key or a torn file", async () => {
    const verdict: AccelVerdict = { accel: "kvm", reason: "r", kvmDevice: true, probedAt: "t", key: "k1" };
    await writeFile(join(dir, accelCacheFile), JSON.stringify(verdict));
    expect(await readCachedVerdict(dir, "k1")).toEqual(verdict);
    expect(await readCachedVerdict(dir, "k2")).toBeUndefined();
    await writeFile(join(dir, accelCacheFile), '{"accel": "kv');
    expect(await readCachedVerdict(dir, "k1")).toBeUndefined();
  });

  it("explains each probe outcome", () => {
    expect(probeReason({ ok: true, elapsedMs: 420 }, 8000)).toBe("a KVM probe boot came up in 0.4 s");
    expect(probeReason({ ok: false, kind: "timeout" }, 8000)).toBe(
      "KVM present but a probe boot did not come up within 8 s (nested/PVM host?)",
    );
    expect(probeReason({ ok: false, kind: "exited", exitCode: 1, signal: null, stderr: "" }, 8000)).toBe(
      "KVM present but QEMU ended a probe boot early (code 1)",
    );
  });

  it("reports a missing device", async () => {
    expect(await checkKvmDevice(join(dir, "kvm"))).toEqual({ ok: false, reason: `${join(dir, "kvm")} does not exist (no hardware virtualisation here)` });
  });

  it("parses QEMU's version line", () => {
    expect(parseQemuVersion("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright")).toEqual({
      version: "7.2.22",
      major: 7,
      minor: 2,
      micro: 22,
      text: "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)",
    });
    expect(() => parseQemuVersion("bash 5.2")).toThrow(SkiffError);
  });

  it("finds QEMU on PATH or says how to install it", async () => {
    const qemu = await fakeQemu("exit 0");
    expect(await findQemu({ PATH: `/nonexistent:${dir}` })).toBe(qemu);
    const err = await findQemu({ PATH: "/nonexistent" }).catch((e: unknown) => e);
    expect((err as SkiffError).code).toBe("ERR_SKIFF_QEMU_MISSING");
    expect((err as SkiffError).hint).toContain("setup.sh");
  });
});
