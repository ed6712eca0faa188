/**
 * The typed library behind every front end: `new Skiff()`, its services
 * and the lifecycle verbs. It never prints; it returns values, throws
 * SkiffError and emits progress events. A thin facade over one context
 * (home, cache, runner, events): each kind of resource is a service made
 * on first use (src/engine/services/: `vms`, `snapshots`, `images`,
 * `networks`, `volumes`, `layers`, `kernels`), and the flat verbs (`create`, `start`,
 * `snapshot`, `createVolume`, …) call them.
 *
 * The modules behind booting, creating and reaching a VM (QEMU's command
 * line, the jail, networks, volumes, layers, SSH) are imported by the verbs
 * that use them, when they are first called: listing and inspecting read
 * records and the process table only, and a `skiff ps` must not load what a
 * `skiff run` needs (docs/benchmarks.md, "CLI start").
 */
import { EventEmitter } from "node:events";
import type { AgentConnection, CopyReport, RunOptions } from "../guest/agent.js";
import type { CopyOnceOptions, ExecOnceResult } from "./oneshot.js";
import type { ProcTable } from "../process/procs.js";
import { defaultRunner, type Runner } from "../process/runner.js";
import { skiffPaths } from "../store/paths.js";
import { VmStore, type VmRecord } from "../store/store.js";
import type { SkiffEvents } from "./events.js";
import type { HostFacts } from "./host.js";
import type { CreateOptions } from "./create.js";
import { reconcile } from "./reconcile.js";
import type { RunState } from "./status.js";
import type { VmInfo } from "./info.js";
import type { BrokenVmInfo } from "./broken.js";
import type { VolumeCreateOptions, VolumeInfo } from "./volumes.js";
import { ImageService } from "./services/images.js";
import { KernelService } from "./services/kernels.js";
import { LayerService } from "./services/layers.js";
import { NetworkService } from "./services/networks.js";
import { SnapshotService, type ForkOptions, type SnapshotCreateOptions } from "./services/snapshots.js";
import { VmService } from "./services/vms.js";
import { VolumeService } from "./services/volumes.js";
import type { BuildLayersOptions, BuildLayersResult } from "./layers.js";
import type { RestoreOptions } from "../snapshot/restore.js";
import type { SnapshotInfo } from "../snapshot/service.js";
import type { RunVmOptions, RunVmResult } from "./run.js";
import type { SshStream } from "./proxy.js";
import type { SshEndpoint } from "./agent-target.js";
import type { ForwardInfo } from "./ports.js";
import type { LogOptions } from "./logs.js";
import type { SkiffClient } from "./client.js";
import type { ConsoleStream } from "./console.js";
import type { Readable } from "node:stream";
import type { DoctorReport } from "./doctor.js";
import type { AutostartTarget, AutostartUnit } from "./autostart.js";
import type { PortForward } from "../spec/machine.js";
import type { StartOptions } from "./start.js";

export type { CreateOptions } from "./create.js";
export type { CopyOnceOptions, ExecOnceResult } from "./oneshot.js";
export type { MainRequest, RunVmOptions, RunVmResult } from "./run.js";
export type { BuildLayersOptions, BuildLayersResult } from "./layers.js";
export type { MountRequest, VolumeCreateOptions, VolumeInfo, VolumeUser } from "./volumes.js";
export type { StartOptions } from "./start.js";
export type { ForkOptions, SnapshotCreateOptions } from "./services/snapshots.js";

export interface SkiffOptions {
  /** Overrides SKIFF_HOME / the XDG default. */
  home?: string;
  cacheDir?: string;
  runner?: Runner;
}

export class Skiff extends EventEmitter<SkiffEvents> implements SkiffClient {
  readonly store: VmStore;
  readonly home: string;
  readonly cacheDir: string;
  readonly runner: Runner;
  #facts: Promise<HostFacts> | undefined;
  #vms: VmService | undefined;
  #snapshots: SnapshotService | undefined;
  #images: ImageService | undefined;
  #networks: NetworkService | undefined;
  #volumes: VolumeService | undefined;
  #layers: LayerService | undefined;
  #kernels: KernelService | undefined;

