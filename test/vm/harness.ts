/**
 * The VM test harness: runs the built CLI the way a user types it, against a
 * private SKIFF_HOME, with the image/kernel cache shared between tests so only
 * the first test pays for building them. Every QEMU a test starts is ended
 * in `cleanup()`, and the home is removed; on failure the console logs are
 * kept (SKIFF_KEEP_LOGS) for the report.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { detectCgroups, homeGroupName } from "../../src/jail/cgroup.js";
import { registryHome } from "../../src/jail/claims.js";
import { ramDir } from "../../src/snapshot/ram.js";
import { guestKernelCrash } from "../../src/snapshot/resume.js";

export const repoRoot = resolve(import.meta.dirname, "..", "..");

export const cliPath = join(repoRoot, "dist", "cli", "main.js");

/**
 * Every CLI call the VM suite makes, one line each (the time it ended, the
 * verb, how long it took) in test-results/cli-calls.tsv: where the suite's
 * time goes between Node's start-up and the VMs.
 */
const cliCallLog = join(repoRoot, "test-results", "cli-calls.tsv");
function logCliCall(args: string[], ms: number): void {
  const verb = args.slice(0, 3).join(" ").slice(0, 40).replaceAll(/[\t\n]/g, " ");
  try {
    appendFileSync(cliCallLog, `${new Date().toISOString()}\t${verb}\t${ms.toFixed(0)}\n`);
  } catch {
    // test-results/ is made by scripts/test.mjs; a run without it logs nothing
  }
}
/** Shared across test files and runs: vmlinux, initramfs, base images. */
export const sharedCache = process.env.SKIFF_TEST_CACHE ?? join(repoRoot, ".cache", "test");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
}

export class Harness {
  /** Short on purpose: unix socket paths under it must fit in 107 bytes. */
  readonly home = mkdtempSync("/tmp/sk-");
  readonly env: Record<string, string>;
  readonly #children = new Set<ChildProcess>();
  /** A network namespace every CLI run goes into (`ip netns exec`), for tests whose traffic must stay in one. */
  readonly netns: string | undefined;
  readonly #ownsNetns: boolean;
  #tmpfs = false;

  constructor(opts: { netns?: string; ownsNetns?: boolean } = {}) {
    this.netns = opts.netns;
    this.#ownsNetns = opts.ownsNetns === true;
    this.env = {
      ...(process.env as Record<string, string>),
      SKIFF_HOME: this.home,
      SKIFF_CACHE: sharedCache,
      // Guests in tests never reach beyond the host.
      SKIFF_USERNET_RESTRICT: "1",
    };
  }

  /**
   * A harness whose every CLI run happens in a network namespace made for
   * it now (loopback up), and deleted by `cleanup()`: for tests whose
   * traffic (multicast, bridges, NAT) must stay out of the host's namespace.
   */
  static inNewNetns(prefix: string): Harness {
    const netns = `${prefix}-${process.pid}`;
    execFileSync("ip", ["netns", "add", netns]);
    execFileSync("ip", ["-n", netns, "link", "set", "lo", "up"]);
    return new Harness({ netns, ownsNetns: true });
  }

