/**
 * A typed client of `skiff serve`. Its methods carry the names and shapes
 * of the Skiff methods they call on the server (list, inspect, create,
 * run, start, stop, kill, remove, exec, snapshot, restore, fork, pause, unpause,
 * listVolumes…), plus streaming exec (as AgentConnection.start), files and
 * logs; failures are the same SkiffError (code, message, hint, place) the
 * library would have thrown, so a caller cannot tell local from remote.
 * The SDK and the remote CLI are built on it.
 */
import { PassThrough, Readable, type Writable } from "node:stream";
import type {
  ExecIO,
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
  SnapshotCreateOptions,
  SnapshotInfo,
  StartOptions,
  VmInfo,
  VolumeCreateOptions,
  VolumeInfo,
  WindowSize,
} from "../index.js";
import { fromErrorBody, type ErrorBody } from "./errors.js";
import { decodeChunk, encodeChunk, type ExecControl, type ExecReply, type ExecStart } from "./exec-protocol.js";
import type { CreateVmBody, RunVmBody } from "./schemas.js";
import { readAll, readText, Transport, type TransportOptions } from "./transport.js";

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

export class SkiffHttpClient {
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

  /** As Skiff.run (create or restore, start, the main command, stop or remove), its foreground output collected; no `attach`: use startExec to stream. */
  run(opts: CreateVmBody, run: Omit<RunVmOptions, "attach"> = {}): Promise<RunVmResult> {
    const body: RunVmBody = { ...opts, ...run };
    // With `from` the image is the snapshot's: the create options' image is not sent.
    if (run.from !== undefined) delete body.image;
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
    const { default: WebSocket } = await import("ws");
    const { url, options } = this.#t.webSocket(`/vms/${seg(name)}/exec`);
    const ws = new WebSocket(url, options);
    const control = (frame: ExecControl | ExecStart) => ws.send(JSON.stringify(frame));
    let started!: { resolve: () => void; reject: (e: unknown) => void };
    let ended!: { resolve: (r: ExecResult) => void; reject: (e: unknown) => void };
    const start = new Promise<void>((resolve, reject) => (started = { resolve, reject }));
    const done = new Promise<ExecResult>((resolve, reject) => (ended = { resolve, reject }));
    const fail = (err: unknown) => {
      started.reject(err);
      ended.reject(err);
    };
    let result: ExecResult | undefined;
    ws.on("unexpected-response", (_req, res) => void readText(res).then((text) => fail(fromErrorBody(safeJson(text), res.statusCode ?? 0)), fail));
    ws.on("error", fail);
    ws.on("open", () => {
      const { timeoutMs } = io;
      control({ type: "start", ...req, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
      if (io.stdin === undefined) control({ type: "eof" });
      else {
        io.stdin.on("data", (chunk: Buffer) => ws.send(encodeChunk("stdin", typeof chunk === "string" ? Buffer.from(chunk) : chunk)));
        io.stdin.once("end", () => ws.readyState === ws.OPEN && control({ type: "eof" }));
      }
    });
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        const chunk = decodeChunk(data);
        const out = chunk?.stream === "stdout" ? io.stdout : chunk?.stream === "stderr" ? io.stderr : undefined;
        if (chunk !== undefined) out?.write(chunk.data);
        return;
      }
      const reply = JSON.parse(data.toString()) as ExecReply;
      if (reply.type === "started") started.resolve();
      else if (reply.type === "exit") result = { code: reply.code, ...(reply.signal === undefined ? {} : { signal: reply.signal }) };
      else fail(fromErrorBody(reply.error as ErrorBody, 0));
    });
    ws.on("close", () => {
      if (result !== undefined) ended.resolve(result);
      else fail(fromErrorBody({ code: "ERR_SKIFF_AGENT", message: `the exec connection to ${name} closed before the command ended` }, 0));
    });
    done.catch(() => undefined);
    await start;
    return {
      done,
      sendSignal: async (signal: string | number) => control({ type: "signal", signal }),
      setWindow: (size: WindowSize) => control({ type: "resize", cols: size.cols, rows: size.rows }),
    };
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
  async logs(name: string, opts: { follow?: boolean; lines?: number; signal?: AbortSignal } = {}): Promise<Readable> {
    return this.#t.send("GET", `/vms/${seg(name)}/logs${q({ follow: opts.follow, lines: opts.lines })}`, opts.signal === undefined ? {} : { signal: opts.signal });
  }

  /** The serial console as a duplex byte stream (end it to detach). */
  async console(name: string): Promise<{ output: Readable; input: Writable; close(): void }> {
    const { default: WebSocket, createWebSocketStream } = await import("ws");
    const { url, options } = this.#t.webSocket(`/vms/${seg(name)}/console`);
    const ws = new WebSocket(url, options);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res) => void readText(res).then((text) => reject(fromErrorBody(safeJson(text), res.statusCode ?? 0)), reject));
    });
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

  // volumes, networks, images

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

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
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
