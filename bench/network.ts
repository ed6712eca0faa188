// Network benchmarks (run: npm run bench:network; root, after ./setup.sh).
// Two VMs of the built-in `base` image on each kind of network, against the
// baseline of the same two guests on QEMU user networking joined through a
// hostfwd (A connects to 10.0.2.2:P, the host's loopback; B has
// -p 127.0.0.1:P:5001), all measured in the same run:
//   - TCP throughput: `dd if=/dev/zero bs=64k count=N | nc B 5001` into
//     `nc -l -p 5001 | wc -c`, timed in guest A (/proc/uptime, 10 ms);
//   - TCP round trip: one line at a time through `nc -l -e cat` on B, K times
//     on one connection, timed in guest A (the figure a ping cannot give for
//     the baseline, whose ICMP only reaches A's own slirp);
//   - ICMP: `ping -q -c 20 -i 0.2` average (baseline: A -> 10.0.2.2, slirp);
//   - for reference, the same transfer inside guest A over its loopback;
//   - `skiff run -d` wall time (boot to ready) on each network, vs
//     `--network user` and `--network none`.
// Everything runs inside a network namespace made for the run (skiff through
// `ip netns exec`), with its own SKIFF_HOME; VMs, networks and the namespace
// are removed at the end, also on failure. RUNS (default 3) sets the samples
// per figure (medians are printed), COUNT the 64 KiB blocks per transfer
// (default: calibrated so a baseline transfer takes ~4 s), ECHOES the round
// trips per sample (default 200).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { cli, median, root, time } from "./lib.js";

type Mode = "none" | "user" | "private" | "link" | "bridge";
type PairMode = Exclude<Mode, "none">;

if (!existsSync(cli)) throw new Error(`no ${cli}: build first (./setup.sh or npm run build)`);
if (process.getuid?.() !== 0) throw new Error("bench:network needs root: it makes a network namespace and a bridge");

function positive(name: string, fallback?: number): number | undefined {
  const text = process.env[name];
  if (text === undefined) return fallback;
  if (!/^[1-9]\d*$/.test(text)) throw new Error(`${name} must be a positive whole number, not ${JSON.stringify(text)}`);
  return Number(text);
}
const runs = positive("RUNS", 3)!;
const echoes = positive("ECHOES", 200)!;
const ns = `skb-bench-${process.pid}`;
/** Short: unix socket paths under it must fit in 107 bytes. */
const home = mkdtempSync("/tmp/skbn-");
const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_HOME: home, SKIFF_CACHE: process.env.SKIFF_CACHE ?? join(root, ".cache", "test") };
// Unrestricted on purpose: in a fresh namespace user networking can reach nothing but loopback.
delete env.SKIFF_USERNET_RESTRICT;

const guestPort = 5001;
const hostPort = 15001;
const networks: Record<Exclude<PairMode, "user">, string> = { private: "bp", link: "bl", bridge: "bb" };
const netFlag = (m: Mode) => (m === "none" || m === "user" ? m : networks[m]);
const children = new Set<ChildProcess>();

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function argv(args: string[]): string[] {
  return ["netns", "exec", ns, process.execPath, cli, ...args];
}

