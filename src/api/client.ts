/**
 * A typed client of `skiff serve`. Its methods carry the names and shapes
 * of the Skiff methods they call on the server (list, inspect, create,
 * run, start, stop, kill, remove, exec, snapshot, restore, fork, pause, unpause,
 * listVolumes…), plus streaming exec (as AgentConnection.start), files and
 * logs; failures are the same SkiffError (code, message, hint, place) the
 * library would have thrown, so a caller cannot tell local from remote.
 * The SDK and the remote CLI are built on it.
 */
import { PassThrough, type Readable } from "node:stream";
import type { WebSocket } from "ws";
import type {
  ConsoleStream,
  CopyOnceOptions,
  CopyReport,
  ExecIO,
  ExecSession,
  ForwardInfo,
  ImagesClient,
  LogOptions,
  NetworksClient,
  PortForward,
  VolumesClient,
  ExecOnceResult,
  ExecRequest,
  ExecResult,
  ForkOptions,
  ImageSummary,
  NetworkCreateOptions,
  NetworkInfo,
  ProgressEvent,
  PullEvent,
  RestoreOptions,
  RunOptions,
  RunVmOptions,
  RunVmResult,
  RunningExec,
  SkiffClient,
  SnapshotCreateOptions,
  SnapshotInfo,
  StartOptions,
  VmInfo,
  VolumeCreateOptions,
  VolumeInfo,
  WindowSize,
} from "../index.js";
import { fromErrorBody, type ErrorBody } from "./errors.js";
import { execOverSocket, runOverSocket, shellRequest } from "./exec-client.js";
import type { CreateVmBody, RunVmBody } from "./schemas.js";
import { readAll, Transport, type TransportOptions } from "./transport.js";
import type { DownOptions, ServiceStatus } from "../project/project.js";
import type { UpOptions, UpResult } from "../project/up.js";
import {
  importImage,
  projectDown,
  projectLifecycle,
  projectPs,
  projectUp,
  type ImportImageOptions,
  type ImportResult,
  type ProjectListeners,
  type ProjectSource,
  type ProjectVerb,
} from "./project-client.js";

export type ClientOptions = TransportOptions;

/** What `events()` hands its listener: the library's event name and payload. */
export interface ServerEvent {
  event: "progress" | "pull" | "build" | "layer";
  data: ProgressEvent | PullEvent | Record<string, unknown>;
}

const q = (params: Record<string, string | number | boolean | undefined>): string => {
  const entries = Object.entries(params).filter((e): e is [string, string | number | boolean] => e[1] !== undefined && e[1] !== false);
  return entries.length === 0 ? "" : `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)])).toString()}`;
};
const seg = encodeURIComponent;

export class SkiffHttpClient implements SkiffClient {
  readonly #t: Transport;

  constructor(opts: ClientOptions) {
    this.#t = new Transport(opts);
  }

  // VMs

  list(opts: { all?: boolean } = {}): Promise<VmInfo[]> {
    return this.#t.json("GET", `/vms${q({ all: opts.all })}`);
  }

  inspect(name: string): Promise<VmInfo> {
    return this.#t.json("GET", `/vms/${seg(name)}`);
  }

  create(opts: CreateVmBody): Promise<VmInfo> {
    return this.#t.json("POST", "/vms", { json: opts });
  }

  /** As Skiff.run (create or restore, start, the main command, stop or remove): its foreground output collected, or with `attach` streamed through it. */
  async run(opts: CreateVmBody, run: RunVmOptions = {}): Promise<RunVmResult> {
    const { attach, ...rest } = run;
    const body: RunVmBody = { ...opts, ...rest };
    // With `from` the image is the snapshot's: the create options' image is not sent.
    if (run.from !== undefined) delete body.image;
    // Attached, the main command runs through the caller's `attach` on the /vms/run WebSocket.
    if (attach !== undefined && run.detach !== true) return runOverSocket(await this.#openSocket("/vms/run"), body, attach);
    return this.#t.json("POST", "/vms/run", { json: body });
  }

  start(name: string, opts: StartOptions = {}): Promise<VmInfo> {
    return this.#verb(name, "start", opts);
  }

  stop(name: string, opts: { timeoutMs?: number; hibernate?: boolean } = {}): Promise<VmInfo> {
    return this.#verb(name, "stop", opts);
  }

  restart(name: string, opts: { stopTimeoutMs?: number } = {}): Promise<VmInfo> {
    return this.#verb(name, "restart", opts.stopTimeoutMs === undefined ? {} : { timeoutMs: opts.stopTimeoutMs });
  }

  kill(name: string, opts: { signal?: number } = {}): Promise<VmInfo> {
    return this.#verb(name, "kill", opts);
  }

  pause(name: string): Promise<VmInfo> {
    return this.#verb(name, "pause", {});
  }

  unpause(name: string): Promise<VmInfo> {
    return this.#verb(name, "unpause", {});
  }

  /** Remove the VM `timeoutMs` from now, client or no client (0: never); the server enforces it (Sandbox.setTimeout). */
  setTimeout(name: string, timeoutMs: number): Promise<VmInfo> {
    return this.#verb(name, "timeout", { timeoutMs });
  }

  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.#t.json("DELETE", `/vms/${seg(name)}${q({ force: opts.force })}`);
  }

