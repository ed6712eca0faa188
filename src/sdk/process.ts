/**
 * A process started through the SDK (a command or a PTY) and the table of
 * those a Sandbox object has running, which `commands.list()` and
 * `commands.kill(pid)` read.
 *
 * `pid` is the SDK's number for the process, counted per Sandbox object
 * from 1, not the guest's PID: skiff's agent does not report the guest's
 * PID, and a number of our own cannot name some other process in the guest.
 */
import { SkiffError } from "../index.js";
import type { ExecChannel, ExecSpec, ExitStatus, SandboxBackend } from "./backend.js";
import { OutputBuffer } from "./guest-text.js";

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Set when a signal ended the command ("killed by SIGKILL"). */
  error?: string;
}

/**
 * A command exited non-zero (E2B's CommandExitError), with its result. Not
 * a SkiffError: that class's `exitCode` is the CLI's exit code, and here it
 * is the command's, as E2B names it. It has a `code` all the same.
 */
export class CommandExitError extends Error implements CommandResult {
  override readonly name = "CommandExitError";
  readonly code = "ERR_SKIFF_COMMAND_EXIT";
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly error: string | undefined;

  constructor(
    readonly result: CommandResult,
    what: string,
  ) {
    super(`${what} exited with code ${result.exitCode}${result.error === undefined ? "" : ` (${result.error})`}`);
    this.exitCode = result.exitCode;
    this.stdout = result.stdout;
    this.stderr = result.stderr;
    this.error = result.error;
  }
}

export interface ProcessInfo {
  pid: number;
  /** The command line as given (a PTY's shell for PTYs). */
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  cwd: string | undefined;
  pty: boolean;
}

export interface StartOptions {
  onStdout?: (data: string) => void | Promise<void>;
  onStderr?: (data: string) => void | Promise<void>;
  /** Bytes of stdout (and of stderr) kept for the result; callbacks see everything (default 16 MiB). */
  maxOutputBytes?: number;
}

interface StartHooks extends StartOptions {
  /** stdout's bytes as they come, undecoded (a PTY's onData). */
  onStdoutBytes?: (chunk: Uint8Array) => void | Promise<void>;
}

export const defaultMaxOutputBytes = 16 * 1024 * 1024;

/** What a Sandbox's command and PTY modules share: its backend, id and table of running processes. */
export class ProcessTable {
  readonly #running = new Map<number, CommandHandle>();
  #next = 1;

  constructor(
    readonly backend: SandboxBackend,
    readonly sandboxId: string,
  ) {}

  async start(spec: ExecSpec, info: Omit<ProcessInfo, "pid">, opts: StartHooks): Promise<CommandHandle> {
    const limit = opts.maxOutputBytes ?? defaultMaxOutputBytes;
    const stdout = new OutputBuffer(limit);
    const stderr = new OutputBuffer(limit);
    const channel = await this.backend.exec(this.sandboxId, spec, {
      stdout: (chunk) => {
        const text = stdout.push(chunk);
        if (opts.onStdoutBytes !== undefined) deliver(opts.onStdoutBytes, Uint8Array.from(chunk));
        else deliver(opts.onStdout, text);
      },
      stderr: (chunk) => deliver(opts.onStderr, stderr.push(chunk)),
    });
    const pid = this.#next++;
    const handle = new CommandHandle({ ...info, pid }, channel, stdout, stderr);
    this.#running.set(pid, handle);
    const forget = () => this.#running.delete(pid);
    channel.done.then(forget, forget);
    return handle;
  }