  /**
   * Put the home on a tmpfs of its own, `sizeMiB` large (before any VM is
   * made): for tests of a full disk. `cleanup()` unmounts it once every
   * QEMU that had files open on it is gone.
   */
  mountTmpfs(sizeMiB: number): void {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMiB}m,mode=0700`, "tmpfs", this.home]);
    this.#tmpfs = true;
  }

  /** Start the CLI; the caller decides when to wait. */
  spawn(args: string[], opts: { env?: Record<string, string>; stdio?: "pipe" | "inherit" } = {}): ChildProcess {
    const [cmd, argv] = this.netns === undefined ? [process.execPath, [cliPath, ...args]] : ["ip", ["netns", "exec", this.netns, process.execPath, cliPath, ...args]];
    const child = spawn(cmd, argv, { env: { ...this.env, ...opts.env }, stdio: "pipe" });
    this.#children.add(child);
    const t0 = performance.now();
    child.on("exit", () => {
      this.#children.delete(child);
      logCliCall(args, performance.now() - t0);
    });
    return child;
  }

  run(args: string[], opts: RunOptions = {}): Promise<CliResult> {
    const child = this.spawn(args, opts.env === undefined ? {} : { env: opts.env });
    return collect(child, opts);
  }

  /** Run and expect exit 0; throws with stderr otherwise. */
  async ok(args: string[], opts: RunOptions = {}): Promise<string> {
    const r = await this.run(args, opts);
    if (r.code !== 0) throw new Error(`skiff ${args.join(" ")} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r.stdout;
  }

  /** PIDs of QEMU processes whose pidfile lives under this home. */
  qemuPids(): number[] {
    const vms = join(this.home, "vms");
    if (!existsSync(vms)) return [];
    const pids: number[] = [];
    for (const id of readdirSync(vms)) {
      const pidfile = join(vms, id, "run", "qemu.pid");
      if (!existsSync(pidfile)) continue;
      const pid = Number(readFileSync(pidfile, "utf8").trim());
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) pids.push(pid);
    }
    return pids;
  }

  /** Every QEMU process on the host whose command line mentions this home, pidfile or not. */
  qemuProcessesUnderHome(): number[] {
    const out: number[] = [];
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
        if (cmdline.includes("qemu-system") && cmdline.includes(this.home + "/")) {
          const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
          if (!/\) Z /.test(stat)) out.push(Number(entry));
        }
      } catch {
        // exited meanwhile
      }
    }
    return out;
  }

  consoleLogs(): string {
    const vms = join(this.home, "vms");
    if (!existsSync(vms)) return "";
    return readdirSync(vms)
      .map((id) => join(vms, id, "console.log"))
      .filter((p) => existsSync(p))
      .map((p) => `--- ${p}\n${readFileSync(p, "utf8")}`)
      .join("\n");
  }

  /**
   * A guest kernel that crashed, in the report whether or not a test failed
   * for it: such a guest is why a later step timed out (a restored fork
   * clone's kernel died in timerqueue_add on 2026-12-06, and its test said
   * only that the agent did not answer), and its console goes with the home.
   */
  #reportGuestCrashes(): void {
    const vms = join(this.home, "vms");
    if (!existsSync(vms)) return;
    for (const id of readdirSync(vms)) {
      const path = join(vms, id, "console.log");
      if (!existsSync(path)) continue;
      const lines = readFileSync(path, "utf8").split("\n");
      const at = lines.findIndex((line) => guestKernelCrash.test(line));
      if (at >= 0) console.error(`a guest kernel crashed (${path}):\n${lines.slice(Math.max(0, at - 5), at + 40).join("\n")}`);
    }
  }

  async cleanup(): Promise<void> {
    this.#reportGuestCrashes();
    for (const child of this.#children) child.kill("SIGKILL");
    const qemus = [...this.qemuPids(), ...this.qemuProcessesUnderHome()];
    for (const pid of qemus) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    if (this.#tmpfs) {
      // A QEMU still exiting keeps the tmpfs busy: wait for it, then unmount (lazily, as a last resort).
      for (let i = 0; i < 100 && qemus.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
      try {
        execFileSync("umount", [this.home]);
      } catch {
        execFileSync("umount", ["-l", this.home]);
      }
      this.#tmpfs = false;
    }
    this.#releaseJailState();
    rmSync(this.home, { recursive: true, force: true });
    // Guest RAM lives in /dev/shm, outside the home: left there, each file holds up to the VM's memory of the host's.
    rmSync(ramDir(this.home), { recursive: true, force: true });
    if (this.#ownsNetns && this.netns !== undefined) execFileSync("ip", ["netns", "del", this.netns]);
  }

  /**
   * What this home's jailed VMs hold outside it, which a `skiff rm` would
   * give back: their jail uids' claims and egress tables, and their cgroups.
   * (A later claim of a uid would reap them too; the host stays clean now.)
   */
  #releaseJailState(): void {
    const claims = join(registryHome(), "jail-ids");
    for (const entry of existsSync(claims) ? readdirSync(claims) : []) {
      const path = join(claims, entry);
      let claim: { home?: string };
      try {
        claim = JSON.parse(readFileSync(path, "utf8")) as { home?: string };
      } catch {
        continue;
      }
      if (claim.home !== this.home) continue;
      const table = `skiff_jail_${entry.replace(/\.json$/, "")}`;
      const nft = ["nft", "delete", "table", "inet", table];
      spawnSync(nft[0]!, nft.slice(1), { stdio: "ignore" });
      if (this.netns !== undefined) spawnSync("ip", ["netns", "exec", this.netns, ...nft], { stdio: "ignore" });
      rmSync(path, { force: true });
    }
    const layout = detectCgroups();
    const roots = layout.kind === "v2" ? [layout.root] : layout.kind === "v1" ? Object.values(layout.controllers) : [];
    for (const root of roots) {
      const group = join(root, homeGroupName(this.home));
      if (!existsSync(group)) continue;
      for (const vm of readdirSync(group).filter((e) => e.startsWith("vm-"))) spawnSync("rmdir", [join(group, vm)], { stdio: "ignore" });
      spawnSync("rmdir", [group], { stdio: "ignore" });
    }
  }
}

export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

export function collect(child: ChildProcess, opts: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`timed out after ${opts.timeoutMs}ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 180_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? 128 + (signal === "SIGKILL" ? 9 : 15), stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}
