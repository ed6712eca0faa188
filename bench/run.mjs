#!/usr/bin/env node
// skiff benchmarks. Every figure is a ratio against a baseline measured in
// the same run on the same host, so they compare across machines:
//
//   1. `skiff run --rm base true` wall time vs raw QEMU booting the same
//      kernel to a static /init that powers off (the floor).
//   2. warm exec round trip: `exec true` on an open agent connection vs
//      OpenSSH over a user-net hostfwd into the same guest, on an open
//      (ControlMaster) connection, and cold CLI vs cold CLI, with the floor
//      under any Node client beside them (bench/exec-floor.cjs, `node -e 0`).
//   3. resident memory of one idle VM, all skiff-related processes, vs
//      QEMU's own RSS.
//
// Usage: npm run bench [-- --runs N]   (build first: ./setup.sh)
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { cpio, powerOffInit, rawBoot } from "./raw-boot.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "dist", "cli", "main.js");
const runsArg = process.argv.indexOf("--runs");
const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;
const home = mkdtempSync("/tmp/skb-");
const env = { ...process.env, SKIFF_HOME: home, SKIFF_CACHE: process.env.SKIFF_CACHE ?? join(root, ".cache", "test"), SKIFF_USERNET_RESTRICT: "1" };
const { Skiff } = await import(join(root, "dist", "index.js"));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (x) => `${x.toFixed(1)} ms`;
const skiff = (args, opts = {}) => execFileSync(process.execPath, [cli, ...args], { env, ...opts }).toString();
const time = (fn) => {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
};
async function timeAsync(fn) {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const results = [];
function report(name, value, baseline, goal) {
  const ratio = value / baseline;
  results.push({ name, value, baseline, ratio, goal });
  console.log(`${name}: ${value.toFixed(1)} vs ${baseline.toFixed(1)} -> ${ratio.toFixed(2)}x (goal <= ${goal}x)`);
}

try {
  // Warm the caches (image, kernel, initramfs, accel verdict) outside the timings.
  skiff(["run", "--rm", "base", "true"]);
  const lib = new Skiff({ home, cacheDir: env.SKIFF_CACHE });
  const facts = await lib.hostFacts();

  // ---- 1. run --rm base true vs raw QEMU boot to /init + power-off
  const raw = join(home, "raw");
  mkdirSync(raw);
  writeFileSync(
    join(raw, "initrd"),
    cpio([{ name: "bin", mode: 0o040755 }, { name: "bin/busybox", mode: 0o100755, data: readFileSync("/bin/busybox") }, ...powerOffInit("/bin/busybox")]),
  );
  const rawTimes = [];
  const runTimes = [];
  for (let i = 0; i < runs; i++) {
    rawTimes.push(rawBoot(facts, join(raw, "initrd")));
    runTimes.push(time(() => skiff(["run", "--rm", "base", "true"])));
  }
  console.log(`raw QEMU boot to /init + power-off: median ${ms(median(rawTimes))} (${rawTimes.map((t) => t.toFixed(0)).join(", ")})`);
  console.log(`skiff run --rm base true:          median ${ms(median(runTimes))} (${runTimes.map((t) => t.toFixed(0)).join(", ")})`);
  report("1. run --rm base true / raw QEMU boot", median(runTimes), median(rawTimes), 1.1);

  // ---- 2. exec round trips
  skiff(["run", "-d", "--name", "bench", "base"]);
  const conn = await lib.connect("bench");
  const warm = [];
  for (let i = 0; i < 30; i++) warm.push(await timeAsync(() => conn.exec({ argv: ["true"] })));
  await conn.close();
  // The same over SSH to the guest's dropbear (SKIFF_AGENT_PROTOCOL=ssh), as skiff spoke before its own protocol.
  process.env.SKIFF_AGENT_PROTOCOL = "ssh";
  const sshConn = await lib.connect("bench");
  delete process.env.SKIFF_AGENT_PROTOCOL;
  const warmSsh = [];
  for (let i = 0; i < 30; i++) warmSsh.push(await timeAsync(() => sshConn.exec({ argv: ["true"] })));
  await sshConn.close();

  // OpenSSH into the same guest: dropbear on TCP inside the image, reached through a user-net hostfwd.
  const info = JSON.parse(skiff(["inspect", "bench"]))[0];
  const keyDir = info.dir;
  const pub = readFileSync(join(keyDir, "id_ed25519.pub"), "utf8");
  skiff(["exec", "-i", "bench", "sh", "-c", "mkdir -p /root/.ssh && chmod 700 /root/.ssh && cat > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys"], { input: pub });
  const loader = "/dev/.skiff/lib/ld-linux-x86-64.so.2";
  spawn(process.execPath, [cli, "exec", "bench", "sh", "-c", `cp /dev/.skiff/bin/dropbear /tmp/db && ${loader} --library-path /dev/.skiff/lib /tmp/db -R -F -E -p 2222 >/tmp/db.log 2>&1`], { env, stdio: "ignore", detached: true }).unref();
  const port = 20000 + Math.floor(Math.random() * 20000);
  const { QmpClient } = await import(join(root, "dist", "qemu", "qmp.js"));
  const qmp = await QmpClient.connect(join(keyDir, "run", "qmp.sock"));
  await qmp.hmp(`hostfwd_add net0 tcp:127.0.0.1:${port}-:2222`);
  qmp.close();
  const sshBase = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-i", join(keyDir, "id_ed25519"), "-p", String(port)];
  for (let i = 0; i < 100; i++) {
    if (spawnSync("ssh", [...sshBase, "-o", "ConnectTimeout=5", "root@127.0.0.1", "true"]).status === 0) break;
    await sleep(300);
  }
  const ctl = join(home, "ctl");
  const master = spawn("ssh", [...sshBase, "-M", "-S", ctl, "-N", "root@127.0.0.1"], { stdio: "ignore" });
  await sleep(2000);
  const sshWarm = [];
  for (let i = 0; i < 30; i++) sshWarm.push(time(() => spawnSync("ssh", [...sshBase, "-S", ctl, "root@127.0.0.1", "true"])));
  master.kill();
  const cliCold = [];
  const cliColdSsh = [];
  const sshCold = [];
  // The floor under any Node client (bench/exec-floor.cjs) and Node's own start, in the same rounds.
  const floorCold = [];
  const nodeCold = [];
  const agentSocket = join(keyDir, "run", "agent-7.sock");
  const floor = (args) => spawnSync(process.execPath, [join(root, "bench", "exec-floor.cjs"), agentSocket, ...args]);
  if (floor(["a=true"]).status !== 0) throw new Error("bench/exec-floor.cjs could not run `true` in the guest");
  for (let i = 0; i < Math.max(runs, 11); i++) {
    cliCold.push(time(() => skiff(["exec", "bench", "true"])));
    cliColdSsh.push(time(() => skiff(["exec", "bench", "true"], { env: { ...env, SKIFF_AGENT_PROTOCOL: "ssh" } })));
    sshCold.push(time(() => spawnSync("ssh", [...sshBase, "root@127.0.0.1", "true"])));
    floorCold.push(time(() => floor(["a=true"])));
    nodeCold.push(time(() => spawnSync(process.execPath, ["-e", "0"])));
  }
  console.log(`warm exec true, skiff (open agent connection): median ${ms(median(warm))}; the same over SSH (SKIFF_AGENT_PROTOCOL=ssh): ${ms(median(warmSsh))}`);
  console.log(`warm exec true, OpenSSH (ControlMaster over hostfwd): median ${ms(median(sshWarm))}`);
  console.log(`cold: skiff exec CLI median ${ms(median(cliCold))} (over SSH: ${ms(median(cliColdSsh))}), ssh CLI (new connection) median ${ms(median(sshCold))}`);
  report("2. warm exec true: skiff / OpenSSH (both on an open connection)", median(warm), median(sshWarm), 0.1);
  report("2b. cold CLI: skiff exec / ssh", median(cliCold), median(sshCold), 1.0);
  console.log(
    `cold, the floor: a bare Node client of skiff's protocol (bench/exec-floor.cjs) median ${ms(median(floorCold))} = ${(median(floorCold) / median(sshCold)).toFixed(2)}x ssh; node -e 0 median ${ms(median(nodeCold))} = ${(median(nodeCold) / median(sshCold)).toFixed(2)}x ssh`,
  );

  // ---- 3. memory of one idle VM
  await sleep(3000);
  const qemuPid = Number(readFileSync(join(keyDir, "run", "qemu.pid"), "utf8"));
  const rss = (pid) => Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1]);
  // Every process whose command line names this VM's directory: with skiff, that is QEMU alone.
  const related = readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(keyDir);
    } catch {
      return false;
    }
  });
  const total = related.reduce((s, p) => s + rss(Number(p)), 0);
  console.log(`idle VM: ${related.length} process(es) (${related.join(", ")}), ${total} KiB; QEMU ${rss(qemuPid)} KiB`);
  report("3. idle VM RSS: all skiff processes / QEMU", total, rss(qemuPid), 1.05);
} finally {
  spawnSync(process.execPath, [cli, "rm", "-f", "bench"], { env, stdio: "ignore" });
  rmSync(home, { recursive: true, force: true });
}
console.log("\nsummary");
for (const r of results) console.log(`  ${r.ratio.toFixed(2)}x  ${r.name} (goal <= ${r.goal}x)`);