function check(args: string[], r: Result): string {
  if (r.code !== 0) throw new Error(`skiff ${args.join(" ")} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

/** The CLI inside the namespace; throws with its output unless it exits 0. */
function skiff(args: string[], timeoutMs = 600_000): string {
  const r = spawnSync("ip", argv(args), { env, encoding: "utf8", timeout: timeoutMs });
  return check(args, { code: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") });
}

/** The same, not waited for (a listener in one guest while the other sends). */
function skiffAsync(args: string[]): Promise<string> {
  const child = spawn("ip", argv(args), { env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) =>
    child.on("close", (code) => {
      children.delete(child);
      try {
        resolve(check(args, { code, stdout, stderr }));
      } catch (err) {
        reject(err);
      }
    }),
  );
}

const guest = (vm: string, script: string, timeoutMs?: number) => skiff(["exec", vm, "sh", "-c", script], timeoutMs);

/** Seconds between two /proc/uptime readings printed by a guest script as "T0 T1". */
function elapsed(out: string): number {
  const [t0, t1] = out.trim().split(/\s+/).map(Number);
  if (!Number.isFinite(t0) || !Number.isFinite(t1)) throw new Error(`cannot read the guest's timing: ${JSON.stringify(out)}`);
  return t1! - t0!;
}

/** Wait until B listens on the port (a hostfwd accepts even when nothing listens behind it). */
function waitListening(vm: string): void {
  const hex = guestPort.toString(16).toUpperCase().padStart(4, "0");
  guest(vm, `i=0; until grep -qs ':${hex} 0*:0000 0A' /proc/net/tcp /proc/net/tcp6; do i=$((i+1)); [ $i -lt 300 ] || exit 1; sleep 0.1; done`);
}

interface Pair {
  a: string;
  b: string;
  /** Where A connects and pings. */
  host: string;
  port: number;
}

function startPair(mode: PairMode): Pair {
  const [a, b] = [`${mode}-a`, `${mode}-b`];
  if (mode === "user") {
    skiff(["run", "-d", "--name", a, "--network", "user", "base"]);
    skiff(["run", "-d", "--name", b, "--network", "user", "-p", `127.0.0.1:${hostPort}:${guestPort}`, "base"]);
    return { a, b, host: "10.0.2.2", port: hostPort };
  }
  skiff(["run", "-d", "--name", a, "--network", networks[mode], "base"]);
  skiff(["run", "-d", "--name", b, "--network", networks[mode], "base"]);
  const [info] = JSON.parse(skiff(["inspect", b])) as { interfaces: { address: string }[] }[];
  return { a, b, host: info!.interfaces[0]!.address.split("/")[0]!, port: guestPort };
}

/** One transfer of `count` 64 KiB blocks from A to B; MB/s (10^6 bytes) as timed in A. */
async function throughput(p: Pair, count: number): Promise<{ mbps: number; seconds: number }> {
  // The listener's stdin must not end: busybox nc answers EOF there with a FIN, and the sender's nc quits at it.
  const received = skiffAsync(["exec", p.b, "sh", "-c", `f=/tmp/skb-rx.$$; rm -f $f; mkfifo $f; nc -l -p ${guestPort} <>$f | wc -c; rm -f $f`]);
  try {
    waitListening(p.b);
    const out = guest(p.a, `read t0 x < /proc/uptime; dd if=/dev/zero bs=64k count=${count} 2>/dev/null | nc ${p.host} ${p.port} || exit 1; read t1 x < /proc/uptime; echo "$t0 $t1"`);
    const bytes = Number((await received).trim());
    if (bytes !== count * 65536) throw new Error(`B received ${bytes} bytes of ${count * 65536}`);
    const seconds = elapsed(out);
    return { mbps: bytes / seconds / 1e6, seconds };
  } finally {
    await received.catch(() => undefined);
  }
}

/** The same transfer inside one guest over its loopback: what dd, nc and wc manage with both ends on one vCPU and no NIC. */
function loopback(vm: string, count: number): number {
  const out = guest(
    vm,
    [
      `f=/tmp/skb-lo.$$; rm -f $f; mkfifo $f; (nc -l -p ${guestPort + 1} <>$f | wc -c > $f.n) &`,
      `i=0; until grep -qs ':${(guestPort + 1).toString(16).toUpperCase()} 0*:0000 0A' /proc/net/tcp /proc/net/tcp6; do i=$((i+1)); [ $i -lt 300 ] || exit 1; sleep 0.1; done`,
      `read t0 x < /proc/uptime; dd if=/dev/zero bs=64k count=${count} 2>/dev/null | nc 127.0.0.1 ${guestPort + 1} || exit 1; wait; read t1 x < /proc/uptime`,
      'echo "$t0 $t1 $(cat $f.n)"; rm -f $f $f.n',
    ].join("\n"),
  );
  const bytes = Number(out.trim().split(/\s+/)[2]);
  if (bytes !== count * 65536) throw new Error(`loopback: received ${bytes} bytes of ${count * 65536}`);
  return (bytes / elapsed(out)) / 1e6;
}

/** Mean TCP round trip in ms: `echoes` lines A -> B -> A on one connection, after a first one that opens it. */
async function echoRtt(p: Pair): Promise<number> {
  const served = skiffAsync(["exec", p.b, "nc", "-l", "-p", String(guestPort), "-e", "cat"]);
  try {
    waitListening(p.b);
    const script = [
      "f=/tmp/skb-echo.$$; rm -f $f; mkfifo $f",
      `nc ${p.host} ${p.port} < $f | {`,
      "  exec 3>$f",
      "  echo warm >&3; read -r l || exit 1",
      "  read t0 x < /proc/uptime",
      `  i=0; while [ $i -lt ${echoes} ]; do echo ping >&3; read -r l || exit 1; i=$((i+1)); done`,
      "  read t1 x < /proc/uptime",
      "  exec 3>&-",
      '  echo "$t0 $t1"',
      "}",
      "rc=$?; rm -f $f; exit $rc",
    ].join("\n");
    const out = guest(p.a, script);
    await served;
    return (elapsed(out) * 1000) / echoes;
  } finally {
    await served.catch(() => undefined);
  }
}

/** Average ICMP round trip in ms. */
function pingAvg(p: Pair): number {
  const out = guest(p.a, `ping -q -c 20 -i 0.2 -W 5 ${p.host}`);
  const m = /min\/avg\/max = [\d.]+\/([\d.]+)\//.exec(out);
  if (m === null) throw new Error(`cannot read ping's summary: ${out}`);
  return Number(m[1]);
}

/** Blocks per transfer: enough for ~4 s on the baseline (the first pair measured). */
async function calibrate(p: Pair): Promise<number> {
  const given = positive("COUNT");
  if (given !== undefined) return given;
  let count = 64;
  for (;;) {
    const { seconds } = await throughput(p, count);
    if (seconds >= 1 || count >= 65536) return Math.max(16, Math.round((count * 4) / Math.max(seconds, 0.01)));
    count *= 4;
  }
}

function qemuUnderHome(): number[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        const cmd = readFileSync(`/proc/${e}/cmdline`, "utf8");
        return cmd.includes("qemu-system") && cmd.includes(home + "/");
      } catch {
        return false;
      }
    })
    .map(Number);
}

