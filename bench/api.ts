// What going through `skiff serve` costs (run: npm run bench:api; root, build first).
// Each figure against a baseline measured in the same run, with the goal
// from issue 13:
//   1. the exec round trip of `true` in a running VM through the HTTP API
//      (SkiffHttpClient.exec: POST /vms/NAME/exec) against the in-process
//      library (Skiff.exec): <= 1.5x. Skiff.exec opens an agent session per
//      call, as a caller that runs one command does; the server keeps one
//      per running VM (src/server/agents.ts), so it answers sooner;
//   2. 16 sandboxes created, used (a command, a file written and read back)
//      and killed at once through the SDK against one server, against the
//      same through the SDK in process: <= 1.2x. One sandbox is made and
//      killed first so that both sides start from the same boot snapshot;
//      CROWD_RUNS (default 2) rounds, each side first in turn.
// Turns alternate (local, remote, remote, local, …) so that host load hits
// both sides alike; RUNS (default 15) round trips, medians. A private
// SKIFF_HOME and SKIFF_CACHE, removed at the end with every VM, also on
// failure; a fresh cache costs a few seconds before the first figure.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { cli, median, root } from "./lib.js";

if (!existsSync(cli)) throw new Error(`no ${cli}: build first (./setup.sh or npm run build)`);
if (process.getuid?.() !== 0) throw new Error("bench:api needs root: skiff jails its QEMUs as root");
const runs = Number(process.env.RUNS ?? 15);
if (!Number.isInteger(runs) || runs < 2) throw new Error(`RUNS must be a whole number of at least 2, not ${process.env.RUNS}`);
const crowd = 16;
/** Rounds of the 16-sandbox figure (CROWD_RUNS, default 2: each side once first). */
const crowdRuns = Number(process.env.CROWD_RUNS ?? 2);

/** Short: unix socket paths under it must fit in 107 bytes. */
const home = mkdtempSync("/tmp/skba-");
const cacheDir = join(home, "cache");
const token = "bench-api-token";
process.env.SKIFF_USERNET_RESTRICT = "1";
const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_HOME: home, SKIFF_CACHE: cacheDir, SKIFF_TOKEN: token };
const { Skiff } = (await import(join(root, "dist", "index.js"))) as typeof import("../src/index.js");
const { SkiffHttpClient } = (await import(join(root, "dist", "api", "client.js"))) as typeof import("../src/api/client.js");
const { Sandbox } = (await import(join(root, "dist", "sdk", "index.js"))) as typeof import("../src/sdk/index.js");

const skiff = new Skiff({ home, cacheDir });
let server: ChildProcess | undefined;

/** `skiff serve` on a free loopback port; its URL once it says it listens. */
function startServer(): Promise<string> {
  const child = spawn(process.execPath, [cli, "serve", "--listen", "127.0.0.1:0"], { env, stdio: ["ignore", "pipe", "pipe"] });
  server = child;
  let out = "";
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)\n/.exec(out);
      if (m !== null) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`skiff serve exited ${code}: ${err}`)));
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

const list = (xs: readonly number[]) => xs.map((x) => x.toFixed(0)).join(", ");
const results: string[] = [];

function ratio(name: string, samples: readonly number[], baseName: string, base: readonly number[], goal: number): void {
  const value = median(samples);
  const baseline = median(base);
  console.log(`  ${name}: median ${value.toFixed(0)} ms (${list(samples)})`);
  console.log(`    vs ${baseName}: median ${baseline.toFixed(0)} ms (${list(base)})`);
  console.log(`    = ${(value / baseline).toFixed(2)}x (goal <= ${goal}x)`);
  results.push(`${name}: ${(value / baseline).toFixed(2)}x (goal <= ${goal}x)`);
}

/** One sandbox's life: create, a command, a file written and read back, kill. */
async function sandboxLife(opts: Record<string, unknown>, i: number): Promise<void> {
  const sb = await Sandbox.create({ ...opts, memory: 256, timeoutMs: 0 });
  try {
    const r = await sb.commands.run(`echo sandbox-${i}`);
    if (!("exitCode" in r) || r.stdout !== `sandbox-${i}\n`) throw new Error(`sandbox ${i}: unexpected output ${JSON.stringify(r)}`);
    await sb.files.write("/tmp/n", String(i));
    const back = await sb.files.read("/tmp/n");
    if (back !== String(i)) throw new Error(`sandbox ${i}: read back ${JSON.stringify(back)}`);
  } finally {
    await sb.kill();
  }
}

try {
  console.log(`bench:api (load ${loadavg()[0]!.toFixed(1)}; RUNS=${runs})`);
  const url = await startServer();
  const client = new SkiffHttpClient({ url, token });
  await skiff.create({ image: "base", name: "b", memory: "256m" });
  await skiff.start("b");

  const local: number[] = [];
  const remote: number[] = [];
  // Warm both paths once (module loading, the server's first request).
  await skiff.exec("b", ["true"]);
  await client.exec("b", ["true"]);
  for (let i = 0; i < runs; i++) {
    const order = i % 2 === 0 ? [local, remote] : [remote, local];
    for (const into of order) into.push(await timed(() => (into === local ? skiff.exec("b", ["true"]) : client.exec("b", ["true"]))));
  }
  console.log("1. exec round trip (true)");
  ratio("HTTP API (SkiffHttpClient.exec)", remote, "in-process library (Skiff.exec)", local, 1.5);
  await skiff.remove("b", { force: true });

  const localOpts = { home, cacheDir };
  const remoteOpts = { host: url, token };
  // The boot snapshot both sides then restore from.
  await sandboxLife(localOpts, -1);
  const crowdLocal: number[] = [];
  const crowdRemote: number[] = [];
  const crowdOnce = (opts: Record<string, unknown>) => timed(() => Promise.all(Array.from({ length: crowd }, (_, i) => sandboxLife(opts, i))));
  for (let i = 0; i < crowdRuns; i++) {
    // local, remote, then remote, local: neither side always goes first.
    for (const side of i % 2 === 0 ? ["local", "remote"] : ["remote", "local"]) {
      if (side === "local") crowdLocal.push(await crowdOnce(localOpts));
      else crowdRemote.push(await crowdOnce(remoteOpts));
    }
  }
  console.log(`2. ${crowd} sandboxes at once (create, a command, a file, kill)`);
  ratio("through skiff serve (SDK remote)", crowdRemote, "in process (SDK local)", crowdLocal, 1.2);

  console.log("");
  for (const line of results) console.log(line);
} finally {
  for (const vm of await skiff.list({ all: true }).catch(() => [])) await skiff.remove(vm.name, { force: true }).catch(() => undefined);
  server?.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 500));
  rmSync(home, { recursive: true, force: true });
}
