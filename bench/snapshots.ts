// What memory snapshots buy (run: npm run bench:snapshots; root, build first).
// Each figure against a baseline measured in the same run, with the goal
// from issue 11:
//   1. `skiff run --rm base true`, which starts from base's boot snapshot,
//      and `skiff run --rm --from SNAP true` (SNAP: a snapshot of an idle
//      base VM), against raw QEMU booting the same kernel with the same
//      initrd (the one skiff gave the snapshotted VM) to an /init that
//      powers off at once: <= 0.5x; `run --cold` (a boot) for reference;
//   2. to the first exec: `skiff restore SNAP` + `skiff exec NEW true`, and
//      `skiff start VM` + `skiff exec VM true` of a VM stopped with
//      --hibernate, each against `skiff run -d --cold base` + `skiff exec VM
//      true`: <= 0.15x;
//   3. `skiff fork VM -n 4` against one `skiff run -d --cold base`: <= 0.5x;
//   4. memory of 4 forks against 4 VMs booted with --cold, 5 s idle: <= 0.4x;
//   5. how long the guest is paused by `skiff snapshot create` of a 256 MiB
//      VM (SnapshotInfo.pausedMs): <= 150 ms.
// Figure 2 is measured again in process, through the library (`skiff serve`'s
// and a program's path), where no side pays a CLI start.
// Timings are of the CLI as a user types it (Node's start included), taking
// turns so that host load hits every side alike; RUNS (default 3) rounds,
// medians. A private SKIFF_HOME and SKIFF_CACHE (boot snapshots live in the
// cache, and a shared one's are other homes' too), both removed at the end
// with every VM and snapshot, also on failure; a fresh cache costs a few
// seconds before the first figure (the kernel, base image and initramfs).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cli, median, root, time } from "./lib.js";
import { cpio, powerOffInit, rawBoot } from "./raw-boot.mjs";

if (!existsSync(cli)) throw new Error(`no ${cli}: build first (./setup.sh or npm run build)`);
if (process.getuid?.() !== 0) throw new Error("bench:snapshots needs root: skiff jails its QEMUs as root");
const runs = Number(process.env.RUNS ?? 3);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`RUNS must be a positive whole number, not ${process.env.RUNS}`);
const idleMs = 5_000;
const forks = 4;

/** Short: unix socket paths under it must fit in 107 bytes. */
const home = mkdtempSync("/tmp/skbs-");
const cache = join(home, "cache");
const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_HOME: home, SKIFF_CACHE: cache, SKIFF_USERNET_RESTRICT: "1" };
delete env.SKIFF_BOOT_SNAPSHOTS;
const { Skiff } = (await import(join(root, "dist", "index.js"))) as typeof import("../src/index.js");
const { ramDir, ramPath } = (await import(join(root, "dist", "snapshot", "ram.js"))) as typeof import("../src/snapshot/ram.js");