  constructor(opts: SkiffOptions = {}) {
    super();
    const paths = skiffPaths(opts.home === undefined ? {} : { env: { ...process.env, SKIFF_HOME: opts.home } });
    this.home = paths.home;
    this.cacheDir = opts.cacheDir ?? paths.cache;
    this.store = new VmStore({ home: this.home });
    this.runner = opts.runner ?? defaultRunner;
  }

  /** QEMU, kernel, acceleration: gathered once per instance, cached on disk. */
  hostFacts(): Promise<HostFacts> {
    this.#facts ??= import("./host.js").then(({ gatherHostFacts }) => gatherHostFacts(this.cacheDir)).catch((err: unknown) => {
      this.#facts = undefined;
      throw err;
    });
    return this.#facts;
  }

  async create(input: CreateOptions): Promise<VmInfo> {
    return this.vms.create(input);
  }

  async start(name: string, opts: StartOptions = {}): Promise<VmInfo> {
    return this.vms.start(name, opts);
  }

  async stop(name: string, opts: { timeoutMs?: number; hibernate?: boolean } = {}): Promise<VmInfo> {
    return this.vms.stop(name, opts);
  }

  /**
   * `docker run`: create (or restore `run.from`), start, run the main
   * command; in the foreground wait for it and stop (or, with autoRemove,
   * remove) the VM; detached, leave it running (src/engine/run.ts).
   */
  async run(options: CreateOptions, run: RunVmOptions = {}): Promise<RunVmResult> {
    return this.vms.run(options, run);
  }

  /** Stop (the guest gets `stopTimeoutMs`, as `stop -t`) and start again (booting gets the usual deadline). */
  async restart(name: string, opts: { stopTimeoutMs?: number } & StartOptions = {}): Promise<VmInfo> {
    return this.vms.restart(name, opts);
  }

  /** Stop the guest's CPUs (QMP `stop`): it keeps its memory and devices, and runs on after `unpause` or `start`. */
  pause(name: string): Promise<VmInfo> {
    return this.vms.pause(name);
  }

  /**
   * Let a paused guest run again (QMP `cont`), its clock set after a long
   * pause; a running one is left alone. ERR_SKIFF_NO_SPACE when its disk is still full.
   */
  unpause(name: string): Promise<VmInfo> {
    return this.vms.unpause(name);
  }

  /**
   * Snapshot a running VM: memory, device state and root disk, taken with
   * the guest paused only for the copy; it runs on (src/snapshot/capture.ts).
   */
  async snapshot(name: string, opts: SnapshotCreateOptions = {}): Promise<SnapshotInfo> {
    return this.snapshots.create(name, opts);
  }

  /** A new VM from a snapshot, running where the snapshot left off, with a name and addresses of its own. */
  async restore(ref: string, opts: RestoreOptions = {}): Promise<VmInfo> {
    return this.snapshots.restore(ref, opts);
  }

  /** N live clones of a running VM: one snapshot, then N restores (in parallel). Writes in one are nobody else's. */
  async fork(name: string, opts: ForkOptions = {}): Promise<VmInfo[]> {
    return this.snapshots.fork(name, opts);
  }

  async listSnapshots(vm?: string): Promise<SnapshotInfo[]> {
    return this.snapshots.list(vm);
  }

  async inspectSnapshot(ref: string): Promise<SnapshotInfo> {
    return this.snapshots.inspect(ref);
  }

  /** Remove a snapshot; one VMs stand on only with `force`, which removes them too. */
  async removeSnapshot(ref: string, opts: { force?: boolean } = {}): Promise<SnapshotInfo> {
    return this.snapshots.remove(ref, opts);
  }

  /** Keep a VM's newest `keep` snapshots, remove the older ones. */
  async gcSnapshots(vm: string, keep: number): Promise<SnapshotInfo[]> {
    return this.snapshots.gc(vm, keep);
  }

  /** Remove snapshots no VM stands on: unnamed ones (fork's) and boot snapshots this host can no longer restore; all with `all`. */
  async pruneSnapshots(opts: { all?: boolean } = {}): Promise<SnapshotInfo[]> {
    return this.snapshots.prune(opts);
  }

  /** Send a signal to the VM's QEMU process (default SIGKILL: pull the plug). */
  async kill(name: string, opts: { signal?: number } = {}): Promise<VmInfo> {
    return this.vms.kill(name, opts);
  }

  /** Remove a VM and every trace of it; a running VM only with force. */
  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    return this.vms.remove(name, opts);
  }

  async list(opts: { all?: boolean } = {}): Promise<VmInfo[]> {
    return this.vms.list(opts);
  }

  /** list() and listBroken() at once, as `ps` shows them (one look at the records and the process table). */
  async listWithBroken(opts: { all?: boolean } = {}): Promise<{ vms: VmInfo[]; broken: BrokenVmInfo[] }> {
    return this.vms.listWithBroken(opts);
  }

  /** VMs whose records fail their check (`ps -a` shows them as broken; `rm -f` is the one verb they take). */
  async listBroken(): Promise<BrokenVmInfo[]> {
    return this.vms.listBroken();
  }

  async inspect(name: string): Promise<VmInfo> {
    return this.vms.inspect(name);
  }

  async info(record: VmRecord, table?: ProcTable): Promise<VmInfo> {
    return this.vms.info(record, table);
  }

  /** Make a named volume: an ext4 disk of its own (default 1 GiB) that VMs mount with `mounts`. */
  async createVolume(opts: VolumeCreateOptions): Promise<VolumeInfo> {
    return this.volumes.create(opts);
  }

  async listVolumes(): Promise<VolumeInfo[]> {
    return this.volumes.list();
  }

  async inspectVolume(name: string): Promise<VolumeInfo> {
    return this.volumes.inspect(name);
  }

  /** Remove a volume and its data; refused while a VM uses it, unless `force` (never while that VM runs). */
  async removeVolume(name: string, opts: { force?: boolean } = {}): Promise<void> {
    return this.volumes.remove(name, opts);
  }

  /**
   * Layers on a base image → a new base image (`skiff-layers:<hash>`), built
   * in a VM unless the cache has it; progress as `layer` events.
   */
  async buildLayers(opts: BuildLayersOptions): Promise<BuildLayersResult> {
    const { buildLayers } = await import("./layers.js");
    return buildLayers(this, opts);
  }

  /** VMs: create, start, stop, restart, run, pause, kill, rm, ls, inspect, exec, cp, connect, forwards (the flat verbs are these). */
  get vms(): VmService {
    this.#vms ??= new VmService(this, (ref, opts) => this.snapshots.restore(ref, opts));
    return this.#vms;
  }

  /** Snapshots: create, restore, fork, ls, inspect, rm, gc, prune (the flat snapshot, restore, fork, listSnapshots, … are these). */
  get snapshots(): SnapshotService {
    this.#snapshots ??= new SnapshotService(this, this.vms);
    return this.#snapshots;
  }

  /**
   * Images: pull, import, list, inspect, remove, prune, disk usage, logins.
   * It is also the ImageContext the engine's image functions take: the
   * cache, credentials' home, and which bases VMs use.
   */
  get images(): ImageService {
    this.#images ??= new ImageService(this, async () => [
      ...(await this.list({ all: true })),
      ...(await this.store.scan()).broken.map((b) => ({ name: b.name ?? b.id, imageDigest: b.config?.image?.digest, dir: b.paths.dir })),
    ]);
    return this.#images;
  }

  /** Networks: create, list, inspect, remove, up/down (bridges' host side), capture. */
  get networks(): NetworkService {
    this.#networks ??= new NetworkService(this);
    return this.#networks;
  }

  /** Named volumes (the flat createVolume, listVolumes, … are these). */
  get volumes(): VolumeService {
    this.#volumes ??= new VolumeService(this);
    return this.#volumes;
  }

  /** Layers: those found on a search path, and building them onto a base image. */
  get layers(): LayerService {
    this.#layers ??= new LayerService((opts) => this.buildLayers(opts));
    return this.#layers;
  }

  /** Guest kernels: the Debian one, those `kernel build` made, the default for new VMs (local only: they live on this host). */
  get kernels(): KernelService {
    this.#kernels ??= new KernelService(this);
    return this.#kernels;
  }

  /** Run one command in a running VM and collect its output (`connect()` for many on one connection). */
  async exec(name: string, argv: string[], opts: RunOptions = {}): Promise<ExecOnceResult> {
    return this.vms.exec(name, argv, opts);
  }

  /** `docker cp`: one side `NAME:/absolute/path`; out of a VM, the report says what was not copied as it was. */
  async cp(src: string, dst: string, opts: CopyOnceOptions = {}): Promise<CopyReport | undefined> {
    return this.vms.cp(src, dst, opts);
  }

  /** An SSH connection to the running VM's guest agent. */
  async connect(name: string, opts: { timeoutMs?: number } = {}): Promise<AgentConnection> {
    return this.vms.connect(name, opts);
  }

  /** A cloud image's sshd on its loopback forward (undefined for skiff's own guests: their SSH is the agent channel). */
  async sshEndpoint(name: string): Promise<SshEndpoint | undefined> {
    return this.vms.sshEndpoint(name);
  }

  /** A raw byte stream to the running VM's SSH server (`skiff proxy`, ssh's ProxyCommand); release it when done. */
  async proxy(name: string): Promise<SshStream> {
    return this.vms.proxy(name);
  }

  /** A VM's port forwards (host -> guest): those it was made with and those added while it runs. */
  async listForwards(name: string): Promise<ForwardInfo[]> {
    return this.vms.listForwards(name);
  }

  /** Add a port forward to a running VM, or `remove` one added so; returns its forwards after. */
  async changeForward(name: string, forward: PortForward, opts: { remove?: boolean } = {}): Promise<ForwardInfo[]> {
    return this.vms.changeForward(name, forward, opts);
  }

  /** A VM's console log (or with `provision` its provisioners' log): its last `lines`, then with `follow` what is written until it stops. */
  async logs(name: string, opts: LogOptions = {}): Promise<Readable> {
    const [record, { logStream, consoleLogOf }] = await Promise.all([this.store.get(name), import("./logs.js")]);
    const path = opts.provision === true ? record.paths.provisionLog : consoleLogOf(record.paths);
    const state = async () => (await this.inspect(record.id).catch(() => undefined))?.state;
    return logStream({ ...opts, path, state });
  }

  /** The running VM's serial console, both ways (one client at a time); close() detaches. */
  async console(name: string): Promise<ConsoleStream> {
    const [info, { openConsole }] = await Promise.all([this.inspect(name), import("./console.js")]);
    const record = await this.store.get(info.id);
    return openConsole(info.name, info.state, record.paths.consoleSocket);
  }

  /** `skiff doctor`: QEMU, the kernel, KVM or TCG, the jail, and what this host's VMs need. */
  async doctor(): Promise<DoctorReport> {
    const { runDoctor } = await import("./doctor.js");
    return runDoctor({ cacheDir: this.cacheDir, home: this.home, runner: this.runner, vms: await this.list({ all: true }), records: await this.store.list() });
  }

  /** A systemd unit that starts the VM (or `up -d`s the project) when the host boots; `enabled` false where systemd does not run here. */
  async enableAutostart(target: AutostartTarget): Promise<{ unit: AutostartUnit; enabled: boolean }> {
    const { enableAutostart } = await import("./autostart.js");
    return enableAutostart({ home: this.home, runner: this.runner, target });
  }

  /** Disable and remove a target's unit; false when it had none. */
  async disableAutostart(target: Pick<AutostartTarget, "kind" | "name">): Promise<boolean> {
    const { disableAutostart } = await import("./autostart.js");
    return disableAutostart({ home: this.home, runner: this.runner, target });
  }

  /** The units written for this skiff home. */
  async listAutostart(): Promise<AutostartUnit[]> {
    const { listAutostart } = await import("./autostart.js");
    return listAutostart(this.home);
  }

  /** Set (a string) or remove (null) labels of an existing VM, running or not; the others are kept. */
  async setLabels(name: string, changes: Record<string, string | null>): Promise<VmInfo> {
    return this.vms.setLabels(name, changes);
  }

  /** Untie a VM from the process that created it attached (CreateOptions.attach): it outlives that process now. */
  async detach(name: string): Promise<void> {
    return this.vms.detach(name);
  }

  /**
   * Bring the store in line with reality after crashes (reconcile.ts);
   * returns the ids of the VMs removed.
   */
  reconcile(): Promise<string[]> {
    return reconcile(this);
  }
}

export type { BrokenVmInfo, RunState, VmInfo };
