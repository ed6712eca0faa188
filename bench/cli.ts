// How fast the CLI starts (run: npm run bench:cli; build first). Against
// `node -e 0`, Node starting and doing nothing, measured in the same run:
//   1. `skiff --version`: commander and the command table, nothing else;
//   2. `skiff ps` and `skiff ps -a` with 10 VM records (made with
//      `skiff create` from the built-in `base` image: stopped VMs, no QEMU),
//      so ps reads and checks ten records and the process table.
// The four commands take turns, RUNS rounds (default 15); medians and their
// ratio to node's are printed. The goal is 2x or less.
// SKIFF_CLI_BEFORE=<another build's dist/cli/main.js> times that build's
// three commands too, in the same rounds (a before/after under the same load).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { cli, median, root, time } from "./lib.js";

if (!existsSync(cli)) throw new Error(`no ${cli}: build first (./setup.sh or npm run build)`);
const runs = Number(process.env.RUNS ?? 15);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`RUNS must be a positive whole number, not ${process.env.RUNS}`);
const vms = 10;

const home = mkdtempSync("/tmp/skbc-");
const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_HOME: home, SKIFF_CACHE: process.env.SKIFF_CACHE ?? join(root, ".cache", "test") };

function run(argv: string[]): void {
  const r = spawnSync(process.execPath, argv, { env, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`node ${argv.join(" ")} exited ${r.status}\n${r.stdout}${r.stderr}${r.error ? String(r.error) : ""}`);
}

const cases: { name: string; argv: string[] }[] = [
  { name: "node -e 0", argv: ["-e", "0"] },
  { name: "skiff --version", argv: [cli, "--version"] },
  { name: `skiff ps (${vms} VMs)`, argv: [cli, "ps"] },
  { name: `skiff ps -a (${vms} VMs)`, argv: [cli, "ps", "-a"] },
];
const before = process.env.SKIFF_CLI_BEFORE;
if (before !== undefined) {
  if (!existsSync(before)) throw new Error(`SKIFF_CLI_BEFORE: no ${before}`);
  for (const c of cases.slice(1)) cases.push({ name: `before: ${c.name.slice("skiff ".length)}`, argv: [before, ...c.argv.slice(1)] });
}

try {
  for (let i = 1; i <= vms; i++) run([cli, "create", "--name", `bench-${i}`, "base"]);
  // Warm the page cache and the records outside the timings.
  for (const c of cases) run(c.argv);
  const times = cases.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) cases.forEach((c, j) => times[j]!.push(time(() => run(c.argv))));
  const node = median(times[0]!);
  console.log(`\nCLI start (medians of ${runs}, load ${loadavg()[0]!.toFixed(2)}):`);
  cases.forEach((c, j) => {
    const m = median(times[j]!);
    const ratio = j === 0 ? "" : `   ${(m / node).toFixed(2)}x node (goal <= 2x)`;
    console.log(`  ${c.name.padEnd(26)} ${`${Math.round(m)} ms`.padStart(7)}${ratio}`);
  });
} finally {
  spawnSync(process.execPath, [cli, "rm", "-f", ...Array.from({ length: vms }, (_, i) => `bench-${i + 1}`)], { env, stdio: "ignore" });
  rmSync(home, { recursive: true, force: true });
}
