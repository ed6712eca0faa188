/**
 * The remote backend: sandboxes are VMs of a `skiff serve`, reached over
 * SkiffHttpClient. Lifecycle verbs are one HTTP request each; a process is
 * one exec WebSocket (start, then stdout/stderr frames and exit one way and
 * stdin, EOF, signal and resize frames the other), so nothing is held
 * between calls and `release` has nothing to let go of. The server keeps
 * the agent connection to the guest open between execs (src/server/agents.ts).
 *
 * Metadata and the timeout are VM labels as in process (labels.ts), so a
 * local and a remote SDK on one home agree. The server enforces the
 * timeout: its watcher removes a sandbox at its end whether or not any
 * client is left (src/server/deadlines.ts); setTimeout moves the end there.
 */
import { PassThrough } from "node:stream";
import { SkiffHttpClient } from "../api/client.js";
import { serverUrl } from "../api/transport.js";
import { SkiffError, type VmInfo } from "../index.js";
import type { CreateSandboxRequest, ExecChannel, ExecSink, ExecSpec, SandboxBackend, SandboxInfo, SnapshotRef } from "./backend.js";
import { execRequest, removed, sinkStream, writeTo } from "./exec-streams.js";
import { createLabels, forkPrefix, sandboxInfo } from "./labels.js";

export interface RemoteBackendOptions {
  /** The server: `http://host:port`, `https://host:port`, `unix:/path/skiff.sock`; a bare `host:port` is http. */
  host: string;
  /** Its bearer token (`skiff serve --print-token`). */
  token?: string;
  /** https: a CA to trust (a self-signed server certificate). */
  ca?: Buffer | string;
}


export class RemoteBackend implements SandboxBackend {
  readonly client: SkiffHttpClient;

  constructor(opts: RemoteBackendOptions) {
    this.client = new SkiffHttpClient({ url: serverUrl(opts.host), ...(opts.token === undefined ? {} : { token: opts.token }), ...(opts.ca === undefined ? {} : { ca: opts.ca }) });
  }

  async create(req: CreateSandboxRequest): Promise<SandboxInfo> {
    const labels = createLabels(req);
    const named = req.name === undefined ? {} : { name: req.name };
    if (req.snapshot !== undefined) return sandboxInfo(await this.client.restore(req.snapshot, { labels, ...named }));
    const made = await this.client.create({
      image: req.image ?? "base",
      labels,
      ...named,
      ...(req.memory === undefined ? {} : { memory: req.memory }),
      ...(req.cpus === undefined ? {} : { cpus: req.cpus }),
      ...(req.envs === undefined ? {} : { env: req.envs }),
    });
    let vm: VmInfo;
    try {
      vm = await this.client.start(made.name);
    } catch (err) {
      await this.client.remove(made.name, { force: true }).catch(() => undefined);
      throw err;
    }
    return sandboxInfo(vm);
  }

  async info(id: string): Promise<SandboxInfo> {
    const info = sandboxInfo(await this.client.inspect(id));
    if (info.endAt !== undefined && info.endAt.getTime() <= Date.now()) {
      await this.kill(id);
      throw new SkiffError("ERR_SKIFF_VM_NOT_FOUND", `sandbox ${id} has reached its timeout and was killed`, { place: id, details: { endAt: info.endAt } });
    }
    return info;
  }

  async list(): Promise<SandboxInfo[]> {
    return (await this.client.list()).map(sandboxInfo);
  }

  kill(id: string): Promise<boolean> {
    return removed(this.client.remove(id, { force: true }));
  }

  async setTimeout(id: string, timeoutMs: number): Promise<void> {
    await this.client.setTimeout(id, timeoutMs);
  }

  async pause(id: string): Promise<void> {
    await this.client.pause(id);
  }

  async resume(id: string): Promise<void> {
    await this.client.unpause(id);
  }

  async snapshot(id: string, name?: string): Promise<SnapshotRef> {
    const snap = await this.client.snapshot(id, name === undefined ? {} : { name });
    return { snapshotId: snap.id, name: snap.name };
  }

  async fork(id: string, count: number): Promise<SandboxInfo[]> {
    // The clones carry the original's metadata and timeout (a restore alone takes no labels).
    const { labels } = await this.client.inspect(id);
    return (await this.client.fork(id, { count, prefix: forkPrefix(id), labels })).map(sandboxInfo);
  }

  async exec(id: string, spec: ExecSpec, sink: ExecSink): Promise<ExecChannel> {
    // No look at the VM first: the server refuses a paused one (ERR_SKIFF_VM_PAUSED), as in process.
    const stdin = spec.stdin ? new PassThrough() : undefined;
    const running = await this.client.startExec(
      id,
      execRequest(spec),
      {
        stdout: sinkStream((c) => sink.stdout(c)),
        stderr: sinkStream((c) => sink.stderr(c)),
        ...(stdin === undefined ? {} : { stdin }),
        ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
      },
    );
    return {
      done: running.done.then((r) => ({ exitCode: r.code, ...(r.signal === undefined ? {} : { signal: r.signal }) })),
      writeStdin: (data) => writeTo(stdin, data),
      closeStdin: () => stdin?.end(),
      signal: (signal) => running.sendSignal(signal),
      resize: (size) => running.setWindow(size),
    };
  }

  /** Each process is its own WebSocket, closed at its exit: nothing is held. */
  async release(_id: string): Promise<void> {}
}