  list(): ProcessInfo[] {
    return [...this.#running.values()].map((h) => h.info);
  }

  get(pid: number): CommandHandle | undefined {
    return this.#running.get(pid);
  }

  /** The running process `pid`; ERR_SKIFF_USAGE when there is none. */
  find(pid: number): CommandHandle {
    const handle = this.#running.get(pid);
    if (handle === undefined) {
      throw new SkiffError("ERR_SKIFF_USAGE", `no running process ${pid} in sandbox ${this.sandboxId}`, { place: "pid", hint: "commands.list() shows those this Sandbox object started" });
    }
    return handle;
  }
}

/** A callback's throw or rejection must not break the stream it reads. */
function deliver<T extends string | Uint8Array>(fn: ((data: T) => void | Promise<void>) | undefined, data: T): void {
  if (fn === undefined || data.length === 0) return;
  try {
    void Promise.resolve(fn(data)).catch(() => undefined);
  } catch {
    // the caller's callback failed; the output is still collected
  }
}

/** A running command (E2B's CommandHandle): its output so far, and ways to wait for it, feed it and end it. */
export class CommandHandle {
  readonly #channel: ExecChannel;
  readonly #stdout: OutputBuffer;
  readonly #stderr: OutputBuffer;
  readonly #done: Promise<ExitStatus>;
  #status: ExitStatus | undefined;
  #failure: unknown;

  constructor(
    readonly info: ProcessInfo,
    channel: ExecChannel,
    stdout: OutputBuffer,
    stderr: OutputBuffer,
  ) {
    this.#channel = channel;
    this.#stdout = stdout;
    this.#stderr = stderr;
    this.#done = channel.done.then(
      (status) => (this.#status = status),
      (err: unknown) => {
        this.#failure = err;
        throw err;
      },
    );
    // Nobody has to wait for a background command: its failure is reported by wait(), not as an unhandled rejection.
    this.#done.catch(() => undefined);
  }

  get pid(): number {
    return this.info.pid;
  }

  /** stdout so far (up to maxOutputBytes). */
  get stdout(): string {
    return this.#stdout.text();
  }

  get stderr(): string {
    return this.#stderr.text();
  }

  /** Undefined while the command runs. */
  get exitCode(): number | undefined {
    return this.#status?.exitCode;
  }

  get error(): string | undefined {
    if (this.#failure !== undefined) return this.#failure instanceof Error ? this.#failure.message : String(this.#failure);
    return this.#status?.signal === undefined ? undefined : `killed by SIG${this.#status.signal}`;
  }

  /** The result once the command ends; CommandExitError when it exits non-zero, ERR_SKIFF_TIMEOUT when its timeout killed it. */
  async wait(): Promise<CommandResult> {
    const status = await this.#done;
    const result: CommandResult = { exitCode: status.exitCode, stdout: this.stdout, stderr: this.stderr };
    if (status.signal !== undefined) result.error = `killed by SIG${status.signal}`;
    if (status.exitCode !== 0) throw new CommandExitError(result, this.info.pty ? "the PTY's shell" : `\`${describe(this.info.cmd)}\``);
    return result;
  }

  /** SIGKILL; false when the command had already ended. */
  async kill(): Promise<boolean> {
    if (this.#status !== undefined || this.#failure !== undefined) return false;
    await this.#channel.signal("KILL");
    return true;
  }

  /** Any signal by name ("TERM") or number. */
  signal(signal: string | number): Promise<void> {
    return this.#channel.signal(signal);
  }

  /** Write to the command's stdin (it must have been started with `stdin: true`; PTYs always are). */
  sendStdin(data: string | Uint8Array): Promise<void> {
    return this.#channel.writeStdin(typeof data === "string" ? Buffer.from(data) : data);
  }

  /** A PTY's keyboard: sendStdin by E2B's name for it. */
  sendInput(data: string | Uint8Array): Promise<void> {
    return this.sendStdin(data);
  }

  /** EOF on the command's stdin. */
  closeStdin(): void {
    this.#channel.closeStdin();
  }

  /** A PTY's new size. */
  resize(size: { cols: number; rows: number }): void {
    this.#channel.resize(size);
  }
}

function describe(cmd: string): string {
  return cmd.length <= 60 ? cmd : `${cmd.slice(0, 57)}...`;
}