let cleaned = false;
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  for (const child of children) child.kill("SIGKILL");
  try {
    const names = skiff(["ps", "-a", "-q"], 120_000).split("\n").filter((n) => n !== "");
    if (names.length > 0) skiff(["rm", "-f", ...names], 300_000);
    for (const net of skiff(["network", "ls", "-q"], 120_000).split("\n").filter((n) => n !== "")) skiff(["network", "rm", net], 120_000);
  } catch (err) {
    console.error(`cleanup: ${(err as Error).message}`);
  }
  for (const pid of qemuUnderHome()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  spawnSync("ip", ["netns", "del", ns]);
  rmSync(home, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    cleanup();
    process.exit(130);
  });
}

const fmt = (x: number, digits = 1) => x.toFixed(digits);
const samples = (xs: number[], digits = 1) => `(${xs.map((x) => fmt(x, digits)).join(", ")})`;
const row = (cells: string[], widths: number[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();

const t0 = performance.now();
const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");
console.log(`host: load average ${load()} at the start`);
try {
  spawnSync("ip", ["netns", "add", ns], { stdio: "inherit" });
  const lo = spawnSync("ip", ["netns", "exec", ns, "ip", "link", "set", "lo", "up"], { encoding: "utf8" });
  if (lo.status !== 0) throw new Error(`cannot make namespace ${ns}: ${lo.stderr}`);
  skiff(["network", "create", networks.private]);
  skiff(["network", "create", networks.link, "--driver", "link"]);
  skiff(["network", "create", networks.bridge, "--driver", "bridge"]);
  // Warm the caches (image, kernel, initramfs) outside the timings.
  skiff(["run", "-d", "--name", "warm", "--network", "none", "base"]);
  skiff(["rm", "-f", "warm"]);

  // ---- boot to ready, one VM at a time, the modes interleaved so drift in the host's load hits each alike
  const modes: Mode[] = ["none", "user", "private", "link", "bridge"];
  const boot = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  for (let r = 0; r < runs; r++) {
    for (const m of modes) {
      const name = `boot-${m}-${r}`;
      boot.get(m)!.push(time(() => skiff(["run", "-d", "--name", name, "--network", netFlag(m), "base"])));
      skiff(["rm", "-f", name]);
    }
  }

  // ---- traffic between two VMs, one pair at a time, the baseline first (it sets the transfer size)
  const pairModes: PairMode[] = ["user", "private", "link", "bridge"];
  const traffic = new Map<PairMode, { mbps: number[]; echo: number[]; ping: number[] }>();
  let count = 0;
  const loop: number[] = [];
  for (const m of pairModes) {
    const pair = startPair(m);
    try {
      if (count === 0) count = await calibrate(pair);
      const t = { mbps: [] as number[], echo: [] as number[], ping: [] as number[] };
      for (let r = 0; r < runs; r++) {
        t.mbps.push((await throughput(pair, count)).mbps);
        t.echo.push(await echoRtt(pair));
        t.ping.push(pingAvg(pair));
        if (m === "user") loop.push(loopback(pair.a, count));
      }
      traffic.set(m, t);
      console.error(`${m}: ${samples(t.mbps)} MB/s, echo ${samples(t.echo, 2)} ms, ping ${samples(t.ping, 2)} ms`);
    } finally {
      skiff(["rm", "-f", pair.a, pair.b]);
    }
  }

  // ---- report
  const label: Record<Mode, string> = {
    none: "none",
    user: "user + hostfwd (baseline)",
    private: "private (mcast socket)",
    link: "link (unix dgram)",
    bridge: "bridge (TAP)",
  };
  const mb = median(boot.get("none")!);
  const mu = median(boot.get("user")!);
  console.log(`\nskiff run -d base, boot to ready (medians of ${runs}, ms):`);
  const bw = [26, 10, 10, 10, 30];
  console.log(row(["network", "run -d", "vs user", "vs none", "samples"], bw));
  for (const m of modes) {
    const v = median(boot.get(m)!);
    console.log(row([m === "user" ? "user" : label[m], fmt(v, 0), `${v - mu >= 0 ? "+" : ""}${fmt(v - mu, 0)}`, `${v - mb >= 0 ? "+" : ""}${fmt(v - mb, 0)}`, samples(boot.get(m)!, 0)], bw));
  }

  const base = traffic.get("user")!;
  const [bt, be, bp] = [median(base.mbps), median(base.echo), median(base.ping)];
  console.log(`\nTwo VMs, A -> B (medians of ${runs}; ${count} x 64 KiB = ${fmt((count * 65536) / 1e6)} MB per transfer, ${echoes} TCP round trips per sample):`);
  const tw = [26, 10, 7, 14, 7, 14, 7];
  console.log(row(["network", "TCP MB/s", "ratio", "TCP RTT ms", "ratio", "ping avg ms", "ratio"], tw));
  for (const m of pairModes) {
    const t = traffic.get(m)!;
    const [vt, ve, vp] = [median(t.mbps), median(t.echo), median(t.ping)];
    console.log(row([label[m], fmt(vt), `${fmt(vt / bt, 2)}x`, fmt(ve, 2), `${fmt(ve / be, 2)}x`, fmt(vp, 2), `${fmt(vp / bp, 2)}x`], tw));
  }
  console.log(row(["loopback in one guest", fmt(median(loop)), `${fmt(median(loop) / bt, 2)}x`], tw));
  console.log("(ratios are mode / baseline; the baseline's ping reaches only A's slirp at 10.0.2.2, not B;");
  console.log(" loopback: the same dd | nc | wc inside guest A over 127.0.0.1, both ends on its one vCPU, no NIC)");
  console.log(`host: load average ${load()} at the end`);
} finally {
  cleanup();
  console.error(`done in ${fmt((performance.now() - t0) / 1000, 0)} s`);
}
