/** The base initramfs cache keeps the archives used last and drops the rest, with stale temporary files. */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ensureBaseInitramfs, pruneInitramfsCache } from "../../src/guest/initramfs.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function cache(): string {
  const dir = mkdtempSync(join(tmpdir(), "skiff-initramfs-"));
  dirs.push(dir);
  return dir;
}

/** An archive used `ageS` seconds ago. */
function put(dir: string, name: string, ageS: number, now: number): void {
  writeFileSync(join(dir, name), "x");
  const at = new Date(now - ageS * 1000);
  utimesSync(join(dir, name), at, at);
}

const archive = (i: number) => `base-${i.toString(16).padStart(16, "0")}.cpio`;

describe("pruneInitramfsCache", () => {
  it("keeps the most recently used archives and removes the others", async () => {
    const dir = cache();
    const now = Date.now();
    for (let i = 1; i <= 6; i++) put(dir, archive(i), i * 60, now);
    expect(await pruneInitramfsCache(dir, 4, now)).toEqual([archive(5), archive(6)]);
    expect(readdirSync(dir).sort()).toEqual([1, 2, 3, 4].map(archive));
    expect(await pruneInitramfsCache(dir, 4, now)).toEqual([]);
  });

  it("drops a temporary file an interrupted build left an hour ago, not one being written, and nothing it does not know", async () => {
    const dir = cache();
    const now = Date.now();
    put(dir, `${archive(1)}.tmp-123`, 7200, now);
    put(dir, `${archive(2)}.tmp-456`, 10, now);
    put(dir, "notes.txt", 7200, now);
    put(dir, archive(3), 7200, now);
    expect(await pruneInitramfsCache(dir, 4, now)).toEqual([`${archive(1)}.tmp-123`]);
    expect(readdirSync(dir).sort()).toEqual([archive(2) + ".tmp-456", archive(3), "notes.txt"].sort());
  });

  it("a missing cache directory is an empty one", async () => {
    expect(await pruneInitramfsCache(join(cache(), "none"))).toEqual([]);
  });

  it("a use refreshes an archive's mtime, and a new archive prunes the cache", { timeout: 30_000 }, async () => {
    const dir = cache();
    const archives = join(dir, "initramfs");
    mkdirSync(archives);
    const now = Date.now();
    for (let i = 1; i <= 12; i++) put(archives, archive(i), 600 + i, now);
    const made = await ensureBaseInitramfs({ kernel: undefined, cacheDir: dir, network: false });
    // Twelve kept: the one just made and the eleven used last.
    expect(readdirSync(archives).sort()).toEqual([...[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map(archive), made.slice(archives.length + 1)].sort());
    const old = new Date(now - 86_400_000);
    utimesSync(made, old, old);
    expect(await ensureBaseInitramfs({ kernel: undefined, cacheDir: dir, network: false })).toBe(made);
    expect(statSync(made).mtimeMs).toBeGreaterThan(now - 60_000);
  });

  it("VMs created at once (a project's services) share one build of a missing archive", { timeout: 30_000 }, async () => {
    const dir = cache();
    const made = await Promise.all(Array.from({ length: 4 }, () => ensureBaseInitramfs({ kernel: undefined, cacheDir: dir, network: true })));
    expect(new Set(made).size).toBe(1);
    expect(readdirSync(join(dir, "initramfs"))).toEqual([made[0]!.slice(join(dir, "initramfs").length + 1)]);
  });
});

describe("the modules an initramfs carries (resolved once per modules.dep)", () => {
  /** A Debian-like kernel whose modules.dep lists virtio_mmio with `deps`, and every .ko it names. */
  function kernel(dir: string, deps: string[]): { version: string; vmlinuzPath: string; modulesDir: string } {
    const modulesDir = join(dir, "modules");
    mkdirSync(join(modulesDir, "kernel"), { recursive: true });
    const ko = (name: string) => `kernel/${name}.ko`;
    for (const m of ["virtio_mmio", ...deps]) writeFileSync(join(modulesDir, ko(m)), `module ${m}\n`);
    writeFileSync(join(modulesDir, "modules.dep"), `${ko("virtio_mmio")}: ${deps.map(ko).join(" ")}\n${deps.map((d) => `${ko(d)}:\n`).join("")}`);
    return { version: "6.1.0-test", vmlinuzPath: join(dir, "vmlinuz"), modulesDir };
  }
  const cachedAnswers = (dir: string) => readdirSync(join(dir, "probes")).filter((f) => f.startsWith("modules-"));

  it("reads modules.dep again when it changes, and takes no cached answer that fails its check", { timeout: 30_000 }, async () => {
    const dir = cache();
    const first = await ensureBaseInitramfs({ kernel: kernel(dir, ["virtio_ring"]), cacheDir: dir, network: false });
    expect(cachedAnswers(dir)).toHaveLength(1);
    expect(await ensureBaseInitramfs({ kernel: kernel(dir, ["virtio_ring"]), cacheDir: dir, network: false })).toBe(first);

    // A new dependency (modules.dep rewritten: another size, mtime and ctime): the archive carries it.
    const second = await ensureBaseInitramfs({ kernel: kernel(dir, ["virtio_ring", "virtio_extra"]), cacheDir: dir, network: false });
    expect(second).not.toBe(first);
    expect(readFileSync(second).includes("module virtio_extra")).toBe(true);

    // A cached answer naming a file outside the modules directory is not used: the archive is the same as before.
    for (const f of cachedAnswers(dir)) writeFileSync(join(dir, "probes", f), JSON.stringify({ bootPaths: ["../../etc/passwd"], latePaths: [], netfilterPaths: [] }));
    expect(await ensureBaseInitramfs({ kernel: kernel(dir, ["virtio_ring", "virtio_extra"]), cacheDir: dir, network: false })).toBe(second);
  });
});
