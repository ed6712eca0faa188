/**
 * The one client interface (issue 13): what a front end asks of skiff,
 * whether skiff runs in this process (`Skiff`) or behind `skiff serve`
 * (`SkiffHttpClient`, src/api/client.ts). Both implement it, checked by
 * the compiler (`implements SkiffClient`), and the CLI holds one, so
 * `skiff --host URL` runs the same code with the same output.
 *
 * Left out on purpose: what needs this host's own files or processes (SSH
 * endpoints and proxies, layer builds, autostart units, doctor, the store).
 * Front ends reach those through `Skiff` itself and say so when remote.
 */
import type { Readable } from "node:stream";
import type { CopyReport, ExecIO, ExecRequest, RunOptions, RunningExec } from "../guest/agent.js";
import type { ShellOptions } from "../guest/agent.js";
import type { ExecOnceResult, CopyOnceOptions } from "./oneshot.js";
import type { CreateOptions } from "./create.js";
import type { ForkOptions, SnapshotCreateOptions, StartOptions } from "./skiff.js";
import type { VmInfo } from "./info.js";
import type { RunVmOptions, RunVmResult } from "./run.js";
import type { LogOptions } from "./logs.js";
import type { ConsoleStream } from "./console.js";
import type { ForwardInfo } from "./ports.js";
import type { PortForward } from "../spec/machine.js";
import type { SnapshotInfo } from "../snapshot/service.js";
import type { RestoreOptions } from "../snapshot/restore.js";
import type { VolumeCreateOptions, VolumeInfo } from "./volumes.js";
import type { NetworkCreateOptions, NetworkInfo } from "./networks.js";
import type { ImageSummary } from "./images.js";
import type { PullEvent } from "../image/oci/types.js";

/** A way to run commands in one VM: an agent connection in process, a WebSocket per command remotely. */
export interface ExecSession {
  start(req: ExecRequest, io?: ExecIO & { timeoutMs?: number }): Promise<RunningExec>;
  /** A login shell (a PTY unless `tty: false`). */
  shell(opts?: ShellOptions, io?: ExecIO): Promise<RunningExec>;
  close(): Promise<void>;
}

export interface ImagesClient {
  list(): Promise<ImageSummary[]>;
  inspect(ref: string): Promise<ImageSummary>;
  remove(ref: string): Promise<ImageSummary>;
  pull(ref: string, opts?: { platform?: string; onPull?: (e: PullEvent) => void }): Promise<{ name: string }>;
}

export interface NetworksClient {
  list(): Promise<NetworkInfo[]>;
  inspect(name: string): Promise<NetworkInfo>;
  create(opts: NetworkCreateOptions): Promise<NetworkInfo>;
  remove(name: string): Promise<void>;
}

export interface VolumesClient {
  list(): Promise<VolumeInfo[]>;
  inspect(name: string): Promise<VolumeInfo>;
  create(opts: VolumeCreateOptions): Promise<VolumeInfo>;
  remove(name: string, opts?: { force?: boolean }): Promise<void>;
}

export interface SkiffClient {
  list(opts?: { all?: boolean }): Promise<VmInfo[]>;
  inspect(name: string): Promise<VmInfo>;
  create(opts: CreateOptions): Promise<VmInfo>;
  /** create (or restore `from`), start, the main command (through `attach` in the foreground), stop or remove. */
  run(opts: CreateOptions, run?: RunVmOptions): Promise<RunVmResult>;
  start(name: string, opts?: StartOptions): Promise<VmInfo>;
  stop(name: string, opts?: { timeoutMs?: number; hibernate?: boolean }): Promise<VmInfo>;
  restart(name: string, opts?: { stopTimeoutMs?: number }): Promise<VmInfo>;
  kill(name: string, opts?: { signal?: number }): Promise<VmInfo>;
  pause(name: string): Promise<VmInfo>;
  unpause(name: string): Promise<VmInfo>;
  remove(name: string, opts?: { force?: boolean }): Promise<void>;

  exec(name: string, argv: string[], opts?: RunOptions): Promise<ExecOnceResult>;
  connect(name: string): Promise<ExecSession>;
  /** `docker cp`: one side `NAME:/absolute/path`, the other a path on the caller's host (or - for a tar on `input`/`output`). */
  cp(src: string, dst: string, opts?: CopyOnceOptions): Promise<CopyReport | undefined>;
  logs(name: string, opts?: LogOptions): Promise<Readable>;
  console(name: string): Promise<ConsoleStream>;
  listForwards(name: string): Promise<ForwardInfo[]>;
  changeForward(name: string, forward: PortForward, opts?: { remove?: boolean }): Promise<ForwardInfo[]>;

  snapshot(name: string, opts?: SnapshotCreateOptions): Promise<SnapshotInfo>;
  restore(ref: string, opts?: RestoreOptions): Promise<VmInfo>;
  fork(name: string, opts?: ForkOptions): Promise<VmInfo[]>;
  listSnapshots(vm?: string): Promise<SnapshotInfo[]>;
  inspectSnapshot(ref: string): Promise<SnapshotInfo>;
  removeSnapshot(ref: string, opts?: { force?: boolean }): Promise<SnapshotInfo>;

  readonly images: ImagesClient;
  readonly networks: NetworksClient;
  readonly volumes: VolumesClient;
}