  #verb(name: string, verb: string, body: object): Promise<VmInfo> {
    return this.#t.json("POST", `/vms/${seg(name)}/${verb}`, { json: body });
  }

  // exec

  /** Run one command to its end and collect its output, as Skiff.exec. */
  exec(name: string, argv: string[], opts: RunOptions = {}): Promise<ExecOnceResult> {
    const { input, tty: _tty, ...rest } = opts;
    return this.#t.json("POST", `/vms/${seg(name)}/exec`, {
      json: { argv, ...rest, ...(input === undefined ? {} : { input: typeof input === "string" ? input : Buffer.from(input).toString("utf8") }) },
    });
  }

  /**
   * Start a command over a WebSocket, streaming as AgentConnection.start:
   * stdin from `io.stdin` (EOF at once without it), output into
   * `io.stdout`/`io.stderr`, a PTY with `req.tty`, signals, resizes.
   */
  async startExec(name: string, req: ExecRequest, io: ExecIO & { timeoutMs?: number } = {}): Promise<RunningExec> {
    const ws = await this.#openSocket(`/vms/${seg(name)}/exec`);
    return execOverSocket(ws, name, req, io);
  }

  /** Commands in one VM, each on a WebSocket of its own (the SkiffClient side of Skiff.connect). */
  async connect(name: string): Promise<ExecSession> {
    return {
      start: (req, io = {}) => this.startExec(name, req, io),
      shell: (opts = {}, io = {}) => this.startExec(name, shellRequest(opts.tty), io),
      close: async () => undefined,
    };
  }

  /**
   * `docker cp` between this host and a VM behind the server: the same copy
   * as Skiff.cp (guest commands with streams, and what comes out of the guest
   * unpacked as untrusted), its commands on the exec WebSocket.
   */
  async cp(src: string, dst: string, opts: CopyOnceOptions = {}): Promise<CopyReport | undefined> {
    const { copyOver, skiffHome } = await import("../index.js");
    return copyOver(
      async (vm) => {
        const info = await this.inspect(vm);
        return { vmName: info.name, sshUser: info.sshUser, home: skiffHome(), start: (req, io) => this.startExec(info.name, req, io), close: async () => undefined };
      },
      src,
      dst,
      opts,
    );
  }

  listForwards(name: string): Promise<ForwardInfo[]> {
    return this.#t.json("GET", `/vms/${seg(name)}/ports`);
  }

  changeForward(name: string, forward: PortForward, opts: { remove?: boolean } = {}): Promise<ForwardInfo[]> {
    return this.#t.json("POST", `/vms/${seg(name)}/ports`, { json: { forward, ...(opts.remove === true ? { remove: true } : {}) } });
  }

  /** An open WebSocket to `path`, or the server's refusal as a SkiffError. */
  async #openSocket(path: string): Promise<WebSocket> {
    const { openWebSocket } = await import("./ws-open.js");
    const { url, options } = this.#t.webSocket(path);
    return openWebSocket(url, options);
  }

  // files

  /** A file's bytes from a running VM. */
  async readFile(name: string, path: string): Promise<Buffer> {
    return readAll(await this.#t.send("GET", `/vms/${seg(name)}/files${q({ path })}`));
  }

  /** Write a file in a running VM (its parent must exist). */
  async writeFile(name: string, path: string, data: string | Buffer | Readable, opts: { mode?: number } = {}): Promise<void> {
    const body = typeof data === "string" ? Buffer.from(data) : data;
    const mode = opts.mode === undefined ? undefined : opts.mode.toString(8).padStart(4, "0");
    await readAll(await this.#t.send("PUT", `/vms/${seg(name)}/files${q({ path, mode })}`, { body, contentType: "application/octet-stream" }));
  }

  /** A tar of a file or directory in a running VM (named by its base name), as `skiff cp NAME:/path -`. */
  async getArchive(name: string, path: string): Promise<Readable> {
    return this.#t.send("GET", `/vms/${seg(name)}/files${q({ path, format: "tar" })}`);
  }

  /** Unpack a tar into an existing directory of a running VM, as `skiff cp - NAME:/dir`. */
  async putArchive(name: string, dir: string, tar: Buffer | Readable): Promise<void> {
    await readAll(await this.#t.send("PUT", `/vms/${seg(name)}/files${q({ path: dir, format: "tar" })}`, { body: tar, contentType: "application/x-tar" }));
  }

  /** The console log (its last `lines`); with `follow`, the stream runs until the VM stops or `signal` aborts. */
  async logs(name: string, opts: LogOptions = {}): Promise<Readable> {
    return this.#t.send("GET", `/vms/${seg(name)}/logs${q({ follow: opts.follow, lines: opts.lines, provision: opts.provision })}`, opts.signal === undefined ? {} : { signal: opts.signal });
  }

  /** The serial console as a duplex byte stream (end it to detach). */
  async console(name: string): Promise<ConsoleStream> {
    const [{ createWebSocketStream }, ws] = await Promise.all([import("./ws-open.js"), this.#openSocket(`/vms/${seg(name)}/console`)]);
    const duplex = createWebSocketStream(ws);
    const output = new PassThrough();
    duplex.pipe(output);
    return { output, input: duplex, close: () => ws.close() };
  }

  // snapshots

  snapshot(name: string, opts: SnapshotCreateOptions = {}): Promise<SnapshotInfo> {
    return this.#t.json("POST", `/vms/${seg(name)}/snapshots`, { json: opts });
  }

  restore(ref: string, opts: Omit<RestoreOptions, "attach"> = {}): Promise<VmInfo> {
    return this.#t.json("POST", `/snapshots/${seg(ref)}/restore`, { json: opts });
  }

  fork(name: string, opts: ForkOptions = {}): Promise<VmInfo[]> {
    return this.#t.json("POST", `/vms/${seg(name)}/fork`, { json: opts });
  }

  listSnapshots(vm?: string): Promise<SnapshotInfo[]> {
    return this.#t.json("GET", `/snapshots${q({ vm })}`);
  }

  inspectSnapshot(ref: string): Promise<SnapshotInfo> {
    return this.#t.json("GET", `/snapshots/${seg(ref)}`);
  }

  removeSnapshot(ref: string, opts: { force?: boolean } = {}): Promise<SnapshotInfo> {
    return this.#t.json("DELETE", `/snapshots/${seg(ref)}${q({ force: opts.force })}`);
  }

  // volumes, networks, images: flat, and as Skiff's services

  readonly images: ImagesClient = {
    list: () => this.listImages(),
    inspect: (ref) => this.#t.json("GET", `/images/${seg(ref)}`),
    remove: (ref) => this.removeImage(ref),
    pull: async (ref, opts = {}) => (await this.pullImage(ref, opts)) as { name: string },
  };

  readonly networks: NetworksClient = {
    list: () => this.listNetworks(),
    inspect: (name) => this.inspectNetwork(name),
    create: (opts) => this.createNetwork(opts),
    remove: (name) => this.removeNetwork(name),
  };

  readonly volumes: VolumesClient = {
    list: () => this.listVolumes(),
    inspect: (name) => this.inspectVolume(name),
    create: (opts) => this.createVolume(opts),
    remove: (name, opts) => this.removeVolume(name, opts),
  };

  listVolumes(): Promise<VolumeInfo[]> {
    return this.#t.json("GET", "/volumes");
  }

  createVolume(opts: VolumeCreateOptions): Promise<VolumeInfo> {
    return this.#t.json("POST", "/volumes", { json: opts });
  }

  inspectVolume(name: string): Promise<VolumeInfo> {
    return this.#t.json("GET", `/volumes/${seg(name)}`);
  }

  async removeVolume(name: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.#t.json("DELETE", `/volumes/${seg(name)}${q({ force: opts.force })}`);
  }

  listNetworks(): Promise<NetworkInfo[]> {
    return this.#t.json("GET", "/networks");
  }

  createNetwork(opts: NetworkCreateOptions): Promise<NetworkInfo> {
    return this.#t.json("POST", "/networks", { json: opts });
  }

  inspectNetwork(name: string): Promise<NetworkInfo> {
    return this.#t.json("GET", `/networks/${seg(name)}`);
  }

  async removeNetwork(name: string): Promise<void> {
    await this.#t.json("DELETE", `/networks/${seg(name)}`);
  }

  listImages(): Promise<ImageSummary[]> {
    return this.#t.json("GET", "/images");
  }

  removeImage(ref: string): Promise<ImageSummary> {
    return this.#t.json("DELETE", `/images/${seg(ref)}`);
  }

  /** Pull an image, its progress to `onPull`/`onBuild`; resolves with what was pulled. */
  async pullImage(ref: string, opts: { platform?: string; onPull?: (e: PullEvent) => void; onBuild?: (e: unknown) => void } = {}): Promise<Record<string, unknown>> {
    const res = await this.#t.send("POST", "/images/pull", { json: { ref, ...(opts.platform === undefined ? {} : { platform: opts.platform }) } });
    for await (const line of lines(res)) {
      const msg = JSON.parse(line) as { kind: string; event?: unknown; image?: Record<string, unknown>; error?: ErrorBody };
      if (msg.kind === "pull") opts.onPull?.(msg.event as PullEvent);
      else if (msg.kind === "build") opts.onBuild?.(msg.event);
      else if (msg.kind === "done" && msg.image !== undefined) return msg.image;
      else if (msg.kind === "error") throw fromErrorBody(msg.error, 0);
    }
    throw fromErrorBody({ code: "ERR_SKIFF_REGISTRY", message: `the pull of ${ref} ended without a result` }, 0);
  }

  // projects and image import (project-client.ts): a project is named by a ProjectSource, as -f/-p name it to `skiff up`

  /** The projects that have VMs on the server, with how many run. */
  listProjects(): Promise<{ name: string; vms: number; running: number }[]> {
    return this.#t.json("GET", "/projects");
  }

  /** `skiff up -d`: resolves once everything is up, with UpResult (what `up --json` prints); progress to the listeners. */
  projectUp(source: ProjectSource, opts: UpOptions & ProjectListeners = {}): Promise<UpResult> {
    return projectUp(this.#t, source, opts);
  }

  /** `skiff down` (`volumes`: -v, `destroy`: --destroy); a name is enough. */
  projectDown(source: ProjectSource, opts: DownOptions & ProjectListeners = {}): Promise<{ vms: string[]; networks: string[]; volumes: string[]; images: string[] }> {
    return projectDown(this.#t, source, opts);
  }

  /** `skiff compose ps` (the rows `ps --json` prints); health only when the source is the file, not a bare name. */
  projectPs(source: ProjectSource, opts: { all?: boolean } = {}): Promise<ServiceStatus[]> {
    return projectPs(this.#t, source, opts);
  }

  /** `skiff compose stop|start|restart|pause|unpause [service...]`: the VM names acted on. */
  projectVerb(verb: ProjectVerb, source: ProjectSource, services: readonly string[] = [], on: ProjectListeners = {}): Promise<string[]> {
    return projectLifecycle(this.#t, verb, source, services, on);
  }

  /** `skiff image import`: a local archive file (a path), bytes or a stream, uploaded; resolves with what was imported. */
  importImage(archive: string | Buffer | Readable, opts: ImportImageOptions = {}): Promise<ImportResult> {
    return importImage(this.#t, archive, opts);
  }

  /**
   * Listen to the server's events (progress of every verb, pulls, builds)
   * until `close()`; resolves once subscribed, so what the caller starts next is seen.
   */
  async events(onEvent: (e: ServerEvent) => void, opts: { vm?: string } = {}): Promise<{ close(): void; closed: Promise<void> }> {
    const abort = new AbortController();
    const res = await this.#t.send("GET", `/events${q({ vm: opts.vm })}`, { signal: abort.signal });
    const closed = (async () => {
      let event = "message";
      try {
        for await (const line of lines(res)) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) onEvent({ event: event as ServerEvent["event"], data: JSON.parse(line.slice(5)) as ServerEvent["data"] });
          else if (line === "") event = "message";
        }
      } catch (err) {
        if ((err as Error).name !== "AbortError" && !abort.signal.aborted) throw err;
      }
    })();
    return { close: () => abort.abort(), closed };
  }
}

/** The lines of a stream (without their newlines). */
async function* lines(stream: Readable): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream) {
    rest += (chunk as Buffer).toString("utf8");
    let i: number;
    while ((i = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, i).replace(/\r$/, "");
      rest = rest.slice(i + 1);
    }
  }
  if (rest !== "") yield rest;
}
