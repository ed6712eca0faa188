// Projects: what `skiff up` gains by starting independent services in
// parallel, and what the layer cache saves. Run: `npm run bench:project`
// (RUNS=3 by default; medians are printed).
//
//   1. `skiff up -d` of a 4-service skiff.yml vs the same 4 VMs made with
//      `skiff run -d` one after the other (the baseline), in the same run.
//   2. `skiff build` of a service's layers with every layer cached vs cold
//      (`--no-cache`: a build VM boots and applies the layers).
//
// Guests use restricted user networking; everything is made under a
// throwaway SKIFF_HOME and removed at the end.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cli, median, root } from "./lib.js";

if (!existsSync(cli)) throw new Error(`no ${cli}: build first (./setup.sh or npm run build)`);
const runs = Number(process.env.RUNS ?? 3);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`RUNS must be a positive whole number, not ${process.env.RUNS}`);

const home = mkdtempSync("/tmp/skbp-");
const dir = mkdtempSync("/tmp/skbp-proj-");
const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_HOME: home, SKIFF_CACHE: process.env.SKIFF_CACHE ?? join(root, ".cache", "test"), SKIFF_USERNET_RESTRICT: "1" };
const services = ["a", "b", "c", "d"];

function skiff(args: string[], timeoutMs = 900_000): string {
  const r = spawnSync(process.execPath, [cli, ...args], { env, encoding: "utf8", timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`skiff ${args.join(" ")} exited ${r.status}\n${r.stdout}\n${r.stderr}${r.error ? String(r.error) : ""}`);
  return r.stdout;
}

function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

function removeAll(): void {
  const names = skiff(["ps", "-a", "-q"]).split("\n").filter((n) => n !== "");
  if (names.length > 0) skiff(["rm", "-f", ...names]);
}

const file = join(dir, "skiff.yml");
writeFileSync(file, `version: "1"\nservices:\n${services.map((s) => `  ${s}:\n    image: base\n`).join("")}`);
const buildFile = join(dir, "build.yml");
mkdirSync(join(dir, "layers", "bench"), { recursive: true });
mkdirSync(join(dir, "layers", "bench", "etc"), { recursive: true });
writeFileSync(join(dir, "layers", "bench", "etc", "bench.conf"), "answer = 42\n");
writeFileSync(join(dir, "layers", "bench", "layer.yml"), `configs:\n  - etc/bench.conf\nrun: |\n  mkdir -p /opt/bench && echo built > /opt/bench/stamp\nstart: |\n  exec sleep 100000\n`);
writeFileSync(buildFile, `version: "1"\nservices:\n  app:\n    image: base\n    layers: [bench]\n`);

try {
  // Warm the shared cache (kernel, initramfs, base image) outside the timings.
  skiff(["run", "--rm", "base", "true"]);
  const upMs: number[] = [];
  const seqMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    upMs.push(timed(() => skiff(["up", "-d", "-f", file, "-p", "bench"])));
    skiff(["down", "-f", file, "-p", "bench"]);
    seqMs.push(timed(() => services.forEach((s) => skiff(["run", "-d", "--name", `seq-${s}`, "base"]))));
    removeAll();
  }
  const coldMs: number[] = [];
  const cachedMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    coldMs.push(timed(() => skiff(["build", "--no-cache", "-f", buildFile, "-p", "benchbuild"])));
    cachedMs.push(timed(() => skiff(["build", "-f", buildFile, "-p", "benchbuild"])));
  }
  const f = (ms: number) => `${Math.round(ms)} ms`;
  const up = median(upMs);
  const seq = median(seqMs);
  const cold = median(coldMs);
  const cached = median(cachedMs);
  console.log(`\nProjects (medians of ${runs}, 2 cores, TCG):`);
  console.log(`  up -d of 4 services          ${f(up).padStart(10)}   vs 4 x run -d one after another ${f(seq)}  = ${(up / seq).toFixed(2)}x`);
  console.log(`  build, every layer cached    ${f(cached).padStart(10)}   vs cold (--no-cache) ${f(cold)}  = ${(cached / cold).toFixed(2)}x`);
} finally {
  spawnSync(process.execPath, [cli, "down", "-f", file, "-p", "bench"], { env });
  const names = spawnSync(process.execPath, [cli, "ps", "-a", "-q"], { env, encoding: "utf8" }).stdout.split("\n").filter((n) => n !== "");
  if (names.length > 0) spawnSync(process.execPath, [cli, "rm", "-f", ...names], { env });
  rmSync(home, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}
