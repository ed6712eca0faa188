/**
 * The one way skiff starts a child process. Going through one place means
 * a missing tool always becomes the same clear error (naming the Debian
 * package to install), every child has a deadline, and on SIGINT or failure
 * `killAll()` can end every child we started together with its own children.
 *
 * Each child leads its own process group, so killing the group (-pid) also
 * reaches the grandchildren a tool spawns. It also keeps a terminal's ^C
 * from hitting children directly: skiff decides how they end.
 */
import type { ChildProcess, SpawnOptions } from "node:child_process";
import { existsSync } from "node:fs";
import { errnoOf, SkiffError } from "../errors.js";
import { childProcess } from "../util/builtins.js";
import { endWithSkiff } from "./children.js";

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is then closed. Without it stdin is /dev/null. */
  input?: string | Uint8Array;
  /** Kill the child (SIGTERM, then SIGKILL) and fail with ERR_SKIFF_TIMEOUT after this long. */
  timeoutMs?: number;
  /** Debian package that provides `cmd`, named in the hint if it is missing. */
  debianPackage?: string;
  /** Fail with ERR_SKIFF_TOOL_FAILED (stderr in the message) on a non-zero exit. */
  check?: boolean;
  /** Open descriptors of ours the child gets at these numbers (above 2): child fd → our fd. */
  passFds?: ReadonlyMap<number, number>;
}

export interface RunResult {
  /** Exit code, or null if the child was ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** What code that runs tools depends on; tests hand in a fake. */
export interface Runner {
  run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

/** stdio entries from 3 on: `ignore` where nothing is passed. */
function passedFds(fds: ReadonlyMap<number, number> | undefined): ("ignore" | number)[] {
  if (fds === undefined || fds.size === 0) return [];
  const top = Math.max(...fds.keys());
  const entries: ("ignore" | number)[] = [];
  for (let n = 3; n <= top; n++) entries.push(fds.get(n) ?? "ignore");
  return entries;
}

/** How long a child gets between SIGTERM and SIGKILL. */
const killGraceMs = 2_000;

export class ProcessRunner implements Runner {
  readonly #live = new Map<number, ChildProcess>();

  /** Children started and not yet exited. */
  get liveCount(): number {
    return this.#live.size;
  }

  run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const spawnOpts: SpawnOptions = {
        cwd: opts.cwd,
        env: opts.env,
        detached: true,
        stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe", ...passedFds(opts.passFds)],
      };
      const child = childProcess().spawn(cmd, args, spawnOpts);
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let timedOut = false;
      let settled = false;
      let failed: unknown;
      let timer: NodeJS.Timeout | undefined;

      child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
      child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
      if (child.stdin && opts.input !== undefined) {
        // A child that exits without reading its input is not our failure.
        child.stdin.on("error", () => {});
        child.stdin.end(opts.input);
      }
      if (child.pid !== undefined) this.#live.set(child.pid, child);
      if (opts.timeoutMs !== undefined && child.pid !== undefined) {
        timer = setTimeout(() => {
          timedOut = true;
          void terminate(child);
        }, opts.timeoutMs);
      }

      child.on("error", (err) => {
        // Only spawn failures end up here without a later "close".
        failed = err;
        if (child.pid === undefined) finish(null, null);
      });
      child.on("close", (code, signal) => finish(code, signal));

      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (child.pid !== undefined) this.#live.delete(child.pid);
        const result: RunResult = {
          code,
          signal,
          stdout: Buffer.concat(stdout).toString("utf8"),
          stderr: Buffer.concat(stderr).toString("utf8"),
        };
        if (failed !== undefined && child.pid === undefined) return reject(spawnError(cmd, opts, failed));
        if (timedOut) {
          return reject(
            new SkiffError("ERR_SKIFF_TIMEOUT", `${cmd} did not finish within ${opts.timeoutMs} ms`, {
              details: { cmd, args: [...args], stderr: tail(result.stderr) },
            }),
          );
        }
        if (opts.check && code !== 0) return reject(toolFailed(cmd, args, result));
        resolve(result);
      };
    });
  }

  /** End every live child and its process group: SIGTERM, then SIGKILL after a grace period. */
  async killAll(graceMs = killGraceMs): Promise<void> {
    await Promise.all([...this.#live.values()].map((child) => terminate(child, graceMs)));
  }

  /** For a process "exit" handler, where nothing asynchronous runs any more. */
  killAllSync(signal: NodeJS.Signals = "SIGKILL"): void {
    for (const pid of this.#live.keys()) signalGroup(pid, signal);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

function terminate(child: ChildProcess, graceMs = killGraceMs): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => signalGroup(pid, "SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      // The leader is gone; stragglers in its group get no second chance.
      signalGroup(pid, "SIGKILL");
      done();
    });
    signalGroup(pid, "SIGTERM");
  });
}

function spawnError(cmd: string, opts: RunOptions, err: unknown): SkiffError {
  const errno = errnoOf(err);
  if (errno === "ENOENT" && opts.cwd !== undefined && !existsSync(opts.cwd)) {
    return new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `working directory does not exist: ${opts.cwd} (running ${cmd})`, {
      cause: err,
    });
  }
  if (errno === "ENOENT") {
    return new SkiffError("ERR_SKIFF_TOOL_MISSING", `${cmd} not found`, {
      hint: opts.debianPackage ? `install it: apt-get install ${opts.debianPackage}` : `install ${cmd} and make sure it is on PATH`,
      cause: err,
      details: { cmd, ...(opts.debianPackage ? { debianPackage: opts.debianPackage } : {}) },
    });
  }
  return new SkiffError("ERR_SKIFF_HOST", `cannot run ${cmd}: ${(err as Error).message}`, { cause: err, details: { cmd } });
}

function toolFailed(cmd: string, args: readonly string[], result: RunResult): SkiffError {
  const how = result.code === null ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
  const err = tail(result.stderr);
  return new SkiffError("ERR_SKIFF_TOOL_FAILED", `${cmd} ${how}${err ? `: ${err}` : ""}`, {
    details: { cmd, args: [...args], code: result.code, signal: result.signal, stderr: err },
  });
}

/** The end of a tool's stderr: where the reason usually is. */
function tail(text: string, max = 2_000): string {
  const trimmed = text.trim();
  return trimmed.length <= max ? trimmed : `…${trimmed.slice(-max)}`;
}

/** The process-wide runner; its children end when the CLI does (children.ts). */
export const defaultRunner = new ProcessRunner();
endWithSkiff((graceMs) => defaultRunner.killAll(graceMs));

export function run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return defaultRunner.run(cmd, args, opts);
}

export function killAll(graceMs?: number): Promise<void> {
  return defaultRunner.killAll(graceMs);
}
