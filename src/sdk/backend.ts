/**
 * What a Sandbox needs from whatever runs its VM: lifecycle verbs and one
 * way to run a process. Files, commands and PTYs are all built on `exec`
 * (files.ts runs small shell scripts), so a backend is two things to write:
 * the in-process one over `Skiff` (local.ts) and, later, one over `skiff
 * serve` where `exec` is one WebSocket: a start message, then output and
 * exit frames one way and stdin, EOF, signal and resize frames the other.
 *
 * Sandboxes are named by their VM's name (the `sandboxId`).
 */

/** A sandbox as the backend reports it (E2B's SandboxInfo, with skiff's VM facts). */
export interface SandboxInfo {
  sandboxId: string;
  /** The image it was made from (E2B's templateId). */
  templateId: string;
  /** running, paused, stopped, … (skiff's RunState). */
  state: string;
  metadata: Record<string, string>;
  startedAt: Date | undefined;
  /** When the sandbox is killed unless something else ends it first (Sandbox.create's timeoutMs). */
  endAt: Date | undefined;
  cpuCount: number;
  memoryMB: number;
}

export interface CreateSandboxRequest {
  /** A skiff image (default `base`); not with `snapshot`. */
  image?: string;
  /** Restore this skiff snapshot (id or name) instead of booting. */
  snapshot?: string;
  name?: string;
  /** MiB, or a size with a unit ("512m", "1g"). */
  memory?: number | string;
  cpus?: number;
  envs?: Record<string, string>;
  metadata?: Record<string, string>;
  /** Kill the sandbox this long after its VM started (a fork or restore of it: after theirs); never when undefined. */
  timeoutMs?: number;
}

export interface SnapshotRef {
  snapshotId: string;
  name: string | undefined;
}

export interface ExecSpec {
  argv: string[];
  cwd?: string;
  envs?: Record<string, string>;
  user?: string;
  /** Run on a pseudo-terminal of this size (output then arrives on stdout only). */
  pty?: { cols: number; rows: number };
  /** Keep stdin open for writeStdin(); false: the process sees EOF at once. */
  stdin: boolean;
  /** Kill the process (SIGKILL) after this long; `done` then rejects with ERR_SKIFF_TIMEOUT. */
  timeoutMs?: number;
}

/** Where a process's output goes, chunk by chunk, in order. */
export interface ExecSink {
  stdout(chunk: Uint8Array): void;
  stderr(chunk: Uint8Array): void;
}

export interface ExitStatus {
  /** The exit code; 128 + N when signal N ended the process. */
  exitCode: number;
  /** The signal's name ("KILL") when one ended it. */
  signal?: string;
}

/** One running process. Every method is a message on the remote backend's exec WebSocket. */
export interface ExecChannel {
  /** Settles after the exit and all output reached the sink; rejects with a SkiffError (ERR_SKIFF_TIMEOUT, ERR_SKIFF_AGENT). */
  readonly done: Promise<ExitStatus>;
  writeStdin(data: Uint8Array): Promise<void>;
  closeStdin(): void;
  /** A name ("TERM", "KILL") or number; a no-op once the process has ended. */
  signal(signal: string | number): Promise<void>;
  resize(size: { cols: number; rows: number }): void;
}

export interface SandboxBackend {
  create(req: CreateSandboxRequest): Promise<SandboxInfo>;
  /** ERR_SKIFF_VM_NOT_FOUND when there is no such sandbox. */
  info(id: string): Promise<SandboxInfo>;
  /** Sandboxes that run (or are paused). */
  list(): Promise<SandboxInfo[]>;
  /** End and remove the sandbox; false when it was already gone. */
  kill(id: string): Promise<boolean>;
  /** Kill the sandbox `timeoutMs` from now instead of at its old end (0: never). */
  setTimeout(id: string, timeoutMs: number): Promise<void>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  snapshot(id: string, name?: string): Promise<SnapshotRef>;
  /** `count` live clones; each has the original's timeoutMs, from its own start. */
  fork(id: string, count: number): Promise<SandboxInfo[]>;
  exec(id: string, spec: ExecSpec, sink: ExecSink): Promise<ExecChannel>;
  /** Let go of what the backend holds for this sandbox (connections); the sandbox runs on. */
  release(id: string): Promise<void>;
}
