/**
 * The typed library behind every front end: `new Skiff()` and the lifecycle
 * verbs. It never prints; it returns values, throws SkiffError and emits
 * progress events. A thin facade: creating (create.ts), readiness (ready.ts)
 * and reconciling (reconcile.ts) live in their own modules.
 *
 * The modules behind booting, creating and reaching a VM (QEMU's command
 * line, the jail, networks, volumes, layers, SSH) are imported by the verbs
 * that use them, when they are first called: listing and inspecting read
 * records and the process table only, and a `skiff ps` must not load what a
 * `skiff run` needs (docs/benchmarks.md, "CLI start").
 */
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { SkiffError } from "../errors.js";
import type { AgentConnection, CopyOptions, CopyReport, RunOptions } from "../guest/agent.js";
import type { CopyOnceOptions, ExecOnceResult } from "./oneshot.js";
import { ProcTable } from "../process/procs.js";
import { defaultRunner, type Runner } from "../process/runner.js";
import { skiffPaths } from "../store/paths.js";
import { isBroken, VmStore, vmLockName, vmNotFound, type VmRecord } from "../store/store.js";
import { withLock } from "../store/lock.js";
import type { VmState } from "../store/vmdir.js";
import type { Phase, SkiffEvents } from "./events.js";
import type { HostFacts } from "./host.js";
import { homeNoSpace, notRunning, progress } from "./context.js";
import type { CreateOptions } from "./create.js";
import { hardStop, reconcile, reconcileAndLook, recordExit, removeVm, settleEnded } from "./reconcile.js";
import { observeStatus, qemuRuns, type ObservedStatus, type RunState } from "./status.js";
import { releaseSupervisor, signalQemu, stopQemu } from "./stop.js";
import { toVmInfo, type VmInfo } from "./info.js";
import { brokenInfo, removeBroken, type BrokenVmInfo } from "./broken.js";
import { guestPaused, readyForPowerdown, vmPaused } from "./pause.js";
import type { VolumeCreateOptions, VolumeInfo } from "./volumes.js";
import { ImageService } from "./services/images.js";
import { LayerService } from "./services/layers.js";
import { NetworkService } from "./services/networks.js";
import { VolumeService } from "./services/volumes.js";
import type { BuildLayersOptions, BuildLayersResult } from "./layers.js";
import { crashPoint } from "../util/crash-point.js";
import type { ResumeSource } from "../snapshot/resume.js";
import type { RestoreOptions } from "../snapshot/restore.js";
import type { SnapshotInfo } from "../snapshot/service.js";
import type { GuestNetwork } from "../network/guest.js";
import type { RunVmOptions, RunVmResult } from "./run.js";
import type { SshStream } from "./proxy.js";
import type { SshEndpoint } from "./ready.js";
import type { ForwardInfo } from "./ports.js";
import type { DoctorReport } from "./doctor.js";
import type { AutostartTarget, AutostartUnit } from "./autostart.js";
import type { MachineSpec, PortForward } from "../spec/machine.js";

export type { CreateOptions } from "./create.js";
export type { CopyOnceOptions, ExecOnceResult } from "./oneshot.js";
export type { MainRequest, RunVmOptions, RunVmResult } from "./run.js";
export type { BuildLayersOptions, BuildLayersResult } from "./layers.js";
export type { MountRequest, VolumeCreateOptions, VolumeInfo, VolumeUser } from "./volumes.js";

export interface SkiffOptions {
  /** Overrides SKIFF_HOME / the XDG default. */
  home?: string;
  cacheDir?: string;
  runner?: Runner;
}

export interface StartOptions {
  /** Wait until the guest agent answers (default true). */
  waitReady?: boolean;
  timeoutMs?: number;
  /** A hibernated VM: boot from its disk instead of resuming its saved memory (E2B's onResume: 'reboot'). */
  cold?: boolean;
}

export interface SnapshotCreateOptions {
  /** A name to find it by (unique among snapshots). */
  name?: string;
}

export interface ForkOptions {
  /** How many clones (default 1). */
  count?: number;
  /** Their names: PREFIX-1, PREFIX-2, … (default NAME-fork-N). */
  prefix?: string;
  /** The clones' labels (default none: a restore does not take the source's). */
  labels?: Record<string, string>;
}