function skiff(args: string[]): string {
  const r = spawnSync(process.execPath, [cli, ...args], { env, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`skiff ${args.join(" ")} exited ${r.status}\n${r.stdout}${r.stderr}${r.error ? String(r.error) : ""}`);
  return r.stdout;
}
const timed = (args: string[]): number => time(() => skiff(args));
const removeVms = (names: string[]): void => void skiff(["rm", "-f", ...names]);

interface Figure {
  name: string;
  value: number;
  baseline: number;
  goal: number;
}
const figures: Figure[] = [];
const list = (xs: readonly number[]) => xs.map((x) => x.toFixed(0)).join(", ");

/** Print one figure: medians of the samples, their ratio and the goal. */
function ratio(name: string, samples: readonly number[], baseName: string, base: readonly number[], goal: number): void {
  const value = median(samples);
  const baseline = median(base);
  figures.push({ name, value, baseline, goal });
  console.log(`  ${name}: median ${value.toFixed(0)} ms (${list(samples)})`);
  console.log(`    vs ${baseName}: median ${baseline.toFixed(0)} ms (${list(base)})`);
  console.log(`    = ${(value / baseline).toFixed(2)}x (goal <= ${goal}x)`);
}

/** Each step once per round, each round starting one step further on; a step is told its round. */
function rotate(steps: readonly ((round: number) => void)[]): void {
  for (let i = 0; i < runs; i++) for (let j = 0; j < steps.length; j++) steps[(i + j) % steps.length]!(i);
}

/** Two CLI calls one after the other (a verb, then the first exec): their sum, and each kept for the breakdown. */
function twoSteps(first: string[], then: string[], into: { total: number[]; first: number[]; then: number[] }): void {
  const a = timed(first);
  const b = timed(then);
  into.first.push(a);
  into.then.push(b);
  into.total.push(a + b);
}
const steps = () => ({ total: [] as number[], first: [] as number[], then: [] as number[] });
const breakdown = (what: string, s: ReturnType<typeof steps>, verb: string) =>
  console.log(`    (${what}: ${verb} ${median(s.first).toFixed(0)} ms + exec ${median(s.then).toFixed(0)} ms, medians)`);

interface Memory {
  /** QEMU's resident memory other than shared memory (RssAnon + RssFile), KiB. */
  qemu: number;
  /** Blocks the RAM files hold in /dev/shm, KiB: the guests' memory, mapped by QEMU or not; a sealed copy forks share, once. */
  ram: number;
  /** QEMU's VmRSS, for reference: it counts the pages of the RAM file that QEMU has touched (RssShmem). */
  vmRss: number;
}

/**
 * What a set of VMs holds in memory. Each VM's QEMU is its only process
 * (bench/run.mjs, figure 3). Guest RAM is a file in /dev/shm: counted by
 * the file's blocks and left out of QEMU's RSS (RssShmem), so it counts once.
 * Forks map one sealed memfd of their snapshot's RAM privately (the pages
 * a fork wrote are its QEMU's RssAnon): counted by its blocks, once for all.
 */
function memoryOf(names: string[]): Memory {
  const infos = JSON.parse(skiff(["inspect", ...names])) as { id: string; pid?: number }[];
  const m: Memory = { qemu: 0, ram: 0, vmRss: 0 };
  const memfds = new Set<number>();
  for (const info of infos) {
    if (info.pid === undefined) throw new Error(`VM ${info.id} has no QEMU`);
    const status = readFileSync(`/proc/${info.pid}/status`, "utf8");
    const field = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    m.qemu += field("RssAnon") + field("RssFile");
    m.vmRss += field("VmRSS");
    if (existsSync(ramPath(home, info.id))) {
      m.ram += (statSync(ramPath(home, info.id)).blocks * 512) / 1024;
      continue;
    }
    for (const fd of readdirSync(`/proc/${info.pid}/fd`)) {
      const link = readlinkSync(`/proc/${info.pid}/fd/${fd}`);
      if (!link.startsWith("/memfd:skiff-ram")) continue;
      const st = statSync(`/proc/${info.pid}/fd/${fd}`);
      if (!memfds.has(st.ino)) m.ram += (st.blocks * 512) / 1024;
      memfds.add(st.ino);
    }
  }
  return m;
}
const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;

try {
  console.log(`snapshots, ${runs} rounds, load ${readFileSync("/proc/loadavg", "utf8").trim()}`);
  // Fill the cache (kernel, base image, initramfs, base's boot snapshot) outside the measurement.
  skiff(["run", "--rm", "base", "true"]);
  const facts = await new Skiff({ home, cacheDir: cache }).hostFacts();

  // The VM every snapshot is taken of, idle for a while first; forks are of it too.
  skiff(["run", "-d", "--cold", "--name", "src", "base"]);
  const src = (JSON.parse(skiff(["inspect", "src"])) as { dir: string; memoryMiB: number }[])[0]!;
  await sleep(idleMs);
  skiff(["snapshot", "create", "src", "--name", "idle"]);

  // ---- 1. run --rm (from the boot snapshot, from SNAP, cold) vs raw QEMU to /init + power-off
  const initrd = join(home, "raw-initrd");
  writeFileSync(initrd, Buffer.concat([readFileSync(join(src.dir, "initrd.img")), cpio(powerOffInit("/skiff/bin/busybox"))]));
  const raw: number[] = [];
  const runBoot: number[] = [];
  const runFrom: number[] = [];
  const runCold: number[] = [];
  rotate([
    () => raw.push(rawBoot(facts, initrd)),
    () => runBoot.push(timed(["run", "--rm", "base", "true"])),
    () => runFrom.push(timed(["run", "--rm", "--from", "idle", "true"])),
    () => runCold.push(timed(["run", "--rm", "--cold", "base", "true"])),
  ]);
  console.log(`\n1. boot to a command and back (raw: the same kernel and initrd to an /init that powers off)`);
  ratio("run --rm base true (boot snapshot)", runBoot, "raw QEMU", raw, 0.5);
  ratio("run --rm --from SNAP true", runFrom, "raw QEMU", raw, 0.5);
  console.log(`  (run --rm --cold base true: median ${median(runCold).toFixed(0)} ms (${list(runCold)}), ${(median(runCold) / median(raw)).toFixed(2)}x raw)`);

  // ---- 2, 3. to the first exec; fork -n 4
  const coldFirst = steps();
  const restoreFirst = steps();
  const startFirst = steps();
  const hibernate: number[] = [];
  const fork: number[] = [];
  rotate([
    (i) => {
      twoSteps(["run", "-d", "--cold", "--name", `cold-${i}`, "base"], ["exec", `cold-${i}`, "true"], coldFirst);
      // Hibernated, then woken: the same VM.
      hibernate.push(timed(["stop", "--hibernate", `cold-${i}`]));
      twoSteps(["start", `cold-${i}`], ["exec", `cold-${i}`, "true"], startFirst);
      removeVms([`cold-${i}`]);
    },
    (i) => {
      twoSteps(["restore", "idle", "--name", `rest-${i}`], ["exec", `rest-${i}`, "true"], restoreFirst);
      removeVms([`rest-${i}`]);
    },
    (i) => {
      fork.push(timed(["fork", "src", "-n", String(forks), "--name", `fork-${i}`]));
      removeVms(Array.from({ length: forks }, (_, k) => `fork-${i}-${k + 1}`));
      skiff(["snapshot", "prune"]);
    },
  ]);
  const coldName = "run -d --cold base";
  console.log(`\n2. to the first exec (the two CLI calls, one after the other)`);
  ratio("restore SNAP + exec true", restoreFirst.total, `${coldName} + exec true`, coldFirst.total, 0.15);
  breakdown("restore", restoreFirst, "restore");
  ratio("start (hibernated) + exec true", startFirst.total, `${coldName} + exec true`, coldFirst.total, 0.15);
  breakdown("start", startFirst, "start");
  breakdown("cold", coldFirst, "run -d --cold");
  console.log(`    (stop --hibernate itself: median ${median(hibernate).toFixed(0)} ms (${list(hibernate)}))`);
  console.log(`\n3. ${forks} live clones`);
  ratio(`fork -n ${forks}`, fork, `one ${coldName}`, coldFirst.first, 0.5);

  // ---- 2, in process: the same through the library, as `skiff serve` (and the SDK through it) or a program
  // using skiff's API does it: one Skiff, its modules loaded by a round not counted, no CLI start on either side.
  process.env.SKIFF_USERNET_RESTRICT = "1";
  delete process.env.SKIFF_BOOT_SNAPSHOTS;
  const lib = new Skiff({ home, cacheDir: cache });
  const libCold = steps();
  const libRestore = steps();
  const libStart = steps();
  const execTrue = async (name: string) => {
    const r = await lib.vms.exec(name, ["true"]);
    if (r.code !== 0) throw new Error(`exec true in ${name} exited ${r.code}`);
  };
  const inProcess = async (first: () => Promise<unknown>, name: string, into: ReturnType<typeof steps> | undefined) => {
    const a = performance.now();
    await first();
    const b = performance.now();
    await execTrue(name);
    const c = performance.now();
    into?.first.push(b - a);
    into?.then.push(c - b);
    into?.total.push(c - a);
  };
  const libRounds = [
    async (i: number, count: boolean) => {
      const name = `lib-cold-${i}`;
      await inProcess(() => lib.vms.run({ image: "base", name }, { detach: true, cold: true }), name, count ? libCold : undefined);
      await lib.vms.stop(name, { hibernate: true });
      await inProcess(() => lib.vms.start(name), name, count ? libStart : undefined);
      await lib.vms.remove(name, { force: true });
    },
    async (i: number, count: boolean) => {
      const name = `lib-rest-${i}`;
      await inProcess(() => lib.snapshots.restore("idle", { name }), name, count ? libRestore : undefined);
      await lib.vms.remove(name, { force: true });
    },
  ];
  for (const round of libRounds) await round(-1, false);
  for (let i = 0; i < runs; i++) for (let j = 0; j < libRounds.length; j++) await libRounds[(i + j) % libRounds.length]!(i, true);
  const libColdName = "run -d --cold + exec true";
  console.log(`\n2, in process (the library: one Skiff, no CLI start)`);
  ratio("restore SNAP + exec true, in process", libRestore.total, libColdName, libCold.total, 0.15);
  breakdown("restore", libRestore, "restore");
  ratio("start (hibernated) + exec true, in process", libStart.total, libColdName, libCold.total, 0.15);
  breakdown("start", libStart, "start");
  breakdown("cold", libCold, "run -d --cold");

  // ---- 4. memory of 4 forks vs 4 cold-booted VMs
  const forkNames = Array.from({ length: forks }, (_, i) => `mem-fork-${i + 1}`);
  const coldNames = Array.from({ length: forks }, (_, i) => `mem-cold-${i + 1}`);
  skiff(["fork", "src", "-n", String(forks), "--name", "mem-fork"]);
  await sleep(idleMs);
  const forked = memoryOf(forkNames);
  removeVms(forkNames);
  skiff(["snapshot", "prune"]);
  for (const name of coldNames) skiff(["run", "-d", "--cold", "--name", name, "base"]);
  await sleep(idleMs);
  const booted = memoryOf(coldNames);
  removeVms(coldNames);
  const total = (m: Memory) => m.qemu + m.ram;
  console.log(`\n4. memory of ${forks} VMs of ${src.memoryMiB} MiB after ${idleMs / 1000} s idle (QEMU RssAnon+RssFile, plus the RAM files' blocks in /dev/shm, or the forks' shared copy's)`);
  for (const [what, m] of [[`${forks} forks`, forked], [`${forks} cold VMs`, booted]] as const) {
    console.log(`  ${what.padEnd(11)} ${mib(total(m))}: QEMU ${mib(m.qemu)} + RAM files ${mib(m.ram)} (QEMU VmRSS ${mib(m.vmRss)})`);
  }
  figures.push({ name: `memory of ${forks} forks`, value: total(forked), baseline: total(booted), goal: 0.4 });
  console.log(`  = ${(total(forked) / total(booted)).toFixed(2)}x (goal <= 0.4x)`);

  // ---- 5. the pause of a snapshot
  const paused: number[] = [];
  const took: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const info = JSON.parse(skiff(["--json", "snapshot", "create", "src", "--name", `pause-${i}`])) as { pausedMs: number };
    took.push(performance.now() - t);
    paused.push(info.pausedMs);
    skiff(["snapshot", "rm", `pause-${i}`]);
  }
  console.log(`\n5. snapshot create of the idle ${src.memoryMiB} MiB VM`);
  console.log(`  guest paused: median ${median(paused).toFixed(0)} ms (${list(paused)}) (goal <= 150 ms)`);
  console.log(`  the command: median ${median(took).toFixed(0)} ms (${list(took)})`);

  console.log(`\nsummary (load ${loadavg().map((x) => x.toFixed(2)).join(" ")})`);
  for (const f of figures) console.log(`  ${(f.value / f.baseline).toFixed(2)}x  ${f.name} (goal <= ${f.goal}x)`);
  console.log(`  ${median(paused).toFixed(0)} ms  guest paused by snapshot create (goal <= 150 ms)`);
} finally {
  const left = spawnSync(process.execPath, [cli, "ps", "-aq"], { env, encoding: "utf8" }).stdout.split("\n").filter((n) => n !== "");
  if (left.length > 0) spawnSync(process.execPath, [cli, "rm", "-f", ...left], { env, stdio: "ignore" });
  spawnSync(process.execPath, [cli, "snapshot", "prune", "-a"], { env, stdio: "ignore" });
  rmSync(ramDir(home), { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
}
