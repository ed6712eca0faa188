// What an idle VM costs the host (run: npm run bench:density; root, build first).
// Issue 12's density goals, each against a baseline measured in the same run:
//   1. idle RSS of a 256 MiB busybox VM (`run -d --cold base`): <= 0.5x;
//   2. idle CPU of the same VM over SAMPLE seconds: <= 0.3x.
// The baseline is skiff as it was before the density work: QEMU's own TCG
// code cache (SKIFF_TCG_CACHE_MIB=0) and skiff-init built from BASELINE_REV
// (default 2f77e84, whose agent relays looked at their idle ports 20 times
// a second each), given to skiff with SKIFF_GUEST_INIT. Both VMs run side by
// side (host load hits both alike), settle SETTLE seconds (default 20) after
// they are ready, then their QEMUs' CPU time is read over SAMPLE seconds
// (default 60; the issue's figure is over 300) and their memory at the end:
// anon (TCG's cache, QEMU's heap) and file (QEMU's binary and libraries,
// shared by every VM) from QEMU's RSS, plus the blocks its RAM file holds
// in /dev/shm (the guest's memory, whether QEMU has touched a page of it
// since it started or not: a resumed VM's QEMU maps a copy it has mostly
// not read, so RssShmem would undercount it), and PSS. A VM resumed from
// the boot snapshot (the common case: every VM after the first of its
// kind) is measured beside them for reference, and so is a cold boot on
// skiff's own kernel (`skiff kernel build`), taken from the tests' cache
// (.cache/test, where set-up builds it; KERNEL_CACHE elsewhere; built there
// first when missing, minutes; OWN_KERNEL=0 leaves it out). Last, the cold-booted VM
// fills a 64 MiB tmpfs and empties it: what its RAM file holds full and
// FREED seconds later (default 10) shows the memory the guest gives back
// (free page reporting). A private SKIFF_HOME and SKIFF_CACHE, removed at
// the end, also on failure.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cli, root } from "./lib.js";

const { ramPath } = (await import(join(root, "dist", "snapshot", "ram.js"))) as typeof import("../src/snapshot/ram.js");

if (!existsSync(cli)) throw new Error(`no ${cli}: build first (./setup.sh or npm run build)`);
const settle = Number(process.env.SETTLE ?? 20);
const sample = Number(process.env.SAMPLE ?? 60);
const baselineRev = process.env.BASELINE_REV ?? "2f77e84";
const freed = Number(process.env.FREED ?? 10);
const ownKernel = process.env.OWN_KERNEL !== "0";
const kernelCache = process.env.KERNEL_CACHE ?? join(root, ".cache", "test");

const work = mkdtempSync("/tmp/skbd-");
const home = join(work, "home");
const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_HOME: home, SKIFF_CACHE: join(work, "cache"), SKIFF_USERNET_RESTRICT: "1" };

