// skiff's own kernel against the Debian one (run: npm run bench:kernel; root,
// build first). Each figure against a baseline measured in the same run, the
// sides taking turns, RUNS (default 3) rounds, medians, the CLI timed as a
// user types it; goals from issue 12:
//   1. `skiff run --rm --cold base true` on the Debian kernel against raw
//      QEMU booting the Debian kernel to an /init that powers off: <= 1.3x;
//   2. the same on skiff's kernel against the same raw Debian boot: <= 0.6x;
//   3. a 64 MiB VM on skiff's kernel: `run --rm --cold -m 64 base true`,
//      printed (the Debian kernel needs 144 MiB);
//   and for reference raw QEMU booting skiff's kernel, and the kernels'
//   sizes and boot memory.
// `--cold`: boots, not boot snapshots. A private SKIFF_HOME and SKIFF_CACHE,
// removed at the end; skiff's kernel is taken from the tests' cache
// (.cache/test, where set-up builds it; KERNEL_CACHE elsewhere), built there
// first when missing (minutes).
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { cli, median, root, time } from "./lib.js";
import { cpio, powerOffInit, rawBoot } from "./raw-boot.mjs";

if (!existsSync(cli)) throw new Error(`no ${cli}: build first (./setup.sh or npm run build)`);
if (process.getuid?.() !== 0) throw new Error("bench:kernel needs root: skiff jails its QEMUs as root");
const runs = Number(process.env.RUNS ?? 3);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`RUNS must be a positive whole number, not ${process.env.RUNS}`);
const kernelCache = process.env.KERNEL_CACHE ?? join(root, ".cache", "test");

const home = mkdtempSync("/tmp/skbk-");
const cache = join(home, "cache");
const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_HOME: home, SKIFF_CACHE: cache, SKIFF_USERNET_RESTRICT: "1" };

function skiff(args: string[], extra: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(process.execPath, [cli, ...args], { env: { ...env, ...extra }, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`skiff ${args.join(" ")} exited ${r.status}\n${r.stdout}${r.stderr}${r.error ? String(r.error) : ""}`);
  return r.stdout;
}

const list = (xs: readonly number[]) => xs.map((x) => x.toFixed(0)).join(", ");
function report(name: string, samples: readonly number[], baseName: string, base: readonly number[], goal?: number): void {
  console.log(`  ${name}: median ${median(samples).toFixed(0)} ms (${list(samples)})`);
  console.log(`    vs ${baseName}: median ${median(base).toFixed(0)} ms (${list(base)})`);
  console.log(`    = ${(median(samples) / median(base)).toFixed(2)}x${goal === undefined ? "" : ` (goal <= ${goal}x)`}`);
}

try {
  console.log(`skiff's kernel, from ${kernelCache} (built there now if missing)`);
  const built = JSON.parse(skiff(["kernel", "build", "--json"], { SKIFF_CACHE: kernelCache })) as { id: string; version: string; buildSeconds: number; jobs: number };
  cpSync(join(kernelCache, "kernels", "built", built.id), join(cache, "kernels", "built", built.id), { recursive: true });
  console.log(`  ${built.id} ${built.version}: built in ${built.buildSeconds} s with ${built.jobs} jobs`);

  // The floors' initrds: what skiff gives a VM on each kernel, with an /init that powers off.
  // (A VM's initrd is written when it starts.)
  skiff(["run", "-d", "--cold", "--name", "deb", "base"]);
  skiff(["run", "-d", "--cold", "--name", "own", "--kernel", "skiff", "base"]);
  const infos = JSON.parse(skiff(["inspect", "deb", "own"])) as { dir: string; kernel: { path: string } }[];
  const { Skiff } = (await import(join(root, "dist", "index.js"))) as typeof import("../src/index.js");
  const facts = await new Skiff({ home, cacheDir: cache }).hostFacts();
  const floor = infos.map((info, i) => {
    const initrd = join(home, `raw-initrd-${i}`);
    writeFileSync(initrd, Buffer.concat([readFileSync(join(info.dir, "initrd.img")), cpio(powerOffInit("/skiff/bin/busybox"))]));
    return { facts: { ...facts, vmlinuxPath: info.kernel.path }, initrd };
  });
  skiff(["rm", "-f", "deb", "own"]);
  const sizes = JSON.parse(skiff(["kernel", "ls", "--json"])) as { name: string; sizeBytes: number }[];
  console.log(`  vmlinux: Debian ${(sizes[0]!.sizeBytes / 2 ** 20).toFixed(1)} MiB, skiff's ${(sizes[1]!.sizeBytes / 2 ** 20).toFixed(1)} MiB`);

  const rawDebian: number[] = [];
  const rawOwn: number[] = [];
  const coldDebian: number[] = [];
  const coldOwn: number[] = [];
  const small: number[] = [];
  const steps = [
    () => rawDebian.push(rawBoot(floor[0]!.facts, floor[0]!.initrd)),
    () => rawOwn.push(rawBoot(floor[1]!.facts, floor[1]!.initrd)),
    () => coldDebian.push(time(() => skiff(["run", "--rm", "--cold", "base", "true"]))),
    () => coldOwn.push(time(() => skiff(["run", "--rm", "--cold", "--kernel", "skiff", "base", "true"]))),
    () => small.push(time(() => skiff(["run", "--rm", "--cold", "--kernel", "skiff", "-m", "64", "base", "true"]))),
  ];
  // Once each to warm the caches (base image, initramfs), then the rounds, each starting one step further on.
  for (const step of steps) step();
  for (const xs of [rawDebian, rawOwn, coldDebian, coldOwn, small]) xs.length = 0;
  for (let i = 0; i < runs; i++) for (let j = 0; j < steps.length; j++) steps[(i + j) % steps.length]!();

  console.log(`\n(${runs} rounds, load ${loadavg()[0]!.toFixed(2)})`);
  console.log("1. cold boot to a command and back on the Debian kernel");
  report("skiff run --rm --cold base true", coldDebian, "raw QEMU, Debian kernel, /init powers off", rawDebian, 1.3);
  console.log("2. the same on skiff's kernel");
  report("skiff run --rm --cold --kernel skiff base true", coldOwn, "raw QEMU, Debian kernel, /init powers off", rawDebian, 0.6);
  report("raw QEMU, skiff's kernel", rawOwn, "raw QEMU, Debian kernel", rawDebian);
  console.log("3. a 64 MiB VM on skiff's kernel");
  console.log(`  skiff run --rm --cold --kernel skiff -m 64 base true: median ${median(small).toFixed(0)} ms (${list(small)})`);
} finally {
  spawnSync(process.execPath, [cli, "rm", "-f", "deb", "own"], { env, stdio: "ignore" });
  rmSync(home, { recursive: true, force: true });
}