/** How long a boot may take before it counts as failed; TCG on a loaded host is slow. */
const defaultBootTimeoutMs = Number(process.env.SKIFF_BOOT_TIMEOUT_MS ?? 120_000);

export class Skiff extends EventEmitter<SkiffEvents> {
  readonly store: VmStore;
  readonly home: string;
  readonly cacheDir: string;
  readonly runner: Runner;
  #facts: Promise<HostFacts> | undefined;
  #images: ImageService | undefined;
  #networks: NetworkService | undefined;
  #volumes: VolumeService | undefined;
  #layers: LayerService | undefined;

  constructor(opts: SkiffOptions = {}) {
    super();
    const paths = skiffPaths(opts.home === undefined ? {} : { env: { ...process.env, SKIFF_HOME: opts.home } });
    this.home = paths.home;
    this.cacheDir = opts.cacheDir ?? paths.cache;
    this.store = new VmStore({ home: this.home });
    this.runner = opts.runner ?? defaultRunner;
  }

  #progress(vm: string, phase: Phase, message: string, startedAt: number): void {
    progress(this, vm, phase, message, startedAt);
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
    const t0 = Date.now();
    const [{ checkCreateOptions }, { createVm }] = await Promise.all([import("./create-options.js"), import("./create.js")]);
    // Checked here, the library's door: callers in plain JavaScript get an error for a key skiff does not know.
    const opts = checkCreateOptions(input);
    await this.reconcile();
    const record = await createVm(this, opts, t0).catch((err: unknown) => {
      throw homeNoSpace(err, this.home, `creating VM ${opts.name ?? ""}`.trim());
    });
    await this.#refreshPeers(record.config.spec, t0);
    return this.info(record);
  }

  /** Running VMs that share a network with `changed` learn its name (or forget it). */
  async #refreshPeers(changed: MachineSpec, t0: number): Promise<void> {
    const { refreshPeerHosts } = await import("./vm-network.js");
    const stale = await refreshPeerHosts(this, changed, (vm) => this.connect(vm.name));
    for (const name of stale) this.#progress(name, "warning", `could not update /etc/hosts in ${name}; it will be right after its next start`, t0);
  }

  async start(name: string, opts: StartOptions = {}): Promise<VmInfo> {
    await this.reconcile();
    const record = await this.store.get(name);
    return this.#start(record, opts).catch((err: unknown) => {
      throw homeNoSpace(err, this.home, `starting ${record.name}`);
    });
  }

  async #start(record: VmRecord, opts: StartOptions & { resume?: ResumeSource }): Promise<VmInfo> {
    const t0 = Date.now();
    const hibernation = opts.resume === undefined ? await import("../snapshot/hibernate.js") : undefined;
    const facts = await this.hostFacts();
    const [network, { spawnQemu }, volumes, { waitBooted }] = await Promise.all([import("./vm-network.js"), import("./launch.js"), import("./volumes.js"), import("./ready.js")]);
    let hosts = "";
    let resume: ResumeSource | undefined;
    let guest: GuestNetwork | undefined;
    let bootKey: string | undefined;
    const identity = await this.#locked(record, "start", async (state, status) => {
      if (status.state === "running") {
        // A running VM whose guest is paused (skiff pause, a full disk) runs again.
        await (await import("../snapshot/clock.js")).unpauseVm(this, record);
        return undefined;
      }
      // Restarting: its supervisor brings QEMU back by itself; a second QEMU must never start.
      if (status.state === "restarting") return undefined;
      // A VM made before jails (or by a skiff without root) gets its jail user now.
      record.config = await this.store.ensureJailIds(record.id);
      resume = opts.resume ?? (await hibernation?.hibernatedSource(this, record, opts.cold === true));
      // A VM that has never run starts from its combination's boot snapshot, or makes it (src/snapshot/boot.ts).
      if (resume === undefined && opts.cold !== true && state.startedAt === undefined && record.config.snapshot === undefined) {
        const boot = await import("../snapshot/boot.js");
        const key = await boot.bootKey(record, facts);
        const snap = key === undefined ? undefined : await boot.findBootSnapshot(this, key);
        if (snap !== undefined) {
          await boot.adoptBootSnapshot(this, record, snap);
          resume = (await import("../snapshot/restore.js")).snapshotSource(snap);
        } else bootKey = key;
      }
      this.#progress(record.name, "booting", `${resume === undefined ? "booting" : "resuming"} ${record.name} (${facts.accel.accel})`, t0);
      const networking = await network.prepareVmNetworking(this, record);
      hosts = networking.guest.hosts;
      guest = networking.guest;
      // Under the volumes lock from the check until QEMU holds the disks: two VMs never attach one volume.
      const identity = await volumes.withVolumesLocked(this, record.config.spec.mounts, `start ${record.name}`, async () =>
        spawnQemu({
          record,
          home: this.home,
          facts,
          runner: this.runner,
          cacheDir: this.cacheDir,
          networking,
          mounts: await volumes.checkVolumesFree(this, record),
          ...(resume === undefined ? {} : { resume }),
        }),
      );
      crashPoint("start:spawned");
      await this.store.updateState(record.id, {
        qemu: identity,
        startedAt: new Date().toISOString(),
        accel: facts.accel.accel,
        exit: undefined,
        forwards: undefined,
      });
      return identity;
    });
    if (identity !== undefined && resume !== undefined) {
      // A resumed guest is up already; it learns who it is now (name, addresses, clock, a fresh random pool).
      try {
        const { sendGuestIdentity } = await import("../snapshot/identity.js");
        await sendGuestIdentity(record, this.home, guest);
        await hibernation?.resumed(this, record);
      } catch (err) {
        await hardStop(this, record, "resume-failed");
        throw err;
      }
      this.#progress(record.name, "ready", `${record.name} is ready (resumed from ${resume.what})`, t0);
    } else if (identity !== undefined && opts.waitReady !== false) {
      try {
        await waitBooted({ record, identity, home: this.home, timeoutMs: opts.timeoutMs ?? defaultBootTimeoutMs });
      } catch (err) {
        // Never leave a VM half-booted behind a failed start.
        await hardStop(this, record, "boot-failed");
        throw err;
      }
      if (!(await network.syncOwnHosts(this, record, hosts, (vm) => this.connect(vm.name)))) {
        this.#progress(record.name, "warning", `could not update /etc/hosts in ${record.name}; it will be right after its next start`, t0);
      }
      if (bootKey !== undefined) await this.#bootSnapshot(record, bootKey, t0);
      this.#progress(record.name, "ready", `${record.name} is ready`, t0);
    }
    return this.info(record);
  }

  /**
   * The first cold boot of its combination: snapshot the ready guest, so the
   * next VM like it starts from here. Best effort: a failure is a warning.
   */
  async #bootSnapshot(record: VmRecord, key: string, t0: number): Promise<void> {
    const [{ captureVm }, { saveBootSnapshotOnce }] = await Promise.all([import("../snapshot/capture.js"), import("../snapshot/boot.js")]);
    try {
      await this.#locked(record, "boot snapshot", async (_state, status) => {
        if (status.qemu === undefined) return;
        await saveBootSnapshotOnce(this, key, async () => {
          this.#progress(record.name, "snapshot", `saving a boot snapshot of ${record.config.spec.image} (the next VM like it resumes from it)`, t0);
          await captureVm(this, record, { kind: "boot", bootKey: key });
        });
      });
    } catch (err) {
      this.#progress(record.name, "warning", `no boot snapshot saved: ${err instanceof Error ? err.message : String(err)}`, t0);
    }
  }

  /** Run `fn` holding the VM's lifecycle lock, with its state and observed status. */
  #locked<T>(record: VmRecord, verb: string, fn: (state: VmState, status: ObservedStatus) => Promise<T>): Promise<T> {
    return withLock(
      vmLockName(record.id),
      async () => {
        const state = await this.store.readState(record.id);
        return fn(state, await observeStatus(record, state));
      },
      { home: this.home, purpose: `${verb} ${record.name}` },
    );
  }

  async stop(name: string, opts: { timeoutMs?: number; hibernate?: boolean } = {}): Promise<VmInfo> {
    const t0 = Date.now();
    const record = await this.store.get(name);
    await this.#locked(record, "stop", async (_state, observed) => {
      // A restart policy's supervisor is told first (this end is wanted), and may have started QEMU again just before.
      const status = (await releaseSupervisor(record)) ? await observeStatus(record, await this.store.readState(record.id)) : observed;
      if (status.state === "restarting") {
        await recordExit(this, record, { reason: "stopped" });
        return;
      }
      // No QEMU: a start or stop killed half-way may have left its end unrecorded, or its cgroup and egress rules.
      if (status.qemu === undefined) {
        if (opts.hibernate === true) throw notRunning(record.name);
        return settleEnded(this, record);
      }
      if (opts.hibernate === true) {
        this.#progress(record.name, "stopping", `hibernating ${record.name}`, t0);
        const { hibernateVm } = await import("../snapshot/hibernate.js");
        await hibernateVm(this, record, status.qemu).catch((err: unknown) => {
          throw homeNoSpace(err, this.home, `hibernating ${record.name}`);
        });
        await recordExit(this, record, { reason: "hibernated" });
        this.#progress(record.name, "stopped", `${record.name} hibernated`, t0);
        return;
      }
      this.#progress(record.name, "stopping", `stopping ${record.name}`, t0);
      // A paused guest cannot power off; one that a full disk keeps paused gets signals straight away.
      const powerdown = await readyForPowerdown(record);
      const step = await stopQemu({
        identity: status.qemu,
        qmpSocket: record.paths.qmpSocket,
        timeoutMs: powerdown ? (opts.timeoutMs ?? 10_000) : 0,
        onStep: (s) => this.#progress(record.name, "stopping", `stopping ${record.name}: ${s}`, t0),
      });
      crashPoint("stop:ended");
      await recordExit(this, record, { reason: step === "powerdown" ? "stopped" : `stopped (${step})` });
      this.#progress(record.name, "stopped", `${record.name} stopped (${step})`, t0);
    });
    if (record.config.spec.autoRemove && opts.hibernate !== true) {
      await this.remove(name, { force: true });
      return { ...(await this.info(record)), state: "stopped" };
    }
    return this.info(record);
  }

  /**
   * `docker run`: create (or restore `run.from`), start, run the main
   * command; in the foreground wait for it and stop (or, with autoRemove,
   * remove) the VM; detached, leave it running (src/engine/run.ts).
   */
  async run(options: CreateOptions, run: RunVmOptions = {}): Promise<RunVmResult> {
    const { runVm } = await import("./run.js");
    return runVm(this, options, run);
  }

  /** Stop (the guest gets `stopTimeoutMs`, as `stop -t`) and start again (booting gets the usual deadline). */
  async restart(name: string, opts: { stopTimeoutMs?: number } & StartOptions = {}): Promise<VmInfo> {
    const record = await this.store.get(name);
    if (record.config.spec.autoRemove) {
      throw new SkiffError("ERR_SKIFF_USAGE", `${record.name} was made with --rm; restarting would remove it`, { place: record.name });
    }
    await this.stop(name, opts.stopTimeoutMs === undefined ? {} : { timeoutMs: opts.stopTimeoutMs });
    const { stopTimeoutMs: _stop, ...start } = opts;
    return this.start(name, start);
  }

  /** Stop the guest's CPUs (QMP `stop`): it keeps its memory and devices, and runs on after `unpause` or `start`. */
  pause(name: string): Promise<VmInfo> {
    return this.#onGuest(name, "pause", async (record) => (await import("../snapshot/clock.js")).pauseVm(this, record));
  }

  /**
   * Let a paused guest run again (QMP `cont`), its clock set after a long
   * pause; a running one is left alone. ERR_SKIFF_NO_SPACE when its disk is still full.
   */
  unpause(name: string): Promise<VmInfo> {
    return this.#onGuest(name, "unpause", async (record) => (await import("../snapshot/clock.js")).unpauseVm(this, record));
  }

  /**
   * Snapshot a running VM: memory, device state and root disk, taken with
   * the guest paused only for the copy; it runs on (src/snapshot/capture.ts).
   */
  async snapshot(name: string, opts: SnapshotCreateOptions = {}): Promise<SnapshotInfo> {
    const t0 = Date.now();
    const record = await this.store.get(name);
    const [{ captureVm }, { toSnapshotInfo }, { checkSnapshotName }] = await Promise.all([
      import("../snapshot/capture.js"),
      import("../snapshot/service.js"),
      import("../snapshot/names.js"),
    ]);
    if (opts.name !== undefined) await checkSnapshotName(this, opts.name);
    const snap = await this.#locked(record, "snapshot", async (_state, status) => {
      if (status.qemu === undefined) throw notRunning(record.name);
      this.#progress(record.name, "snapshot", `taking a snapshot of ${record.name}`, t0);
      return captureVm(this, record, { ...(opts.name === undefined ? {} : { name: opts.name }), kind: "user" }).catch((err: unknown) => {
        throw homeNoSpace(err, this.home, `snapshotting ${record.name}`);
      });
    });
    this.#progress(record.name, "snapshot", `snapshot ${snap.id.slice(0, 12)} of ${record.name} taken (paused ${Math.round(snap.pausedMs)} ms)`, t0);
    return { ...toSnapshotInfo(snap, []), pausedMs: snap.pausedMs };
  }

  /** A new VM from a snapshot, running where the snapshot left off, with a name and addresses of its own. */
  async restore(ref: string, opts: RestoreOptions = {}): Promise<VmInfo> {
    const t0 = Date.now();
    const [{ findSnapshot }, { checkRestorable, createFromSnapshot, snapshotSource }] = await Promise.all([
      import("../snapshot/store.js"),
      import("../snapshot/restore.js"),
    ]);
    const snapshot = await findSnapshot(this, ref);
    await checkRestorable(this, snapshot);
    await this.reconcile();
    const record = await createFromSnapshot(this, snapshot, opts, t0).catch((err: unknown) => {
      throw homeNoSpace(err, this.home, `restoring ${ref}`);
    });
    try {
      await this.#start(record, { resume: snapshotSource(snapshot) });
    } catch (err) {
      // Never a half-made VM: a restore that did not come up leaves nothing.
      await this.remove(record.name, { force: true }).catch(() => undefined);
      throw homeNoSpace(err, this.home, `restoring ${ref}`);
    }
    await this.#refreshPeers(record.config.spec, t0);
    return this.info(record);
  }

  /** N live clones of a running VM: one snapshot, then N restores (in parallel). Writes in one are nobody else's. */
  async fork(name: string, opts: ForkOptions = {}): Promise<VmInfo[]> {
    const count = opts.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > 64) {
      throw new SkiffError("ERR_SKIFF_USAGE", `-n takes 1 to 64 clones, not ${count}`, { place: "-n", hint: "e.g. skiff fork web -n 4" });
    }
    const record = await this.store.get(name);
    const prefix = opts.prefix ?? `${record.name}-fork`;
    const names = Array.from({ length: count }, (_, i) => `${prefix}-${i + 1}`);
    for (const n of names) {
      if ((await this.store.lookup(n)) !== undefined) {
        const { nameTaken } = await import("../snapshot/restore.js");
        throw nameTaken(n);
      }
    }
    const { captureVm } = await import("../snapshot/capture.js");
    const snap = await this.#locked(record, "fork", async (_state, status) => {
      if (status.qemu === undefined) throw notRunning(record.name);
      return captureVm(this, record, { kind: "fork" });
    });
    const labels = opts.labels === undefined ? {} : { labels: opts.labels };
    const made = await Promise.allSettled(names.map((n) => this.restore(snap.id, { name: n, ...labels })));
    const failed = made.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed !== undefined) {
      for (const n of names) await this.remove(n, { force: true }).catch(() => undefined);
      throw failed.reason;
    }
    return made.map((r) => (r as PromiseFulfilledResult<VmInfo>).value);
  }

  async listSnapshots(vm?: string): Promise<SnapshotInfo[]> {
    const { listSnapshotInfos } = await import("../snapshot/service.js");
    return listSnapshotInfos(this, vm);
  }

  async inspectSnapshot(ref: string): Promise<SnapshotInfo> {
    const { inspectSnapshot } = await import("../snapshot/service.js");
    return inspectSnapshot(this, ref);
  }

  /** Remove a snapshot; one VMs stand on only with `force`, which removes them too. */
  async removeSnapshot(ref: string, opts: { force?: boolean } = {}): Promise<SnapshotInfo> {
    const { removeSnapshot } = await import("../snapshot/service.js");
    return removeSnapshot(this, ref, { ...opts, removeVm: (n) => this.remove(n, { force: true }) });
  }

  /** Keep a VM's newest `keep` snapshots, remove the older ones. */
  async gcSnapshots(vm: string, keep: number): Promise<SnapshotInfo[]> {
    const { gcSnapshots } = await import("../snapshot/service.js");
    return gcSnapshots(this, vm, keep);
  }

  /** Remove snapshots no VM stands on: unnamed ones (fork's, boot snapshots), or all with `all`. */
  async pruneSnapshots(opts: { all?: boolean } = {}): Promise<SnapshotInfo[]> {
    const { pruneSnapshots } = await import("../snapshot/service.js");
    return pruneSnapshots(this, opts);
  }

  /** `fn` on a VM whose QEMU runs, under its lifecycle lock. */
  async #onGuest(name: string, verb: string, fn: (record: VmRecord) => Promise<unknown>): Promise<VmInfo> {
    const record = await this.store.get(name);
    await this.#locked(record, verb, async (_state, status) => {
      if (status.qemu === undefined) throw notRunning(record.name);
      await fn(record);
    });
    return this.info(record);
  }

  /** Send a signal to the VM's QEMU process (default SIGKILL: pull the plug). */
  async kill(name: string, opts: { signal?: number } = {}): Promise<VmInfo> {
    const record = await this.store.get(name);
    const sig = opts.signal ?? 9;
    await this.#locked(record, "kill", async (_state, status) => {
      if (status.qemu === undefined) throw notRunning(record.name);
      // As `docker kill`: a VM killed on purpose is not restarted by its policy.
      await releaseSupervisor(record);
      if (await signalQemu(status.qemu, sig)) await recordExit(this, record, { reason: "killed", signal: String(sig) });
    });
    return this.info(record);
  }

  /** Remove a VM and every trace of it; a running VM only with force. */
  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    const t0 = Date.now();
    // A removal killed half-way (its directory already trash) is finished, whether or not the name is still there.
    await this.store.gc();
    const found = await this.store.lookup(name);
    if (found === undefined) throw vmNotFound(name);
    if (isBroken(found)) {
      await removeBroken(this, found, opts);
      this.#progress(found.name ?? found.id, "removed", `${found.name ?? found.id} removed`, t0);
      if (found.config !== undefined) await this.#refreshPeers(found.config.spec, t0);
      return;
    }
    const record = found;
    await this.#locked(record, "remove", async (_state, status) => {
      if (status.state === "running" && opts.force !== true) {
        throw new SkiffError("ERR_SKIFF_VM_RUNNING", `${record.name} is running`, {
          hint: `stop it first (\`skiff stop ${record.name}\`) or use \`skiff rm -f ${record.name}\``,
          place: record.name,
        });
      }
      await removeVm(this, record);
    });
    this.#progress(record.name, "removed", `${record.name} removed`, t0);
    await this.#refreshPeers(record.config.spec, t0);
  }

  async list(opts: { all?: boolean } = {}): Promise<VmInfo[]> {
    return (await this.listWithBroken(opts)).vms;
  }

  /**
   * list() and listBroken() at once, as `ps` shows them: from the records
   * and the process table that reconcile has just read, when it changed
   * nothing (most of what ps of many VMs spends is reading them).
   */
  async listWithBroken(opts: { all?: boolean } = {}): Promise<{ vms: VmInfo[]; broken: BrokenVmInfo[] }> {
    const { seen } = await reconcileAndLook(this);
    // One look at the process table for every VM listed.
    const table = seen?.table ?? new ProcTable();
    const { vms, broken } = seen ?? (await this.store.scan());
    const infos = await Promise.all(vms.filter((vm) => vm.complete).map((r) => this.info(r, table)));
    return {
      vms: opts.all === true ? infos : infos.filter((i) => qemuRuns(i.state) || i.state === "restarting"),
      broken: broken.map((b) => brokenInfo(b, table)),
    };
  }

  /** VMs whose records fail their check (`ps -a` shows them as broken; `rm -f` is the one verb they take). */
  async listBroken(): Promise<BrokenVmInfo[]> {
    return (await this.store.scan()).broken.map((b) => brokenInfo(b));
  }

  async inspect(name: string): Promise<VmInfo> {
    await this.reconcile();
    return this.info(await this.store.get(name));
  }

  async info(record: VmRecord, table = new ProcTable()): Promise<VmInfo> {
    const state = existsSync(record.paths.dir) ? await this.store.readState(record.id) : {};
    const status = await observeStatus(record, state, table);
    return toVmInfo(record, state, status, status.state === "running" ? await guestPaused(record) : undefined);
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

  /** Run one command in a running VM and collect its output (`connect()` for many on one connection). */
  async exec(name: string, argv: string[], opts: RunOptions = {}): Promise<ExecOnceResult> {
    const { execOnce } = await import("./oneshot.js");
    return execOnce((vm) => this.connect(vm), name, argv, opts);
  }

  /** `docker cp`: one side `NAME:/absolute/path`; out of a VM, the report says what was not copied as it was. */
  async cp(src: string, dst: string, opts: CopyOnceOptions = {}): Promise<CopyReport | undefined> {
    const { copyOnce } = await import("./oneshot.js");
    return copyOnce((vm) => this.connect(vm), src, dst, opts);
  }

  /** An SSH connection to the running VM's guest agent. */
  async connect(name: string, opts: { timeoutMs?: number } = {}): Promise<AgentConnection> {
    const record = await this.store.get(name);
    const status = await observeStatus(record, await this.store.readState(record.id));
    if (status.state !== "running") throw notRunning(record.name);
    const paused = await guestPaused(record);
    if (paused !== undefined) throw vmPaused(record.name, paused);
    const [{ connectAgent }, { connectionOptions }] = await Promise.all([import("../guest/agent.js"), import("./ready.js")]);
    return connectAgent({
      ...(await connectionOptions(record, this.home)),
      // A cloud image's sshd can be restarting (cloud-init, a slow TCG guest): give it longer.
      timeoutMs: opts.timeoutMs ?? (record.config.spec.boot?.kind === "cloud" ? 60_000 : 15_000),
    });
  }

  /** A cloud image's sshd on its loopback forward (undefined for skiff's own guests: their SSH is the agent channel). */
  async sshEndpoint(name: string): Promise<SshEndpoint | undefined> {
    const [record, { sshEndpoint }] = await Promise.all([this.store.get(name), import("./ready.js")]);
    return sshEndpoint(record.config.spec);
  }

  /** A raw byte stream to the running VM's SSH server (`skiff proxy`, ssh's ProxyCommand); release it when done. */
  async proxy(name: string): Promise<SshStream> {
    const info = await this.inspect(name);
    if (info.state === "paused") throw vmPaused(name, info.pauseReason ?? "user");
    if (info.state !== "running") {
      throw new SkiffError("ERR_SKIFF_VM_NOT_RUNNING", `${name} is not running`, { hint: `skiff start ${name}`, place: name });
    }
    const { openSshStream } = await import("./proxy.js");
    return openSshStream(await this.store.get(info.id), this.home);
  }

  /** A VM's port forwards (host -> guest): those it was made with and those added while it runs. */
  async listForwards(name: string): Promise<ForwardInfo[]> {
    const { listForwards } = await import("./ports.js");
    return listForwards(this, name);
  }

  /** Add a port forward to a running VM, or `remove` one added so; returns its forwards after. */
  async changeForward(name: string, forward: PortForward, opts: { remove?: boolean } = {}): Promise<ForwardInfo[]> {
    const { changeForward } = await import("./ports.js");
    return changeForward(this, name, forward, opts);
  }

  /** `skiff doctor`: QEMU, the kernel, KVM or TCG, the jail, and what this host's VMs need. */
  async doctor(): Promise<DoctorReport> {
    const { runDoctor } = await import("./doctor.js");
    return runDoctor({ cacheDir: this.cacheDir, home: this.home, runner: this.runner, vms: await this.list({ all: true }) });
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
    for (const [key, value] of Object.entries(changes)) {
      if (key === "" || (value !== null && typeof value !== "string")) {
        throw new SkiffError("ERR_SKIFF_USAGE", `label ${JSON.stringify(key)}: a non-empty key with a string value (null removes it)`, { place: "labels" });
      }
    }
    const record = await this.store.get(name);
    await this.#locked(record, "label", async () => {
      record.config = await this.store.setLabels(record.id, changes);
    });
    return this.info(record);
  }

  /** Untie a VM from the process that created it attached (CreateOptions.attach): it outlives that process now. */
  async detach(name: string): Promise<void> {
    const record = await this.store.get(name);
    await this.store.updateState(record.id, { owner: undefined });
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
