/**
 * skiff's own kernel (`skiff kernel build`), for real: built from Debian's
 * linux-source once per machine into the shared test cache (set-up starts
 * that build in the background at the lowest priority; this file waits for
 * it through the build's lock, and the VM suite runs it last), then booted:
 * the core lifecycle, a 64 MiB VM, a private network, a bind mount and a
 * named volume, and choosing the default kernel.
 */
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Harness } from "./harness.js";

// A private network's multicast stays in a namespace of the test's own.
const h = Harness.inNewNetns("skt-kern");
const shared = mkdtempSync(join(tmpdir(), "skiff-kernel-share-"));
let built: { id: string; version: string; buildSeconds: number; cached: boolean };

beforeAll(async () => {
  const started = Date.now();
  built = JSON.parse(await h.ok(["kernel", "build", "--json"], { timeoutMs: 90 * 60_000 })) as typeof built;
  console.log(`skiff kernel build: ${built.id} ${built.version}, ${built.cached ? "cached" : "built"} (${built.buildSeconds} s to build; waited ${Math.round((Date.now() - started) / 1000)} s here)`);
}, 90 * 60_000);

afterAll(async () => {
  await h.cleanup();
  rmSync(shared, { recursive: true, force: true });
});

describe("skiff's own kernel", () => {
  it("is listed beside Debian's, which stays the default", async () => {
    const kernels = JSON.parse(await h.ok(["kernel", "ls", "--json"])) as { name: string; kind: string; version: string; default: boolean }[];
    expect(kernels[0]).toMatchObject({ name: "debian", kind: "debian", default: true });
    expect(kernels.find((k) => k.name === built.id)).toMatchObject({ kind: "built", version: built.version, default: false });
    const table = await h.ok(["kernel", "ls"]);
    expect(table).toMatch(/^NAME\s+VERSION\s+SIZE\s+BUILT\s+USED BY$/m);
    expect(table).toMatch(/^\* debian /m);
  });

  it("boots a VM with no modules: exec, stop and start again, and its memory need is below 64 MiB", async () => {
    await h.ok(["run", "-d", "--name", "k1", "--kernel", "skiff", "base"], { timeoutMs: 300_000 });
    expect(await h.ok(["exec", "k1", "uname", "-r"])).toBe(`${built.version}\n`);
    // Everything is built in: the kernel has no module support at all.
    const modules = await h.run(["exec", "k1", "cat", "/proc/modules"]);
    expect(modules.code).not.toBe(0);
    await h.ok(["stop", "k1"]);
    await h.ok(["start", "k1"], { timeoutMs: 300_000 });
    expect(await h.ok(["exec", "k1", "sh", "-c", "echo $((6*7))"])).toBe("42\n");
    const [info] = JSON.parse(await h.ok(["inspect", "k1"])) as { kernel?: { version: string; path: string } }[];
    expect(info?.kernel?.path).toContain(`/kernels/built/${built.id}/vmlinux`);
    // Only the memory lines: other checks (egress in this test's network namespace) are not this test's.
    const doctor = (await h.run(["doctor"])).stdout;
    expect(doctor).toMatch(new RegExp(`boot memory .*skiff's ${built.version.replace(/\./g, "\\.")} \\(${built.id}\\) needs \\d+ MiB`));
    expect(doctor).toMatch(/vm memory\s+each at least what its kernel needs to boot: k1 256 MiB >= (\d+)/);
    expect(Number(/k1 256 MiB >= (\d+)/.exec(doctor)?.[1])).toBeLessThanOrEqual(64);
  });

  it("boots a 64 MiB VM, which runs commands", async () => {
    const started = Date.now();
    const out = await h.ok(["run", "--rm", "--cold", "--kernel", "skiff", "-m", "64", "base", "sh", "-c", "grep MemTotal /proc/meminfo; echo ok"], { timeoutMs: 300_000 });
    console.log(`64 MiB VM on skiff's kernel: run --rm --cold took ${Date.now() - started} ms; ${out.split("\n")[0]}`);
    expect(out).toMatch(/^MemTotal:\s+\d+ kB\nok\n$/);
    await h.ok(["run", "-d", "--name", "small", "--kernel", "skiff", "-m", "64", "base"], { timeoutMs: 300_000 });
    expect(await h.ok(["exec", "small", "sh", "-c", "dd if=/dev/zero bs=1M count=16 2>/dev/null | wc -c"])).toBe("16777216\n");
    await h.ok(["rm", "-f", "small"]);
  });

  it("serves a private network, a bind mount and a named volume", async () => {
    await h.ok(["network", "create", "klan"]);
    mkdirSync(join(shared, "in"));
    writeFileSync(join(shared, "in", "from-host"), "hello guest\n");
    const machine = ["--kernel", "skiff", "--network", "klan"];
    await h.ok(["run", "-d", "--name", "ka", ...machine, "-v", `${join(shared, "in")}:/mnt/host`, "-v", "kvol:/data", "base"], { timeoutMs: 300_000 });
    await h.ok(["run", "-d", "--name", "kb", ...machine, "base"], { timeoutMs: 300_000 });
    expect(await h.ok(["exec", "ka", "ping", "-c", "2", "-W", "5", "kb"])).toMatch(/2 packets received/);
    expect(await h.ok(["exec", "ka", "cat", "/mnt/host/from-host"])).toBe("hello guest\n");
    await h.ok(["exec", "ka", "sh", "-c", "echo hello host > /mnt/host/from-guest && echo kept > /data/f && sync"]);
    expect(readFileSync(join(shared, "in", "from-guest"), "utf8")).toBe("hello host\n");
    await h.ok(["rm", "-f", "ka"]);
    expect(await h.ok(["run", "--rm", "--kernel", "skiff", "--network", "none", "-v", "kvol:/data", "base", "cat", "/data/f"], { timeoutMs: 300_000 })).toBe("kept\n");
    await h.ok(["rm", "-f", "kb"]);
  });

  it("becomes the default with kernel use, and is not removed while VMs boot it", async () => {
    expect(await h.ok(["kernel", "use", built.id.slice(0, 6)])).toBe(`${built.id}  ${built.version}\n`);
    await h.ok(["run", "-d", "--name", "k2", "base"], { timeoutMs: 300_000 });
    expect(await h.ok(["exec", "k2", "uname", "-r"])).toBe(`${built.version}\n`);
    expect(await h.ok(["kernel", "use", "debian"])).toMatch(/^debian  /);
    const rm = await h.run(["kernel", "rm", built.id]);
    expect(rm.code).toBe(4);
    expect(rm.stderr).toContain(`ERR_SKIFF_KERNEL_IN_USE (KERNEL): kernel ${built.id} is booted by VMs k1, k2\n`);
    const unknown = await h.run(["run", "--rm", "--kernel", "ffff", "base", "true"]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain("ERR_SKIFF_KERNEL_NOT_FOUND (--kernel): no built kernel ffff\n  hint: `skiff kernel ls` lists them");
    await h.ok(["rm", "-f", "k1", "k2"]);
  });

  it("removes a built kernel nothing boots, and it is gone from the list", async () => {
    // A copy in a cache of this test's own: the shared one keeps the real build for other runs.
    const cache = join(shared, "cache");
    const id = "0123456789ab";
    mkdirSync(join(cache, "kernels", "built", id), { recursive: true });
    writeFileSync(join(cache, "kernels", "built", id, "vmlinux"), readFileSync(join(h.env.SKIFF_CACHE!, "kernels", "built", built.id, "vmlinux")));
    writeFileSync(join(cache, "kernels", "built", id, "kernel.json"), JSON.stringify({ ...built, id, builtAt: new Date().toISOString(), sizeBytes: 1, jobs: 2 }));
    const env = { SKIFF_CACHE: cache };
    expect(await h.ok(["kernel", "ls", "-q"], { env })).toBe(`debian\n${id}\n`);
    expect(await h.ok(["kernel", "rm", id.slice(0, 4)], { env })).toBe(`${id}\n`);
    expect(await h.ok(["kernel", "ls", "-q"], { env })).toBe("debian\n");
  });
});
