/**
 * Layers end to end, offline: `debian` bootstrapped by mmdebstrap from the
 * tests' loopback Debian repository, [base, redis] built on it in a build VM
 * whose apt reaches that repository through a guestfwd (restrict=on), a VM
 * booted from the result, a cache hit without a VM, and a failing `run`
 * that leaves nothing behind.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { readdirSync, readFileSync, existsSync } from "node:fs";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Harness } from "./harness.js";
import { aptRepoDir, serveAptRepo } from "./apt-repo.js";

describe("layer builds", () => {
  const h = new Harness();
  let repo: Awaited<ReturnType<typeof serveAptRepo>>;
  let layersDir: string;
  let image = "";

  beforeAll(async () => {
    repo = await serveAptRepo();
    layersDir = await mkdtemp(join(tmpdir(), "skiff-layers-"));
    await mkdir(join(layersDir, "broken"));
    await writeFile(join(layersDir, "broken", "layer.yml"), "run:\n  - echo before\n  - echo doomed >&2; exit 7\n");
    for (const [name, run] of [["sleeper", "echo sleeping; sleep 600"], ["quick", "echo quick"]]) {
      await mkdir(join(layersDir, name));
      await writeFile(join(layersDir, name, "layer.yml"), `run:\n  - ${run}\n`);
    }
  });
  afterAll(async () => {
    if (process.env.SKIFF_KEEP_LOGS) console.log(h.consoleLogs());
    await h.cleanup();
    await repo?.close();
    await rm(layersDir, { recursive: true, force: true });
  });

  it("bootstraps debian from the loopback repository", async () => {
    const t0 = performance.now();
    const out = await h.ok(["image", "bootstrap", "--mirror", repo.mirror], { timeoutMs: 600_000 });
    console.log(`bootstrap: ${((performance.now() - t0) / 1000).toFixed(1)} s (${out.trim()})`);
    expect(out).toMatch(/^debian /);
    // Dated by the repository's Release, so the same packages make the same image (and its layer builds stay cached).
    const date = /^Date: (.+)$/m.exec(readFileSync(join(aptRepoDir, "dists", "bookworm", "Release"), "utf8"))![1]!;
    expect(out).toContain(`; dated ${new Date(date).toISOString().replace(".000Z", "Z")};`);
  }, 600_000);

  it("builds [base, redis] on it, and the image boots with both", async () => {
    const t0 = performance.now();
    // --force: `debian` is the same image every run (a reproducible bootstrap), so an earlier run's build is in the shared cache.
    const r = await h.run(["layer", "build", "base", "redis", "--apt-mirror", repo.mirror, "--force"], { timeoutMs: 900_000 });
    console.log(`cold build: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect(r.code, r.stderr).toBe(0);
    image = r.stdout.trim();
    expect(image).toMatch(/^skiff-layers:[0-9a-f]{12}$/);
    expect(r.stderr).toContain("[2/2] redis: packages: redis-server");
    expect(h.qemuProcessesUnderHome()).toEqual([]);
    expect(await h.ok(["ps", "-a", "-q"])).toBe("");
    // A forced build is a new disk under the same digest: an earlier run's boot snapshot of it went with the old one.
    const listed = JSON.parse(await h.ok(["image", "ls", "--json"])) as { name?: string; snapshots: unknown[] }[];
    expect(listed.find((i) => i.name === image)?.snapshots).toEqual([]);

    await h.ok(["run", "-d", "--name", "kv", image]);
    expect(await h.ok(["exec", "kv", "sh", "-c", "command -v ip iperf3 socat tcpdump"])).toMatch(/ip\n/);
    expect(await h.ok(["exec", "kv", "cat", "/etc/skiff/start.d/02-redis"])).toContain("exec setpriv");
    // skiff-init runs start.d at boot once that lands; until then start it here.
    const ping = async () => (await h.run(["exec", "kv", "redis-cli", "ping"])).stdout.trim();
    if ((await ping()) !== "PONG") await h.ok(["exec", "kv", "sh", "-c", "setsid /etc/skiff/start.d/02-redis >/dev/null 2>&1 < /dev/null &"]);
    let answer = "";
    for (let i = 0; i < 30 && answer !== "PONG"; i++) {
      answer = await ping();
      if (answer !== "PONG") await new Promise((r) => setTimeout(r, 500));
    }
    expect(answer).toBe("PONG");
    // The image keeps its own apt sources: the build's mirror was put back. They name Debian's archive: the
    // bootstrap's loopback repository is nothing inside a guest, and its port would make each bootstrap another image.
    const sources = await h.ok(["exec", "kv", "sh", "-c", "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null; true"]);
    expect(sources).toBe("deb http://deb.debian.org/debian/ bookworm main\n");
    await h.ok(["rm", "-f", "kv"]);
  }, 900_000);

  it("builds the same layers again from the cache, without a VM", async () => {
    const t0 = performance.now();
    const r = await h.run(["layer", "build", "base", "redis", "--apt-mirror", repo.mirror]);
    const secs = (performance.now() - t0) / 1000;
    console.log(`cached build: ${secs.toFixed(2)} s`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(image);
    expect(r.stderr).toContain("cached");
    expect(r.stderr).not.toContain("booting");
    expect(secs).toBeLessThan(10);
  });

  it("a failing run step is ERR_SKIFF_BUILD_FAILED and leaves no VM, QEMU or overlay", async () => {
    const r = await h.run(["--json", "layer", "build", "broken", "--path", layersDir, "--from", "debian"], { timeoutMs: 300_000 });
    expect(r.code).toBe(6);
    const err = JSON.parse(r.stderr || r.stdout).error;
    expect(err.code).toBe("ERR_SKIFF_BUILD_FAILED");
    expect(err.details).toMatchObject({ layer: "broken", step: "run", exitCode: 7 });
    expect(err.message).toContain("doomed");
    expect(existsSync(err.details.logPath)).toBe(true);
    expect(h.qemuProcessesUnderHome()).toEqual([]);
    expect(await h.ok(["ps", "-a", "-q"])).toBe("");
    expect(existsSync(join(h.home, "vms")) ? readdirSync(join(h.home, "vms")) : []).toEqual([]);
  }, 300_000);

  /** `layer build sleeper` started, once its step runs in the build VM (its VM is listed running). */
  async function buildingSleeper(): Promise<ChildProcess> {
    const child = h.spawn(["layer", "build", "sleeper", "--path", layersDir, "--from", "base"]);
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    for (let i = 0; i < 240 && !stderr.includes("sleeper: run"); i++) await new Promise((r) => setTimeout(r, 250));
    expect(stderr).toContain("sleeper: run");
    expect(await h.ok(["ps", "-q"])).toMatch(/\S/);
    return child;
  }

  // Layer images only: the first build `--from base` also adds the built-in `base` to the cache.
  const builtImages = async () => (JSON.parse(await h.ok(["image", "ls", "--json"])) as { name?: string }[]).filter((i) => i.name?.startsWith("skiff-layers:")).length;

  it("a build stopped by SIGTERM removes its build VM and keeps nothing", async () => {
    const images = await builtImages();
    const child = await buildingSleeper();
    // The build VM under TCG: its disk ignores the guest's flushes, its kernel does not randomise (engine/launch.ts, layers.ts).
    const [qemu] = h.qemuProcessesUnderHome();
    const cmdline = readFileSync(`/proc/${qemu}/cmdline`, "utf8").split("\0").join(" ");
    expect(cmdline).toContain(",cache=unsafe,");
    if (cmdline.includes("-accel tcg")) expect(cmdline).toMatch(/-append [^\n]*\bnorandmaps\b/);
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.kill("SIGTERM");
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code).toBe(143);
    expect(stderr).toContain("stopped; nothing was kept");
    expect(await h.ok(["ps", "-a", "-q"])).toBe("");
    expect(h.qemuProcessesUnderHome()).toEqual([]);
    expect(await builtImages()).toBe(images);
  }, 120_000);

  it("the build VM of a build killed outright is removed by the next build", async () => {
    const child = await buildingSleeper();
    child.kill("SIGKILL");
    await once(child, "exit");
    expect(await h.ok(["ps", "-a", "-q"])).toMatch(/\S/); // left behind: nothing could remove it
    await h.ok(["layer", "build", "quick", "--path", layersDir, "--from", "base"], { timeoutMs: 120_000 });
    expect(await h.ok(["ps", "-a", "-q"])).toBe("");
    expect(h.qemuProcessesUnderHome()).toEqual([]);
  }, 180_000);
});
