/**
 * `sandbox.commands` and `sandbox.pty` (E2B's Commands and Pty modules):
 * shell command lines and interactive shells, each a process started
 * through the backend's exec and kept in the Sandbox's process table.
 */
import { SkiffError } from "../index.js";
import type { ExecSpec } from "./backend.js";
import { CommandHandle, ProcessTable, type CommandResult, type ProcessInfo, type StartOptions } from "./process.js";

export interface CommandStartOpts extends StartOptions {
  /** Working directory (default the user's home). */
  cwd?: string;
  /** Added to the sandbox's environment. */
  envs?: Record<string, string>;
  /** Name or uid (default root, the agent's default; E2B's is `user`). */
  user?: string;
  /** Kill the command after this long, failing with ERR_SKIFF_TIMEOUT (default 60 s, as E2B; 0: never). */
  timeoutMs?: number;
  /** Keep stdin open for sendStdin() (default false: the command sees EOF at once). */
  stdin?: boolean;
}

export interface CommandRunOpts extends CommandStartOpts {
  /** Return a CommandHandle at once instead of waiting for the end. */
  background?: boolean;
}

export const defaultCommandTimeoutMs = 60_000;

/** E2B runs `bash -l -c`; skiff's images need not have bash (the built-in base is busybox), so `/bin/sh -c`. */
export const shellPath = "/bin/sh";

function execSpec(argv: string[], opts: CommandStartOpts & { pty?: { cols: number; rows: number } }, stdin: boolean): ExecSpec {
  const timeoutMs = opts.timeoutMs ?? defaultCommandTimeoutMs;
  return {
    argv,
    stdin,
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
    ...(opts.envs === undefined ? {} : { envs: opts.envs }),
    ...(opts.user === undefined ? {} : { user: opts.user }),
    ...(opts.pty === undefined ? {} : { pty: opts.pty }),
    ...(timeoutMs > 0 ? { timeoutMs } : {}),
  };
}

function processInfo(cmd: string, args: string[], opts: CommandStartOpts, pty: boolean): Omit<ProcessInfo, "pid"> {
  return { cmd, args, envs: opts.envs ?? {}, cwd: opts.cwd, pty };
}

export class Commands {
  constructor(readonly table: ProcessTable) {}

  /** Run a shell command line; resolves with its result (CommandExitError on a non-zero exit) or, with `background`, a handle. */
  run(cmd: string, opts: CommandRunOpts & { background: true }): Promise<CommandHandle>;
  run(cmd: string, opts?: CommandRunOpts & { background?: false }): Promise<CommandResult>;
  run(cmd: string, opts?: CommandRunOpts): Promise<CommandResult | CommandHandle>;
  async run(cmd: string, opts: CommandRunOpts = {}): Promise<CommandResult | CommandHandle> {
    if (typeof cmd !== "string" || cmd.trim() === "") {
      throw new SkiffError("ERR_SKIFF_USAGE", "commands.run takes a shell command line (a non-empty string)", { place: "cmd", hint: 'e.g. sb.commands.run("ls -l /tmp")' });
    }
    const argv = [shellPath, "-c", cmd];
    const handle = await this.table.start(execSpec(argv, opts, opts.stdin === true), processInfo(cmd, argv, opts, false), opts);
    return opts.background === true ? handle : handle.wait();
  }

  /** Commands and PTYs this Sandbox object started that still run. */
  async list(): Promise<ProcessInfo[]> {
    return this.table.list();
  }

  /** SIGKILL the process `pid`; false when it is not running. */
  async kill(pid: number): Promise<boolean> {
    return (await this.table.get(pid)?.kill()) ?? false;
  }

  sendStdin(pid: number, data: string | Uint8Array): Promise<void> {
    return this.table.find(pid).sendStdin(data);
  }

  async closeStdin(pid: number): Promise<void> {
    this.table.find(pid).closeStdin();
  }
}

export interface PtyCreateOpts extends Omit<CommandStartOpts, "onStdout" | "onStderr" | "stdin"> {
  cols: number;
  rows: number;
  /** Everything the terminal shows, as it arrives (raw bytes: a terminal's escape sequences included). */
  onData: (data: Uint8Array) => void | Promise<void>;
}

/** An interactive login shell on a pseudo-terminal. */
export class Pty {
  constructor(readonly table: ProcessTable) {}

  /** A handle whose sendInput(), resize(), kill() and wait() work on the PTY (E2B's CommandHandle). */
  async create(opts: PtyCreateOpts): Promise<CommandHandle> {
    const { cols, rows, onData, ...rest } = opts;
    const argv = [shellPath, "-i", "-l"];
    const handle = await this.table.start(
      execSpec(argv, { ...rest, pty: { cols, rows } }, true),
      processInfo(argv.join(" "), argv, rest, true),
      // A PTY's bytes go to onData undecoded: escape sequences and partial UTF-8 are the terminal's to handle.
      { onStdoutBytes: onData, ...(rest.maxOutputBytes === undefined ? {} : { maxOutputBytes: rest.maxOutputBytes }) },
    );
    return handle;
  }

  sendInput(pid: number, data: Uint8Array | string): Promise<void> {
    return this.table.find(pid).sendStdin(data);
  }

  async resize(pid: number, size: { cols: number; rows: number }): Promise<void> {
    this.table.find(pid).resize(size);
  }

  async kill(pid: number): Promise<boolean> {
    return (await this.table.get(pid)?.kill()) ?? false;
  }
}
