// What the jail costs (run: npm run bench:jail; root, after ./setup.sh).
// `skiff run --rm base true` jailed (the default: jailer, per-VM user,
// mount namespace, seccomp, cgroup, egress table) against the same command
// with SKIFF_JAIL=off (QEMU started by the jailer's detaching alone, as
// root, without any of it), alternating the two so that host load hits both
// alike. RUNS (default 5) pairs; medians and their ratio are printed. The
// goal is 1.05x or less.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { cli, median, root } from "./lib.js";

if (!existsSync(cli)) throw new Error(`no ${cli}: build first (./setup.sh or npm run build)`);
if (process.getuid?.() !== 0) throw new Error("bench:jail needs root: the jail it measures is root's");
const runs = Number(process.env.RUNS ?? 5);
const home = mkdtempSync("/tmp/skbj-");
const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_HOME: home, SKIFF_CACHE: process.env.SKIFF_CACHE ?? join(root, ".cache", "test"), SKIFF_USERNET_RESTRICT: "1" };

function run(jailed: boolean): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, [cli, "run", "--rm", "base", "true"], { env: { ...env, ...(jailed ? {} : { SKIFF_JAIL: "off" }) }, encoding: "utf8" });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`skiff run (${jailed ? "jailed" : "unjailed"}) failed: ${r.stderr}`);
  return ms;
}

try {
  // Warm the caches (kernel, base image, initramfs) outside the measurement.
  run(true);
  run(false);
  const jailed: number[] = [];
  const unjailed: number[] = [];
  for (let i = 0; i < runs; i++) {
    const first = i % 2 === 0;
    if (first) jailed.push(run(true));
    unjailed.push(run(false));
    if (!first) jailed.push(run(true));
  }
  const j = median(jailed);
  const u = median(unjailed);
  console.log(`run --rm base true, ${runs} pairs, load ${loadavg()[0]!.toFixed(2)}`);
  console.log(`  jailed   median ${j.toFixed(0)} ms  (${jailed.map((x) => x.toFixed(0)).join(", ")})`);
  console.log(`  unjailed median ${u.toFixed(0)} ms  (${unjailed.map((x) => x.toFixed(0)).join(", ")})`);
  console.log(`  jailed / unjailed = ${(j / u).toFixed(3)}x (goal <= 1.05x)`);
} finally {
  rmSync(home, { recursive: true, force: true });
}