function skiff(args: string[], extra: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(process.execPath, [cli, ...args], { env: { ...env, ...extra }, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`skiff ${args.join(" ")} exited ${r.status}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** skiff-init as it was at `rev`: its guest/*.c, compiled as the build does (scripts/postbuild.mjs). */
function buildBaselineInit(rev: string): string {
  const src = join(work, "baseline-guest");
  execFileSync("sh", ["-c", `mkdir -p ${src} && git -C ${root} archive ${rev} guest | tar -x -C ${src}`]);
  const dir = join(src, "guest");
  const sources = readdirSync(dir).filter((f) => f.endsWith(".c")).map((f) => join(dir, f));
  const out = join(work, "skiff-init-baseline");
  execFileSync("gcc", ["-Wall", "-static", "-Os", "-Wno-format-truncation", "-o", out, ...sources], { stdio: "inherit" });
  return out;
}

interface Usage {
  cpuMs: number;
  anonMiB: number;
  fileMiB: number;
  ramMiB: number;
  pssMiB: number;
}

function infoOf(name: string): { pid: number; id: string } {
  const [info] = JSON.parse(skiff(["inspect", name])) as { pid?: number; id: string }[];
  if (info?.pid === undefined) throw new Error(`${name} has no QEMU`);
  return { pid: info.pid, id: info.id };
}

/** What the VM's RAM file holds in /dev/shm, MiB. */
function ramHeld(id: string): number {
  return (statSync(ramPath(home, id)).blocks * 512) / 1024 ** 2;
}

/** utime + stime of `pid` and its threads, ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

function kib(text: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text);
  return m === null ? NaN : Number(m[1]) / 1024;
}

async function measure(vms: Map<string, { pid: number; id: string }>): Promise<Map<string, Usage>> {
  const before = new Map([...vms].map(([n, { pid }]) => [n, cpuMs(pid)]));
  await sleep(sample * 1000);
  const out = new Map<string, Usage>();
  for (const [name, { pid, id }] of vms) {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    out.set(name, {
      cpuMs: cpuMs(pid) - before.get(name)!,
      anonMiB: kib(status, "RssAnon"),
      fileMiB: kib(status, "RssFile"),
      ramMiB: ramHeld(id),
      pssMiB: kib(rollup, "Pss"),
    });
  }
  return out;
}

try {
  const baselineInit = buildBaselineInit(baselineRev);
  const before = { SKIFF_TCG_CACHE_MIB: "0", SKIFF_GUEST_INIT: baselineInit };
  // The cache is new: `now` boots (the first of its kind) and saves the boot snapshot `resumed` starts from.
  skiff(["run", "-d", "--name", "now", "base"]);
  skiff(["run", "-d", "--name", "before", "--cold", "base"], before);
  skiff(["run", "-d", "--name", "resumed", "base"]);
  if (ownKernel) {
    const built = JSON.parse(skiff(["kernel", "build", "--json"], { SKIFF_CACHE: kernelCache })) as { id: string };
    cpSync(join(kernelCache, "kernels", "built", built.id), join(env.SKIFF_CACHE!, "kernels", "built", built.id), { recursive: true });
    skiff(["run", "-d", "--name", "own", "--cold", "--kernel", built.id, "base"]);
  }
  await sleep(settle * 1000);
  const vms = new Map(["before", "now", "resumed", ...(ownKernel ? ["own"] : [])].map((n) => [n, infoOf(n)]));
  const u = await measure(vms);
  const b = u.get("before")!;
  const n = u.get("now")!;
  const rss = (x: Usage) => x.anonMiB + x.fileMiB + x.ramMiB;
  const row = (name: string, x: Usage) =>
    `  ${name.padEnd(30)} ${`${Math.round(rss(x))} MiB`.padStart(8)} (anon ${Math.round(x.anonMiB)}, file ${Math.round(x.fileMiB)}, guest RAM ${Math.round(x.ramMiB)}; PSS ${Math.round(x.pssMiB)})   CPU ${(x.cpuMs / 1000).toFixed(2)} s = ${((x.cpuMs / (sample * 1000)) * 100).toFixed(2)} % of a core`;
  console.log(`\nIdle 256 MiB busybox VM, ${settle} s settled, ${sample} s sampled (load ${loadavg()[0]!.toFixed(2)}):`);
  console.log(row(`before (${baselineRev}, QEMU's cache)`, b));
  console.log(row("now, cold boot", n));
  console.log(row("now, resumed from boot snapshot", u.get("resumed")!));
  const own = u.get("own");
  if (own !== undefined) console.log(row("now, cold boot, skiff's kernel", own));
  console.log(
    `  idle RSS: ${(rss(n) / rss(b)).toFixed(2)}x before (goal <= 0.5x); PSS ${(n.pssMiB / b.pssMiB).toFixed(2)}x; resumed ${(rss(u.get("resumed")!) / rss(b)).toFixed(2)}x${own === undefined ? "" : `; cold on skiff's kernel ${(rss(own) / rss(b)).toFixed(2)}x`}`,
  );
  console.log(`  idle CPU: ${(n.cpuMs / b.cpuMs).toFixed(2)}x before (goal <= 0.3x)`);

  const { id } = vms.get("now")!;
  const idle = ramHeld(id);
  skiff(["exec", "now", "sh", "-c", "mkdir -p /run/fill && mount -t tmpfs tmpfs /run/fill && dd if=/dev/zero of=/run/fill/f bs=1M count=64 2>/dev/null"]);
  const full = ramHeld(id);
  skiff(["exec", "now", "sh", "-c", "rm /run/fill/f && umount /run/fill"]);
  await sleep(freed * 1000);
  console.log(`  memory given back: the cold VM's RAM file ${Math.round(idle)} MiB idle, ${Math.round(full)} MiB with 64 MiB in a tmpfs, ${Math.round(ramHeld(id))} MiB ${freed} s after emptying it`);
} finally {
  spawnSync(process.execPath, [cli, "rm", "-f", "before", "now", "resumed", "own"], { env, stdio: "ignore" });
  rmSync(work, { recursive: true, force: true });
}
